// 模拟来电 (the demo): place a call from one of the enterprise's lines to one of the demo's phones
// and watch the card arrive, channel by channel, on the studio's phone mock-ups. What each phone
// shows is what the simulated network received (GET /api/demo/phones/…), never drawn here from
// the card; the steps are the delivery's attempts (GET /api/calls/…).

import {Phone, VIEWS} from '/static/phones.js';
import {legacyScreen} from '/static/legacy.js';
import {renderMessageList} from '/static/rcs.js';
import * as api from './capi.js';
import {skipText} from './preview.js';
import {CHANNEL_NAME, PHASES, clear, field, h, notice, phone as readable, section, select} from './ui.js';

const STATE = {
  skipped: '跳过', failed: '失败，转下一渠道', delivered: '已送达', displayed: '已显示', sent: '已发出，等回执',
  active: '发送中', dropped: '已放弃', blocked: '不发送（退订或免打扰）', unknown: '结果未知，等回执',
};
const DONE = new Set(['delivered', 'displayed', 'failed', 'dropped', 'blocked', 'skipped']);
const SCREENS = ['rcs', 'cardsms', 'ussd', 'flash', 'sms'];

// An attempt's detail (delivery/chain.py's stable English) in words.
function detailText(detail) {
  const receipt = detail.match(/^receipt (\w+)/);
  if (receipt) return `运营商回执 ${receipt[1]}`;
  if (detail.startsWith('the phone cannot show 5G messages')) return '对方手机不能显示 5G 消息';
  if (detail.startsWith('no receipt within')) return '等回执超时';
  if (detail.startsWith('accepted by the MaaP')) return '5G 消息平台已接收';
  const said = skipText(detail);
  return /^[\x20-\x7e]*$/.test(said) ? '' : said;  // stable English of the chain left unsaid
}

function view(id) {
  return VIEWS.find((v) => v.id === id) || {id, title: CHANNEL_NAME[id], app: '信息'};
}

// A legacy text as received: the fields legacyScreen shows beside it, counted from the text.
function legacyText(text) {
  const gsm = /^[\x20-\x7e\n]*$/.test(text);
  return {text, encoding: gsm ? 'GSM-7' : 'UCS-2', units: [...text].length, remaining: ''};
}

