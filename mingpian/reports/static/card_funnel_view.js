// A card's funnel from the event stream (`/reports/funnel?card=&by=&bucket=`): per group (variant,
// version, channel or card) 已发送 → 已送达 → 已展示 → 已打开链接 → 已点击 as bars; each conversion
// compared across the groups with its 95% Wilson interval as a whisker; the times to open and to
// tap (median, p90), the share of taps after a fall-over; the numbers per day or hour in a table.
// Charts are charts.js's, drawn at their box's width. Data reaches the DOM through textContent.

import {h} from '/static/dom.js';
import {hBars, intervalBars, sized} from './charts.js';

export const STAGES = ['sent', 'delivered', 'displayed', 'opened', 'tapped'];
export const STAGE_NAMES = {sent: '已发送', delivered: '已送达', displayed: '已展示', opened: '已打开链接', tapped: '已点击'};
const OTHER_NAMES = {replied: '已回复', opted_out: '已退订'};
const CHANNEL_NAMES = {rcs: '5G 消息', cardsms: '卡片短信', ussd: 'USSD', flash: '闪信', sms: '短信'};
// the conversions drawn: delivered of sent, then each later step of the cards delivered (a text
// message is never "displayed", its taps and opens still count), and tapped of sent (the
// experiments' tap rate)
const STEPS = [
  ['sent', 'delivered', '送达率'], ['delivered', 'displayed', '展示率'], ['delivered', 'opened', '打开率'],
  ['delivered', 'tapped', '点击率（占已送达）'], ['sent', 'tapped', '点击率（占已发送）'],
];
export const BY_NAMES = {variant: '实验版本', version: '名片版本', channel: '渠道', card: '名片'};
const pct = (r) => (r === null || r === undefined ? '—' : `${Math.round(r * 1000) / 10}%`);

/** A group's name as a person reads it. */
export function groupName(by, g) {
  if (by === 'variant') return g ? `版本 ${g}` : '未参加实验';
  if (by === 'version') return g && g !== '0' ? `第 ${g} 版` : '版本不详';
  if (by === 'channel') return CHANNEL_NAMES[g] || g;
  if (by === 'card') return `名片 ${g}`;
  return '全部';
}

/** Seconds as a short Chinese duration. */
export function duration(s) {
  if (s === null || s === undefined) return '—';
  if (s < 60) return `${Math.round(s * 10) / 10} 秒`;
  if (s < 3600) return `${Math.round(s / 6) / 10} 分钟`;
  return `${Math.round(s / 360) / 10} 小时`;
}

function stageBars(name, g) {
  const draw = (w) => hBars(STAGES.map((k, i) => ({
    label: STAGE_NAMES[k],
    value: g[k],
    of: Math.max(g.sent, g[k], 1),
    cls: `c-step-${k}`,
    text: i ? `${g[k]}（${pct(g.sent ? g[k] / g.sent : null)}）` : String(g[k]),
  })), `${name}：${STAGES.map((k) => STAGE_NAMES[k]).join(' → ')}`, {width: w});
  return h('figure', {class: 'card-funnel-group'}, h('figcaption', {text: name}), sized(draw));
}

function conversionFigure(groups, by, [from, to, title]) {
  const rows = groups.map((g) => {
    const c = g.conversions.find((x) => x.from === from && x.to === to) || {rate: null};
    return {label: groupName(by, g.group), rate: c.rate, low: c.low, high: c.high, cls: `c-step-${to}`};
  });
  const caption = `${title}：${STAGE_NAMES[to]} ÷ ${STAGE_NAMES[from]}`;
  return h('figure', {class: 'card-funnel-rate'}, h('figcaption', {text: caption}),
    sized((w) => intervalBars(rows, `${caption}，线段为 95% 置信区间`, {width: w})));
}

function numbers(groups, by) {
  const headers = ['分组', ...STAGES.map((k) => STAGE_NAMES[k]), ...Object.values(OTHER_NAMES),
    '打开用时（中位数）', '打开用时（90 分位）', '点击用时（中位数）', '点击用时（90 分位）', '回落后点击占比'];
  const rows = groups.map((g) => [groupName(by, g.group), ...STAGES.map((k) => g[k]), g.replied, g.opted_out,
    duration(g.time_to_open.median), duration(g.time_to_open.p90), duration(g.time_to_tap.median),
    duration(g.time_to_tap.p90), pct(g.tapped_after_fallover)]);
  return h('div', {class: 'table-wrap'}, h('table', {class: 'card-funnel-numbers'},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {scope: 'col', text: x})))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {class: typeof c === 'number' ? 'num' : null, text: c})))))));
}

function bucketTable(groups, by, bucket) {
  const headers = [bucket === 'hour' ? '小时' : '天', '分组', ...STAGES.map((k) => STAGE_NAMES[k])];
  const rows = [];
  for (const g of groups) for (const b of g.buckets) rows.push([b.bucket.replace('T', ' '), groupName(by, g.group), ...STAGES.map((k) => b[k])]);
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return h('details', {}, h('summary', {text: bucket === 'hour' ? '按小时查看数据' : '按天查看数据'}),
    h('div', {class: 'table-wrap'}, h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {scope: 'col', text: x})))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {class: typeof c === 'number' ? 'num' : null, text: c}))))))));
}

/** The card funnel report as one element; `empty`: what to say (and do) when it has no groups. */
export function cardFunnelView(report, {empty = '这段时间还没有这张名片的发送记录。'} = {}) {
  const groups = report.groups || [];
  const by = report.by || '';
  const what = report.card ? `名片 ${report.card}` : '全部名片';
  const head = h('p', {class: 'funnel-range',
    text: `${what}，${report.from} 至 ${report.to}${by ? `，按${BY_NAMES[by]}分组` : ''}（“已发送”只计每次投递的第一次发送）`});
  if (!groups.length) {
    return h('div', {class: 'card-funnel', dataset: {groups: '0'}}, head, h('p', {class: 'card-funnel-empty', text: empty}));
  }
  const buttons = groups.filter((g) => Object.keys(g.buttons || {}).length).map((g) => h('li', {},
    `${groupName(by, g.group)}：`, Object.entries(g.buttons).map(([b, n]) => `「${b}」${n} 次`).join('，')));
  return h('div', {class: 'card-funnel', dataset: {groups: String(groups.length)}}, head,
    h('div', {class: 'card-funnel-groups'}, groups.map((g) => stageBars(groupName(by, g.group), g))),
    h('h3', {text: '转化率与 95% 置信区间'}),
    h('div', {class: 'card-funnel-groups'}, STEPS.map((s) => conversionFigure(groups, by, s))),
    h('h3', {text: '数字、用时与回落'}),
    numbers(groups, by),
    buttons.length ? h('div', {}, h('h3', {text: '各按钮的点击次数'}), h('ul', {class: 'card-funnel-buttons'}, buttons)) : null,
    bucketTable(groups, by, report.bucket));
}
