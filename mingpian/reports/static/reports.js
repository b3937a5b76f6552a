// The reports page: asks the JSON API with the enterprise's key (kept in sessionStorage only)
// and draws the charts. Data reaches the DOM through textContent only (see /static/dom.js).

import {h, clear, debounce} from '/static/dom.js';
import {hBars, stackedBars} from './charts.js';
import {funnelView} from './funnel_view.js';
import {prunedNote} from './report_view.js';

const OUTCOMES = ['delivered', 'displayed', 'failed', 'timeout', 'revoked', 'other'];  // displayed: a card SMS drawn
const OUTCOME_NAMES = {delivered: '送达', displayed: '已展示', failed: '失败', timeout: '超时', revoked: '已撤回', other: '其他'};
const CHANNELS = ['rcs', 'cardsms', 'ussd', 'flash', 'sms'];
const CHANNEL_NAMES = {rcs: '5G 消息', cardsms: '卡片短信', ussd: 'USSD', flash: '闪信', sms: '短信'};
const KINDS = {pool: '共享套餐', line: '号码专属'};
const POLICIES = {stop: '用完即停', overage: '超出计费'};
const form = document.getElementById('login');
const out = document.getElementById('report');
const error = document.getElementById('error');
const status = document.getElementById('status');
const charts = []; // [{box, draw(width)}], redrawn at the box's width on resize
let session = null; // {enterprise, key}

const channelName = (c) => CHANNEL_NAMES[c] || c;
const outcome = (o) => (OUTCOMES.includes(o) ? o : 'other');
const yuan = (v) => (Math.round(v * 100) / 100).toFixed(2);
const pct = (a, b) => (b ? `${Math.round((a / b) * 1000) / 10}%` : '—');
const dayLabel = (d) => String(d).slice(5);

function maskNumber(n) {
  const s = String(n);
  return s.length > 8 ? `${s.slice(0, s.length - 8)}****${s.slice(-4)}` : s;
}

function dayOf(epoch) {
  // China time, as every ledger day (delivery/metering/ledger.py day_of)
  return new Date(epoch * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

async function api(path, key, {raw = false} = {}) {
  const resp = await fetch(path, {headers: {Authorization: `Bearer ${key}`}});
  if (raw && resp.ok) return resp;
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const where = body.problems && body.problems[0] ? `（${body.problems[0].path}）` : '';
    throw new Error(resp.status === 401 || resp.status === 403 ? '企业 ID 或 API 密钥不对'
      : resp.status === 404 ? '没有这个企业' : `请求失败${where}，HTTP ${resp.status}`);
  }
  return body;
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

/** A figure whose chart is drawn at its own width, now and on every resize. */
function chartFigure(caption, draw, ...extra) {
  const box = h('div', {class: 'chart'});
  charts.push({box, draw});
  return h('figure', {}, h('figcaption', {text: caption}), box, ...extra);
}

function drawCharts() {
  for (const c of charts) {
    if (!c.box.isConnected) continue;
    clear(c.box).append(c.draw(c.box.clientWidth));
  }
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

function render(report, usage, optouts, funnel) {
  charts.length = 0;
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
  const opt = optouts.optouts || [];
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
      table(['号码', '时间', '渠道', '回复内容'], opt.map((o) => [maskNumber(o.number),
        new Date(o.at * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 16).replace('T', ' '), channelName(o.channel), o.text]))),
    chartFigure('按钮点击',
      (w) => hBars(tapsByButton(report.taps || []), '各按钮被点击的次数', {width: w}),
      table(['卡片', '按钮', '天', '点击'], (report.taps || []).map((t) => [t.card, t.button, t.day, t.taps]))),
    chartFigure('广告曝光（按天）',
      (w) => stackedBars(byDay(report.ads || [], () => 'impressions', (a) => a.impressions), ['impressions'], '每天的广告曝光',
        {width: w, names: {impressions: '曝光'}, whole: true}),
      table(['卡片', '天', '曝光', '点击'], (report.ads || []).map((a) => [a.card, a.day, a.impressions, a.taps]))));
  // a range that starts before the oldest day kept says so above the figures
  clear(out).append(...[prunedNote(report, usage)].filter(Boolean), summary, funnel, grid);
  drawCharts();
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

function rangeQuery() {
  const q = new URLSearchParams();
  const from = document.getElementById('from').value;
  const to = document.getElementById('to').value;
  if (from) q.set('from', from);
  if (to) q.set('to', to);
  return q;
}

async function load() {
  if (!session) return;
  error.hidden = true;
  status.textContent = '加载中…';
  document.getElementById('range').hidden = false;
  try {
    const e = encodeURIComponent(session.enterprise);
    const q = rangeQuery();
    const usageQ = new URLSearchParams(q);
    usageQ.set('by', 'day,channel');
    const [report, usage, optouts, funnel] = await Promise.all([
      api(`/api/enterprises/${e}/report?${q}`, session.key),
      api(`/api/enterprises/${e}/usage?${usageQ}`, session.key),
      api(`/api/enterprises/${e}/optouts?${q}`, session.key),
      // the funnel covers at most 366 days: a longer range shows why instead of the funnel
      api(`/api/enterprises/${e}/reports/funnel?${q}`, session.key).then(funnelView,
        (exc) => h('p', {class: 'error', text: `投递漏斗最多看 366 天：${exc.message}`}))]);
    render(report, usage, optouts, funnel);
    status.textContent = '已加载';
  } catch (exc) {
    clear(out);
    error.textContent = `无法加载：${exc.message}`;
    error.hidden = false;
    status.textContent = '';
  }
}

async function downloadCsv() {
  if (!session) return;
  const e = encodeURIComponent(session.enterprise);
  const q = rangeQuery();
  q.set('by', 'day,channel,package');
  q.set('format', 'csv');
  try {
    const resp = await api(`/api/enterprises/${e}/usage?${q}`, session.key, {raw: true});
    const url = URL.createObjectURL(await resp.blob());
    const a = h('a', {href: url, download: `usage-${session.enterprise}${q.get('from') ? `-${q.get('from')}` : ''}.csv`});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    status.textContent = '已下载用量 CSV';
  } catch (exc) {
    error.textContent = `无法下载：${exc.message}`;
    error.hidden = false;
  }
}

// The range starts as the last 30 days (China time, as the ledger's days).
const today = dayOf(Date.now() / 1000);
document.getElementById('to').value = today;
document.getElementById('from').value = dayOf(Date.now() / 1000 - 29 * 86400);

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  session = {enterprise: String(data.get('enterprise') || ''), key: String(data.get('key') || '')};
  sessionStorage.setItem('mp-report', JSON.stringify(session));
  load();
});
document.getElementById('range').addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
document.getElementById('csv').addEventListener('click', downloadCsv);
window.addEventListener('resize', debounce(drawCharts, 150));

const saved = JSON.parse(sessionStorage.getItem('mp-report') || 'null');
const wanted = new URLSearchParams(location.search).get('enterprise');
if (saved) {
  form.elements.enterprise.value = wanted || saved.enterprise;
  form.elements.key.value = saved.key;
  session = {enterprise: form.elements.enterprise.value, key: saved.key};
  load();
} else if (wanted) {
  form.elements.enterprise.value = wanted;
}