export async function render(main, ctx) {
  main.append(h('h1', {}, '模拟来电'));
  const res = await api.get('/api/demo');
  if (!res.ok) {
    main.append(h('p', {class: 'notice'}, '模拟来电只在演示模式下可用：服务器没有配置任何网关和密钥、只在本机监听时才会启动演示。'));
    return;
  }
  const demo = res.body;
  const note = notice();
  const line = select('line', demo.lines.map((l) => [l.number, `${readable(l.number)}（${l.name}）`]), demo.lines[0].number);
  const phone = select('phone', demo.phones.map((p) => [p.number, `${p.name} ${readable(p.number)}`]), demo.phones[0].number);
  const phase = select('phase', PHASES.filter(([p]) => p !== 'answered'), 'ended');
  const shows = h('p', {class: 'hint'});
  const about = () => { shows.textContent = demo.phones.find((p) => p.number === phone.value).shows; };
  phone.addEventListener('change', about);
  about();
  const steps = h('ol', {class: 'sim-steps', 'aria-live': 'polite'});
  const status = h('p', {class: 'summary', 'aria-live': 'polite'});
  const phones = {};
  const rack = h('div', {class: 'phones console-phones'});
  for (const id of SCREENS) {
    phones[id] = new Phone(view(id), '飞鸿速运');
    phones[id].off('还没有收到');
    rack.append(phones[id].el);
  }
  const reports = ctx.operator ? `#/e/${encodeURIComponent(demo.enterprise)}/reports` : '#/reports';
  let turn = 0;

  async function reply(number, body) {
    const sent = await api.post(`/api/demo/phones/${encodeURIComponent(number)}/reply`, {...body, line: line.value});
    if (!sent.ok) { note.show(api.errorText(sent), 'error'); return; }
    if (sent.body.via !== 'maap') {
      status.textContent = '已回复：短信网关收到了这条上行短信，回复的数字计为按钮点击，报表里可以看到';
      return;
    }
    status.textContent = '已回复，等机器人回答……';
    const mine = ++turn;
    const before = Number(phones.rcs.el.dataset.received || 0);
    for (let i = 0; i < 25 && mine === turn; i++) {
      await new Promise((r) => setTimeout(r, 400));
      await drawPhones(number);
      if (Number(phones.rcs.el.dataset.received || 0) > before) {
        status.textContent = '机器人已回答';
        phones.rcs.scrollEnd();
        return;
      }
    }
  }

  async function drawPhones(number) {
    const got = await api.get(`/api/demo/phones/${encodeURIComponent(number)}`);
    if (!got.ok) return;
    const by = Object.fromEntries(SCREENS.map((id) => [id, []]));
    for (const m of got.body.messages) by[m.card_sms ? 'cardsms' : m.channel].push(m);
    for (const id of SCREENS) {
      const p = phones[id];
      const list = by[id];
      if (!list.length) {
        p.off('没有收到');
        p.setNote('');
        delete p.el.dataset.received;
        continue;
      }
      if (id === 'rcs') {
        const items = list.flatMap((m) => m.messageList);
        p.show(renderMessageList(items, {onTap: (d) => reply(number, {postback: d.postback})}));
        p.setNote(`收到 ${list.length} 条 5G 消息`);
      } else if (id === 'cardsms') {
        const m = list[list.length - 1];
        p.show(h('div', {class: 'bubble bot card-wrap card-sms'},
          m.card_sms.texts.map((t, i) => h(i ? 'p' : 'h3', {class: i ? 'card-desc' : 'card-title'}, t)),
          h('p', {class: 'hint'}, `短信原文：${m.text}`)));
        p.setNote('手机厂商把这条短信显示成了卡片');
      } else {
        const m = list[list.length - 1];
        p.show(legacyScreen(id, legacyText(m.text), {onReply: (text) => reply(number, {text})}));
        const links = (m.text.match(/https?:\/\/\S+/g) || []).filter((u) => u.startsWith(location.origin + '/'));
        if (links.length) {
          p.add(h('p', {class: 'sim-links'}, '点开短信里的名片链接：',
            ...links.map((u) => h('a', {href: u, target: '_blank', rel: 'noopener'}, u.slice(location.origin.length)))));
        }
        if (m.failed) p.setNote('没有送达（运营商回执：失败）', 'error');
      }
      p.el.dataset.received = String(list.length);
    }
    rack.dataset.updated = String(Date.now());
  }

  function drawSteps(d) {
    clear(steps).append(...(d.attempts || []).map((a) => h('li', {dataset: {channel: a.channel, state: a.state}},
      h('strong', {}, CHANNEL_NAME[a.channel] || a.channel), '：', STATE[a.state] || a.state,
      a.detail && detailText(a.detail) ? h('span', {class: 'hint'}, `（${detailText(a.detail)}）`) : null)));
  }

  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const mine = ++turn;
    delete steps.dataset.done;  // before any await: a new call's result is awaited, not the last one's
    const number = phone.value;
    const callId = `demo-${Date.now().toString(36)}`;
    const placed = await api.post('/api/calls', {call_id: callId, caller: line.value, callee: number, phase: phase.value});
    if (!placed.ok) { note.show(api.errorText(placed), 'error'); return; }
    note.show('');
    status.textContent = '已拨出，名片发送中……';
    clear(steps);
    for (let i = 0; i < 60 && mine === turn; i++) {
      const call = await api.get(`/api/calls/${encodeURIComponent(callId)}`);
      const d = call.ok ? call.body.deliveries[0] : null;
      if (d) drawSteps(d);
      await drawPhones(number);
      if (d && DONE.has(d.state)) {
        status.textContent = `送达结果：${STATE[d.state] || d.state}${d.channel ? `（${CHANNEL_NAME[d.channel] || d.channel}）` : ''}`;
        steps.dataset.done = d.state;
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }}},
  field('线路', line, '企业「飞鸿速运」的线路'),
  field('对方手机', phone),
  shows,
  field('时机', phase),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '拨打')),
  note);
  main.append(
    h('p', {class: 'lead'}, '演示：电话接通或挂断后，名片经模拟的运营商网络送到对方手机。手机上显示的是模拟网络实际收到的内容；'
      + '在 5G 消息里点按钮、在 USSD 或短信里回复数字，机器人会回答。'),
    section('电话', form),
    section('发送经过', status, steps, h('p', {}, h('a', {href: reports}, '到报表里看这次发送'))),
    section('对方手机', rack));
}
