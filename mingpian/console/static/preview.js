// The studio's six phone mock-ups, for the console: a card being edited (rendered through the
// templates API, as the studio does) or a dry run's payloads exactly as they would be sent.

import * as sapi from '/static/api.js';
import {h} from '/static/dom.js';
import {legacyBody, legacyScreen} from '/static/legacy.js';
import {mediaResult} from '/static/media.js';
import {Phone, VIEWS} from '/static/phones.js';
import {renderMessageList} from '/static/rcs.js';

const LEGACY = ['ussd', 'flash', 'sms'];

export class Preview {
  constructor() {
    this.phones = {};
    this.el = h('div', {class: 'phones console-phones'});
    for (const v of VIEWS) {
      this.phones[v.id] = new Phone(v, '');
      this.el.append(this.phones[v.id].el);
    }
    this.gen = 0;
    this.caps = sapi.capabilities();
    this.imageUrl = null;
  }

  brand(text) {
    for (const p of Object.values(this.phones)) p.brand = text;
  }

  /** Render `data` with `template` on every phone; returns the 5G render's answer. */
  async show(template, data) {
    const gen = ++this.gen;
    const caps = await this.caps;
    const has = (f) => caps.formats.includes(f);
    const rcs = await sapi.render(template, data);
    if (gen !== this.gen) return rcs;
    if (!rcs.ok) {
      for (const p of Object.values(this.phones)) p.stale(`未更新：数据有误（${(rcs.body?.problems || []).length} 处）`);
      return rcs;
    }
    this.phones.rcs.show(renderMessageList(rcs.body.messageList, {}));
    if (rcs.body.brand?.name) this.brand(rcs.body.brand.name);
    await Promise.all([
      ...LEGACY.map(async (ch) => {
        if (!has(ch)) { this.phones[ch].off('服务器未提供这个渠道'); return; }
        const res = await sapi.render(template, data, {format: ch});
        if (gen !== this.gen) return;
        const lt = res.ok ? legacyBody(res.body) : null;
        if (lt) this.phones[ch].show(legacyScreen(ch, lt, {}));
        else this.phones[ch].stale('未更新');
      }),
      this.#image(template, data, gen, has('png')),
    ]);
    this.#videoButton(template, data, has('mp4'));
    return rcs;
  }

  async #image(template, data, gen, available) {
    if (!available) { this.phones.image.off('服务器未提供图片渲染'); return; }
    const res = await sapi.render(template, data, {format: 'png'});
    const out = await mediaResult(res, {});
    if (gen !== this.gen || out.aborted) return;
    if (out.error) { this.phones.image.stale('图片未更新'); return; }
    if (this.imageUrl && this.imageUrl.startsWith('blob:')) URL.revokeObjectURL(this.imageUrl);
    this.imageUrl = out.url;
    this.phones.image.show(h('img', {class: 'rendered', src: out.url, alt: '名片图片预览'}));
  }

  #videoButton(template, data, available) {
    if (!available) { this.phones.video.off('服务器未提供视频渲染'); return; }
    const make = async () => {
      const bar = h('progress', {max: '100', 'aria-label': '视频渲染进度'});
      this.phones.video.show(h('div', {class: 'progress'}, bar));
      const res = await sapi.render(template, data, {format: 'mp4', query: {async: '1'}});
      const out = await mediaResult(res, {onProgress: (pct) => { if (pct !== null) bar.value = pct; }});
      if (out.error) { this.phones.video.stale('视频渲染失败'); return; }
      this.phones.video.show(h('video', {class: 'rendered', src: out.url, controls: true, 'aria-label': '名片视频预览'}));
    };
    this.phones.video.show(h('button', {type: 'button', class: 'make-video', on: {click: make}}, '生成视频'));
  }

  /** A dry run's channels: each phone shows what that channel would carry, or why it would not. */
  showDryRun(result) {
    this.gen += 1;
    const byChannel = Object.fromEntries((result.channels || []).map((c) => [c.channel, c]));
    if (result.brand) this.brand(result.brand.name);
    for (const v of VIEWS) {
      const phone = this.phones[v.id];
      if (v.id === 'image' || v.id === 'video') { phone.off('试拨只显示各渠道实际发送的内容'); continue; }
      const c = byChannel[v.id];
      if (!c) { phone.off('不在企业的发送顺序里'); continue; }
      if (c.error) { phone.off('这个渠道放不下这张名片'); continue; }
      if (v.id === 'rcs') phone.show(renderMessageList(c.messageList || [], {}));
      else phone.show(legacyScreen(v.id, c.legacy, {}));
      if (c.skipped) phone.setNote('会跳过：' + skipText(c.skipped), 'error');
    }
  }
}

// What a carrier's status report code means when it refused a card's content.
const REFUSED_CODE = {
  'errorCode 3: content not compliant': '内容不合规', 'errorCode 6: content not as required': '内容不符合要求',
};

export function skipText(reason) {
  const card = reason.match(/^not_approved: ([^:]+): card \S+ v(\d+) refused: (.*)$/);
  if (card) {
    const said = REFUSED_CODE[card[3]] || card[3];
    return `这张名片（第 ${card[2]} 版）发出后被运营商驳回（${card[1]}：${said}），运营方解除前不再以 5G 消息发送`;
  }
  const channel = reason.match(/^channel (\S+) not configured/);
  if (channel) return unconfiguredText(channel[1]);
  if (reason.includes('chatbot')) return '企业没有 5G 消息机器人';
  if (reason.startsWith('not_approved:')) {
    const state = {waiting: '审核中', refused: '被驳回', expired: '已过期', unsubmitted: '尚未提交审核'};
    const last = reason.split(' ').pop();
    return `名片的图片或视频${state[last] ? '在运营商处' + state[last] : '未通过运营商审核'}（${reason.split(': ')[1] || ''}）`;
  }
  const cardSms = CARD_SMS_SKIPS.find(([k]) => reason.startsWith(k));
  if (cardSms) return cardSms[1];
  return reason;
}

// What the server's operator sets for a channel to be sent: the setting's name, as in docs/settings.md.
const CHANNEL_SETTING = {
  rcs: 'maap_url（5G 消息平台的地址）',
  cardsms: 'delivery_cardsms_url（卡片短信平台的地址）',
  ussd: 'delivery_smpp（短信网关的 SMPP 地址）',
  flash: 'delivery_smpp（短信网关的 SMPP 地址）或 delivery_kannel_url',
  sms: 'delivery_smpp（短信网关的 SMPP 地址）或 delivery_kannel_url',
};

export function unconfiguredText(channel) {
  const what = CHANNEL_SETTING[channel];
  return what ? `服务器未配置这个渠道：设置 ${what}` : '服务器未配置这个渠道';
}

// Why a card SMS step is skipped (delivery/cardsms.py), in Chinese.
const CARD_SMS_SKIPS = [
  ['the line is not verified', '号码未认证：卡片短信要用企业签名发送'],
  ['the card-SMS template was not registered', '卡片短信模板还没有登记，已提交手机厂商审核'],
  ['the card-SMS template could not be submitted', '卡片短信模板提交失败，稍后会重试'],
  ["the enterprise's signature changed", '企业签名已更改，卡片短信模板已重新提交审核'],
  ['no vendor approved', '还没有手机厂商通过卡片短信模板'],
  ['the card-SMS platform did not answer', '卡片短信平台没有响应'],
  ['the phone cannot show card SMS', '对方手机不能显示卡片短信'],
];
