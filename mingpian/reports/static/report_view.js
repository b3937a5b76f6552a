// The report's charts and tables from `/report` and `/usage` answers, as the console's reports
// page shows them (the reports page at /reports draws its own, with a date range). Data reaches the DOM through textContent only (see /static/dom.js).

import {h} from '/static/dom.js';
import {hBars, sized, stackedBars} from './charts.js';

// displayed: a card SMS the phone drew (the vendor's render receipt), beyond delivered
const OUTCOMES = ['delivered', 'displayed', 'failed', 'timeout', 'revoked', 'other'];
const OUTCOME_NAMES = {delivered: '送达', displayed: '已展示', failed: '失败', timeout: '超时', revoked: '已撤回',
  other: '其他'};
const CHANNEL_NAMES = {rcs: '5G 消息', ussd: 'USSD', flash: '闪信', sms: '短信', cardsms: '卡片短信'};
const channelName = (c) => CHANNEL_NAMES[c] || c;
const KIND_NAMES = {pool: '共享套餐', line: '号码专属'};
const POLICY_NAMES = {stop: '用完即停', overage: '超出计费'};

function outcome(o) {
  return OUTCOMES.includes(o) ? o : 'other';
}

function legend(keys, names) {
  return h('ul', {class: 'legend'}, keys.map((k) => h('li', {}, h('i', {class: `c-${k}`}), names[k] || k)));
}

function table(headers, rows) {
  return h('details', {}, h('summary', {text: '数据'}),
    h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {text: x})))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {class: typeof c === 'number' ? 'num' : null,
        text: c})))))));
}

function figure(caption, ...children) {
  return h('figure', {}, h('figcaption', {text: caption}), ...children);
}

function tapsByButton(taps) {
  const sum = new Map();
  for (const t of taps) {
    const label = `${t.card} · ${t.button}`;
    sum.set(label, (sum.get(label) || 0) + t.taps);
  }
  return [...sum.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([label, value]) => ({label, value}));
}

/** A note when the range starts before the oldest day the records read are kept (null if not). */
export function prunedNote(...reports) {
  const kept = reports.filter((r) => r && r.pruned).flatMap((r) => Object.values(r.kept_since || {}));
  if (!kept.length) return null;
  const since = kept.sort().at(-1);
  return h('p', {class: 'note pruned', role: 'note', text: `所选范围早于保留期：${since} 之前的投递明细、扣费和点击记录已按保留期删除，`
    + '这些天的投递结果、用量和点击在此不全；投递漏斗读每天的汇总，不受影响。'});
}

/** The report's charts and tables as one element (also drawn by the console's reports page). */
export function reportView(report, usage) {
  const attempts = report.attempts || [];
  const byDay = new Map();
  const byChannel = new Map();
  for (const a of attempts) {
    const key = `${a.day} ${a.channel}`;
    const g = byDay.get(key) || {label: `${a.day.slice(5)} ${channelName(a.channel)}`, parts: {}};
    g.parts[outcome(a.outcome)] = (g.parts[outcome(a.outcome)] || 0) + a.attempts;
    byDay.set(key, g);
    const c = byChannel.get(a.channel) || {total: 0, delivered: 0, latency: 0};
    c.total += a.attempts;
    if (a.outcome === 'delivered' || a.outcome === 'displayed') {
      c.delivered += a.attempts;
      c.latency += (a.mean_seconds || 0) * a.attempts;
    }
    byChannel.set(a.channel, c);
  }
  const channels = [...byChannel.entries()];
  const charts = h('div', {class: 'charts'}, prunedNote(report, usage),
    figure('投递结果（按天、渠道）', sized((w) => stackedBars([...byDay.values()], OUTCOMES, '每天每个渠道的投递结果',
      {width: w, names: OUTCOME_NAMES})),
      legend(OUTCOMES, OUTCOME_NAMES),
      table(['天', '渠道', '结果', '次数'],
        attempts.map((a) => [a.day, channelName(a.channel), OUTCOME_NAMES[outcome(a.outcome)], a.attempts]))),
    figure('回执时延（平均）', sized((w) => hBars(channels.map(([ch, c]) => ({label: channelName(ch),
      value: c.delivered ? c.latency / c.delivered : 0})), '各渠道从提交到回执的平均时间',
    {width: w, format: (v) => (v >= 10 ? `${Math.round(v)} 秒` : `${Math.round(v * 1000)} 毫秒`)}))),
    figure('回落率', sized((w) => hBars(channels.map(([ch, c]) => ({label: channelName(ch), value: c.total - c.delivered,
      of: c.total, cls: 'c-failed'})), '各渠道未送达而转下一渠道的尝试', {width: w})),
      table(['渠道', '尝试', '送达'], channels.map(([ch, c]) => [channelName(ch), c.total, c.delivered]))),
    figure('套餐余量', sized((w) => hBars((report.packages || []).map((p) => ({label: p.id, value: p.used, of: p.units})),
      '各套餐已用条数', {width: w})),
      table(['套餐', '类型', '总量', '已用', '剩余', '超出', '策略'], (report.packages || []).map((p) =>
        [p.id, KIND_NAMES[p.kind] || p.kind, p.units, p.used, p.remaining, p.overage, POLICY_NAMES[p.policy] || p.policy]))),
    figure('用量与费用（按天、渠道）', table(['天', '渠道', '条数', '单位', '超出单位', '费用（元）'],
      (usage.rows || []).map((r) => [r.day, channelName(r.channel), r.messages, r.units, r.overage_units, r.cost]))),
    figure('按钮点击', sized((w) => hBars(tapsByButton(report.taps || []), '各按钮被点击的次数', {width: w})),
      table(['卡片', '按钮', '天', '点击'], (report.taps || []).map((t) => [t.card, t.button, t.day, t.taps]))),
    figure('广告曝光', table(['卡片', '天', '曝光', '点击'],
      (report.ads || []).map((a) => [a.card, a.day, a.impressions, a.taps]))));
  return charts;
}
