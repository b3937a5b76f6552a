// The reports page: asks the JSON API with the enterprise's key (kept in sessionStorage only)
// and draws the report with report_view.js (as the console's reports page does). Data reaches
// the DOM through textContent only (see /static/dom.js).

import {h, clear} from '/static/dom.js';
import {funnelView} from './funnel_view.js';
import {dayOf, reportView} from './report_view.js';

const form = document.getElementById('login');
const out = document.getElementById('report');
const error = document.getElementById('error');
const status = document.getElementById('status');
let session = null; // {enterprise, key}

// a query field by the label the page gives it (the JSON answer names it for programs)
const WHERE = {from: '从', to: '到', by: '分组', bucket: '时间粒度'};

async function api(path, key, {raw = false} = {}) {
  const resp = await fetch(path, {headers: {Authorization: `Bearer ${key}`}});
  if (raw && resp.ok) return resp;
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new Error(resp.status === 401 || resp.status === 403 ? '企业 ID 或 API 密钥不对'
      : resp.status === 404 ? '没有这个企业'
        : `请求失败（HTTP ${resp.status}）${WHERE[body.problems?.[0]?.path] ? `：请检查「${WHERE[body.problems[0].path]}」` : ''}`);
  }
  return body;
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
    clear(out).append(...reportView(report, usage, optouts, funnel));
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
