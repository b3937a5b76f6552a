// The delivery report drawn from `/report`, `/usage?by=day,channel` and `/optouts` answers: the
// totals, then a figure per measure, each chart drawn at its box's width (charts.js `sized`) with
// its numbers in a table beneath. One implementation for the reports page at /reports and the
// console's reports page. Data reaches the DOM through textContent only (see /static/dom.js).

import {h} from '/static/dom.js';
import {maskedPhone} from '/static/numbers.js';
import {hBars, sized, stackedBars} from './charts.js';

// displayed: a card SMS the phone drew (the vendor's render receipt), beyond delivered
const OUTCOMES = ['delivered', 'displayed', 'failed', 'timeout', 'revoked', 'other'];
const OUTCOME_NAMES = {delivered: '送达', displayed: '已展示', failed: '失败', timeout: '超时', revoked: '已撤回',
  other: '其他'};
const CHANNELS = ['rcs', 'cardsms', 'ussd', 'flash', 'sms'];
const CHANNEL_NAMES = {rcs: '5G 消息', cardsms: '卡片短信', ussd: 'USSD', flash: '闪信', sms: '短信'};
const KINDS = {pool: '共享套餐', line: '号码专属'};
const POLICIES = {stop: '用完即停', overage: '超出计费'};

const channelName = (c) => CHANNEL_NAMES[c] || c;
const outcome = (o) => (OUTCOMES.includes(o) ? o : 'other');
const yuan = (v) => (Math.round(v * 100) / 100).toFixed(2);
const pct = (a, b) => (b ? `${Math.round((a / b) * 1000) / 10}%` : '—');
const dayLabel = (d) => String(d).slice(5);

/** China's day of a Unix time, as every ledger day (delivery/metering/ledger.py day_of). */
export function dayOf(epoch) {
  return new Date(epoch * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

function legend(keys, names) {
  return h('ul', {class: 'legend'}, keys.map((k) => h('li', {}, h('i', {class: `c-${k}`}), names[k] || k)));
}

function table(headers, rows) {
  return h('details', {}, h('summary', {text: '查看数据'}),
    h('div', {class: 'table-wrap'}, h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {text: x})))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {class: typeof c === 'number' ? 'num' : null,
        text: c}))))))));
}

/** A figure whose chart, `draw(width)`, is drawn at its own width, now and on every resize. */
function chartFigure(caption, draw, ...extra) {
  return h('figure', {}, h('figcaption', {text: caption}), sized(draw), ...extra);
}

function byDay(rows, keyOf, valueOf) {
  const days = new Map();
  for (const r of rows) {
    const g = days.get(r.day) || {label: dayLabel(r.day), parts: {}};
    const k = keyOf(r);
    g.parts[k] = (g.parts[k] || 0) + valueOf(r);
    days.set(r.day, g);
  }
  return [...days.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, g]) => g);
}

function tapsByButton(taps) {
  const sum = new Map();
  for (const t of taps) {
    const label = `${t.card} · ${t.button}`;
    sum.set(label, (sum.get(label) || 0) + t.taps);
  }
  return [...sum.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([label, value]) => ({label, value}));
}

function runOutText(p) {
  const pr = p.projection || {};
  const parts = [];
  if (pr.runOut && p.remaining <= 0) parts.push('已用完');
  else if (pr.runOut) parts.push(`按近期日均 ${pr.dailyUnits} 单位，预计 ${pr.runOut} 用完`);
  else parts.push('近期没有用量，暂不会用完');
  if (pr.expires) parts.push(`${pr.expires} 到期`);
  if (pr.runOut && pr.expires && pr.runOut > pr.expires && p.remaining > 0) parts.push('到期时还有余量');
  return parts.join('；');
}

/** A note when the range starts before the oldest day the records read are kept (null if not). */
export function prunedNote(...reports) {
  const kept = reports.filter((r) => r && r.pruned).flatMap((r) => Object.values(r.kept_since || {}));
  if (!kept.length) return null;
  const since = kept.sort().at(-1);
  return h('p', {class: 'note pruned', role: 'note', text: `所选范围早于保留期：${since} 之前的投递明细、扣费和点击记录已按保留期删除，`
    + '这些天的投递结果、用量和点击在此不全；投递漏斗读每天的汇总，不受影响。'});
}

/** The totals (计费消息, 费用, 送达率, 退订) and the figures, as elements to append in order;
 * `funnel` (an element, or null) goes between them. */
