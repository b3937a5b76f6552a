// The delivery funnel (`/reports/funnel`) as the console's reports page shows it: for each channel
// 已发送 → 已送达 → 已展示 → 已打开链接, as bars of the cards sent with each step's conversion from
// the step before, then the numbers per day. Charts are charts.js's, drawn at their box's pixel
// width and again when it changes. Data reaches the DOM through textContent only (/static/dom.js).

import {h} from '/static/dom.js';
import {hBars, sized} from './charts.js';

export const STEPS = ['sent', 'delivered', 'displayed', 'opened'];
export const STEP_NAMES = {sent: '已发送', delivered: '已送达', displayed: '已展示', opened: '已打开链接'};
const CHANNEL_NAMES = {rcs: '5G 消息', cardsms: '卡片短信', ussd: 'USSD', flash: '闪信', sms: '短信'};
const ORDER = Object.keys(CHANNEL_NAMES); // as a chain usually tries them; others after
const rank = (c) => (ORDER.includes(c) ? ORDER.indexOf(c) : ORDER.length);
// What "displayed" means on each channel (docs/delivery.md, the funnel).
const SHOWN = {
  rcs: '已展示：5G 消息平台回报手机已展示',
  cardsms: '已展示：厂商回报卡片已渲染',
};
const SHOWN_LINK = '已展示：短信里的卡片页被打开';
const channelName = (c) => CHANNEL_NAMES[c] || c;
const pct = (r) => (r === null || r === undefined ? '—' : `${Math.round(r * 1000) / 10}%`);

/** One channel's (or the total's) steps as bars: each a share of the cards sent. */
function channelFunnel(caption, row, note) {
  const bars = (w) => hBars(STEPS.map((s, i) => ({
    label: STEP_NAMES[s],
    value: row[s],
    of: Math.max(row.sent, row[s], 1),
    cls: `c-step-${s}`,
    text: i ? `${row[s]}（${pct(row[`${s}_rate`])}）` : String(row[s]),
  })), `${caption}：${STEPS.map((s) => STEP_NAMES[s]).join(' → ')}`, {width: w});
  return h('figure', {class: 'funnel-channel'}, h('figcaption', {text: caption}), sized(bars),
    note ? h('p', {class: 'funnel-note', text: note}) : null);
}

function dayTable(days) {
  const headers = ['天', '渠道', ...STEPS.map((s) => STEP_NAMES[s]), '送达率', '展示率', '打开率'];
  return h('details', {}, h('summary', {text: '按天查看数据'}),
    h('div', {class: 'table-wrap'}, h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {text: x})))),
      h('tbody', {}, days.map((d) => h('tr', {}, [d.day, channelName(d.channel), ...STEPS.map((s) => d[s]),
        pct(d.delivered_rate), pct(d.displayed_rate), pct(d.opened_rate)].map((c) =>
        h('td', {class: typeof c === 'number' ? 'num' : null, text: c}))))))));
}

/** The funnel report (`GET /api/enterprises/{id}/reports/funnel`) as one element. */
export function funnelView(funnel) {
  const channels = [...(funnel.channels || [])].sort((a, b) => rank(a.channel) - rank(b.channel));
  const head = h('p', {class: 'funnel-range',
    text: `${funnel.from} 至 ${funnel.to}（按发送那天计）：${STEPS.map((s) => STEP_NAMES[s]).join(' → ')}`});
  if (!channels.length) {
    return h('section', {class: 'funnel'}, h('h2', {text: '投递漏斗'}), head, h('p', {text: '这段时间还没有发送记录。'}));
  }
  const figures = channels.map((c) => channelFunnel(channelName(c.channel), c, SHOWN[c.channel] || SHOWN_LINK));
  if (channels.length > 1) figures.push(channelFunnel('全部渠道', funnel.total));
  return h('section', {class: 'funnel'}, h('h2', {text: '投递漏斗'}), head,
    h('div', {class: 'funnel-channels'}, figures), dayTable(funnel.days || []));
}
