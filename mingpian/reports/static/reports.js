// The reports page: asks the JSON API with the enterprise's key (kept in sessionStorage only)
// and draws the charts. Data reaches the DOM through textContent only (see /static/dom.js).

import {clear} from '/static/dom.js';
import {reportView} from './report_view.js';

const form = document.getElementById('login');
const out = document.getElementById('report');
const error = document.getElementById('error');
const status = document.getElementById('status');

async function api(path, key) {
  const resp = await fetch(path, {headers: {Authorization: `Bearer ${key}`}});
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.message || `HTTP ${resp.status}`);
  return body;
}

async function load(enterprise, key) {
  error.hidden = true;
  status.textContent = '加载中…';
  try {
    const e = encodeURIComponent(enterprise);
    const [report, usage] = await Promise.all([api(`/api/enterprises/${e}/report`, key),
      api(`/api/enterprises/${e}/usage?by=day,channel`, key)]);
    clear(out).append(reportView(report, usage));
    status.textContent = '已加载';
  } catch (exc) {
    clear(out);
    error.textContent = `无法加载：${exc.message}`;
    error.hidden = false;
    status.textContent = '';
  }
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  const enterprise = String(data.get('enterprise') || '');
  const key = String(data.get('key') || '');
  sessionStorage.setItem('mp-report', JSON.stringify({enterprise, key}));
  load(enterprise, key);
});

const saved = JSON.parse(sessionStorage.getItem('mp-report') || 'null');
const wanted = new URLSearchParams(location.search).get('enterprise');
if (saved) {
  form.elements.enterprise.value = wanted || saved.enterprise;
  form.elements.key.value = saved.key;
  load(form.elements.enterprise.value, saved.key);
} else if (wanted) {
  form.elements.enterprise.value = wanted;
}
