// Legacy phone screens for the ?format=ussd|flash|sms renders (renderer/legacy.py LegacyText):
// the text exactly as sent, encoding, segment count, units left, and the numbered reply menu.

import {h} from './dom.js';

const CHANNEL_NAMES = {ussd: 'USSD', flash: '闪信', sms: '短信'};

/** Normalise a legacy render response (bare LegacyText JSON or wrapped in {legacy: ...}). */
export function legacyBody(body) {
  if (!body || typeof body !== 'object') return null;
  if (typeof body.text === 'string') return body;
  for (const key of ['legacy', 'result', 'message']) {
    if (body[key] && typeof body[key].text === 'string') return body[key];
  }
  return null;
}

/** A legacy user's reply → menu key, mirroring renderer/legacy.py parse_reply for common forms. */
export function parseReply(text) {
  if (typeof text !== 'string' || text.length > 40) return null;
  const s = text.normalize('NFKC').trim().replace(/^[。.!！?？,，、;；~～"'“”‘’「」()（）[\]【】\s]+|[。.!！?？,，、;；~～"'“”‘’「」()（）[\]【】\s]+$/g, '').toLowerCase();
  const m = /^(?:回复|回覆|回|复|reply)?[\s:#-]*([0-9]{1,3}|td|t)$/.exec(s);
  if (!m) return null;
  if (m[1] === 't' || m[1] === 'td') return 'T';
  const n = Number(m[1]);
  return n > 0 ? String(n) : null;
}

function meta(lt, channel) {
  const items = [
    ['编码', `${lt.encoding}${lt.dcsHex ? ` (DCS 0x${lt.dcsHex})` : ''}`],
  ];
  if (channel === 'sms') {
    items.push(['分段', String(lt.segmentCount ?? (lt.segments || []).length)]);
  }
  items.push(['字数', `${lt.units}${lt.limit ? ` / ${lt.limit}` : ''}`]);
  items.push([channel === 'sms' ? '本段剩余' : '剩余', String(lt.remaining ?? '')]);
  return h('dl', {class: 'legacy-meta'}, items.map(([k, v]) => [h('dt', {}, k), h('dd', {dataset: {k}}, v)]));
}

// `shortened` names what gave way to fit the screen (renderer/legacy.py): stable words → Chinese.
function shortenedWord(what) {
  const card = /^card (\d+)( description)?$/.exec(what);
  if (card) return card[2] ? `第 ${card[1]} 张卡片的描述` : `第 ${card[1]} 张卡片`;
  return {description: '描述', title: '标题', signature: '签名'}[what] || what;
}

// The notes are said from the structured fields (the API's `notes` strings are English).
function notes(lt, channel) {
  const out = [];
  if (lt.dropped && lt.dropped.length) out.push(`放不下的按钮：${lt.dropped.map((d) => `${d.key} ${d.text}`).join('、')}`);
  if (lt.shortened && lt.shortened.length) out.push(`已缩短：${lt.shortened.map(shortenedWord).join('、')}`);
  if (lt.override) out.push('使用了模板里为老手机写的文本');
  const n = lt.segmentCount ?? (lt.segments || []).length;
  if (channel === 'sms' && n > 1) out.push(`分 ${n} 条长短信发送`);
  return out.length ? h('ul', {class: 'legacy-notes'}, out.map((x) => h('li', {}, x))) : null;
}

/** Screen content for one legacy channel; `onReply(text)` is called for a typed reply. */
export function legacyScreen(channel, lt, {onReply} = {}) {
  const name = CHANNEL_NAMES[channel] || channel;
  let screen;
  if (channel === 'ussd') {
    screen = h('div', {class: 'ussd-dialog', role: 'dialog', 'aria-label': 'USSD 消息'},
      h('pre', {class: 'legacy-text'}, lt.text));
  } else if (channel === 'flash') {
    screen = h('div', {class: 'flash-popup', role: 'alertdialog', 'aria-label': '闪信'},
      h('p', {class: 'flash-head'}, '闪信'),
      h('pre', {class: 'legacy-text'}, lt.text));
  } else {
    const segs = lt.segments && lt.segments.length > 1 ? lt.segments : null;
    screen = h('div', {class: 'sms-thread'},
      h('div', {class: 'bubble bot sms'}, h('pre', {class: 'legacy-text'}, lt.text)),
      segs ? h('ol', {class: 'segments', 'aria-label': '分段'},
        segs.map((s) => h('li', {}, `${s.seq}: ${s.units}/${s.capacity}`))) : null);
  }
  const replies = h('div', {class: 'legacy-replies', 'aria-live': 'polite'});
  const input = h('input', {type: 'text', class: 'legacy-input', 'aria-label': `${name}回复`, placeholder: '回复数字，如 1', inputmode: 'numeric'});
  const send = () => {
    const text = input.value;
    if (!text.trim()) return;
    input.value = '';
    if (onReply) onReply(text, replies);
  };
  input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); send(); } });
  const form = h('div', {class: 'legacy-compose'}, input, h('button', {type: 'button', on: {click: send}}, '发送'));
  return h('div', {class: `legacy legacy-${channel}`}, screen, replies, form, meta(lt, channel), notes(lt, channel));
}