export function reportView(report, usage, optouts, funnel = null) {
  const attempts = report.attempts || [];
  const byChannel = new Map();
  for (const a of attempts) {
    const c = byChannel.get(a.channel) || {total: 0, delivered: 0, latency: 0};
    c.total += a.attempts;
    if (a.outcome === 'delivered' || a.outcome === 'displayed') {
      c.delivered += a.attempts;
      c.latency += (a.mean_seconds || 0) * a.attempts;
    }
    byChannel.set(a.channel, c);
  }
  const channels = [...byChannel.entries()].sort((a, b) => CHANNELS.indexOf(a[0]) - CHANNELS.indexOf(b[0]));
  const usageRows = usage.rows || [];
  const usedChannels = CHANNELS.filter((c) => usageRows.some((r) => r.channel === c));
  const packages = report.packages || [];
  const opt = (optouts && optouts.optouts) || [];
  const optRows = opt.map((o) => ({...o, day: dayOf(o.at)}));
  const cost = usageRows.reduce((a, r) => a + (r.cost || 0), 0);
  const sent = usageRows.reduce((a, r) => a + (r.messages || 0), 0);
  const delivered = channels.reduce((a, [, c]) => a + c.delivered, 0);
  const tried = channels.reduce((a, [, c]) => a + c.total, 0);

  const summary = h('ul', {class: 'totals'},
    h('li', {}, h('span', {text: '计费消息'}), h('strong', {text: String(sent)})),
    h('li', {}, h('span', {text: '费用（元）'}), h('strong', {text: yuan(cost)})),
    h('li', {}, h('span', {text: '送达率'}), h('strong', {text: pct(delivered, tried)})),
    h('li', {}, h('span', {text: '退订'}), h('strong', {text: String(opt.length)})));

  const grid = h('div', {class: 'charts'},
    chartFigure('用量（条，按天、渠道）',
      (w) => stackedBars(byDay(usageRows, (r) => r.channel, (r) => r.messages), usedChannels, '每天各渠道的计费消息条数',
        {width: w, names: CHANNEL_NAMES, whole: true}),
      legend(usedChannels, CHANNEL_NAMES)),
    chartFigure('费用（元，按天）',
      (w) => stackedBars(byDay(usageRows, () => 'cost', (r) => r.cost || 0), ['cost'], '每天的费用',
        {width: w, names: {cost: '费用'}, format: (v) => (v >= 10 ? String(Math.round(v)) : yuan(v))}),
      table(['天', '渠道', '条数', '计费单位', '超出单位', '费用（元）'],
        usageRows.map((r) => [r.day, channelName(r.channel), r.messages, r.units, r.overage_units, yuan(r.cost || 0)]))),
    chartFigure('投递结果（按天）',
      (w) => stackedBars(byDay(attempts, (a) => outcome(a.outcome), (a) => a.attempts), OUTCOMES, '每天的投递结果',
        {width: w, names: OUTCOME_NAMES, whole: true}),
      legend(OUTCOMES, OUTCOME_NAMES),
      table(['天', '渠道', '结果', '次数'], attempts.map((a) => [a.day, channelName(a.channel), OUTCOME_NAMES[outcome(a.outcome)], a.attempts]))),
    chartFigure('各渠道送达率',
      (w) => hBars(channels.map(([ch, c]) => ({label: channelName(ch), value: c.delivered, of: c.total, cls: 'c-delivered',
        text: `${pct(c.delivered, c.total)}（${c.delivered}/${c.total}）`})), '各渠道送达的尝试占比', {width: w}),
      table(['渠道', '尝试', '送达', '送达率'], channels.map(([ch, c]) => [channelName(ch), c.total, c.delivered, pct(c.delivered, c.total)]))),
    chartFigure('各渠道回执时延（平均）',
      (w) => hBars(channels.map(([ch, c]) => ({label: channelName(ch), value: c.delivered ? c.latency / c.delivered : 0})),
        '各渠道从提交到送达回执的平均时间', {width: w, format: (v) => (v >= 10 ? `${Math.round(v)} 秒` : `${Math.round(v * 1000)} 毫秒`)})),
    chartFigure('套餐余量',
      (w) => hBars(packages.map((p) => ({label: p.id, value: p.used, of: p.units,
        text: `已用 ${p.used} / ${p.units}`})), '各套餐已用单位', {width: w}),
      h('ul', {class: 'runout'}, packages.map((p) => h('li', {dataset: {package: p.id}}, h('strong', {text: p.id}), '：',
        runOutText(p)))),
      table(['套餐', '类型', '总量', '已用', '剩余', '超出', '策略', '日均用量', '预计用完', '到期'], packages.map((p) =>
        [p.id, KINDS[p.kind] || p.kind, p.units, p.used, p.remaining, p.overage, POLICIES[p.policy] || p.policy,
          p.projection ? p.projection.dailyUnits : '', p.projection?.runOut || '—', p.projection?.expires || '']))),
    chartFigure('退订（按天）',
      (w) => stackedBars(byDay(optRows, () => 'optout', () => 1), ['optout'], '每天退订的号码数',
        {width: w, names: {optout: '退订'}, whole: true}),
      table(['号码', '时间', '渠道', '回复内容'], opt.map((o) => [maskedPhone(o.number),
        new Date(o.at * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 16).replace('T', ' '), channelName(o.channel), o.text]))),
    chartFigure('按钮点击',
      (w) => hBars(tapsByButton(report.taps || []), '各按钮被点击的次数', {width: w}),
      table(['卡片', '按钮', '天', '点击'], (report.taps || []).map((t) => [t.card, t.button, t.day, t.taps]))),
    chartFigure('广告曝光（按天）',
      (w) => stackedBars(byDay(report.ads || [], () => 'impressions', (a) => a.impressions), ['impressions'], '每天的广告曝光',
        {width: w, names: {impressions: '曝光'}, whole: true}),
      table(['卡片', '天', '曝光', '点击'], (report.ads || []).map((a) => [a.card, a.day, a.impressions, a.taps]))));
  // a range that starts before the oldest day kept says so above the figures
  return [prunedNote(report, usage), summary, funnel, grid].filter(Boolean);
}
