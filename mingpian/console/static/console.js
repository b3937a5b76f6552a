// The console: sign-in, the navigation for an enterprise or the operator, and the hash router
// (#/lines, #/e/<id>/lines for the operator looking at one enterprise, …). Each page module
// builds its part of <main> from API answers, with textContent only.

import {h, clear, announce} from '/static/dom.js';
import * as api from './capi.js';
import {button, field, input, notice} from './ui.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let session = null;
let asked = 0;  // the page last asked for: an older one still loading is not drawn over it

const ENTERPRISE_PAGES = [
  ['lines', '线路', () => import('./lines.js')],
  ['cards', '名片', () => import('./cards.js')],
  ['dry-run', '试拨', () => import('./dryrun.js')],
  ['staff', '员工名片', () => import('./staff.js')],
  ['brand', '品牌', () => import('./brand.js')],
  ['media', '媒体素材', () => import('./media.js')],
  ['keys', 'API 密钥', () => import('./account.js')],
  ['optouts', '退订', () => import('./account.js')],
  ['audit', '操作日志', () => import('./account.js')],
  ['packages', '套餐与余量', () => import('./account.js')],
  ['reports', '报表', () => import('./account.js')],
  ['simulate', '模拟来电', () => import('./simulate.js'), 'demo'],  // only while the demo runs
];
const OPERATOR_PAGES = [
  ['enterprises', '企业', () => import('./operator.js')],
  ['queue', '号码审核', () => import('./operator.js')],
  ['reviews', '名片审核', () => import('./reviews.js')],
  ['brands', '品牌变更', () => import('./brand.js')],
  ['pools', '套餐与共享池', () => import('./operator.js')],
  ['fleet', '全网报表', () => import('./operator.js')],
];

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'e' && parts[1]) return {eid: parts[1], name: parts[2] || 'lines', rest: parts.slice(3)};
  return {eid: null, name: parts[0] || '', rest: parts.slice(1)};
}

// enterprise id → its name, asked once: a person reads the name, the id stays in the URLs
const names = new Map();
async function enterpriseName(eid) {
  if (!names.has(eid)) {
    const res = await api.get(api.ent(eid));
    names.set(eid, res.ok && res.body.name ? res.body.name : eid);
  }
  return names.get(eid);
}

export function link(hash, text) {
  return h('a', {href: hash}, text);
}

function drawNav(r) {
  const items = [];
  const here = (href) => (location.hash || '#/') === href ? 'page' : null;
  if (session.operator) {
    items.push(h('p', {class: 'nav-h'}, '运营方'));
    for (const [name, label] of OPERATOR_PAGES) {
      const href = `#/${name}`;
      items.push(h('a', {href, 'aria-current': here(href)}, label));
    }
  }
  const eid = session.operator ? r.eid : session.enterprise;
  if (eid) {
    items.push(h('p', {class: 'nav-h'}, session.operator ? `企业：${names.get(eid) || eid}` : '我的企业'));
    for (const [name, label, , only] of ENTERPRISE_PAGES) {
      if (only === 'demo' && !session.demo) continue;
      const href = session.operator ? `#/e/${encodeURIComponent(eid)}/${name}` : `#/${name}`;
      items.push(h('a', {href, 'aria-current': here(href)}, label));
    }
  }
  items.push(button('退出登录', signOut, {class: 'sign-out'}));
  clear(nav).append(...items);
}

async function show() {
  if (!session) return;
  const turn = ++asked;
  const r = route();
  const eid = session.operator ? r.eid : session.enterprise;
  let pages = eid ? ENTERPRISE_PAGES : OPERATOR_PAGES;
  let name = r.name || (session.operator ? 'enterprises' : 'lines');
  if (session.operator && !r.eid && OPERATOR_PAGES.some(([n]) => n === name)) pages = OPERATOR_PAGES;
  const entry = pages.find(([n]) => n === name);
  if (eid) await enterpriseName(eid);
  if (turn !== asked) return;
  drawNav(r);
  if (!entry) {
    clear(main).append(h('h1', {}, '找不到这个页面'), link('#/', '回到首页'));
    return;
  }
  const mod = await entry[2]();
  if (turn !== asked) return;
  // ename: the enterprise's name, what a person reads where the id would be
  const ctx = {eid, session, rest: r.rest, operator: session.operator, name, ename: eid ? names.get(eid) : ''};
  clear(main);
  main.dataset.page = name;
  document.title = `${entry[1]} · 名片 控制台`;
  await mod.render(main, ctx, name);
  if (turn !== asked) return;
  performance.mark(`console:${name}`);  // when the page's data is drawn (bench/console_bench.py reads it)
  main.dataset.ready = name;
  main.focus({preventScroll: true});
}

function signInForm(message = '') {
  session = null;
  clear(nav);
  who.textContent = '';
  const key = input('key', {type: 'password', required: true, autocomplete: 'off', spellcheck: 'false'});
  const note = notice();
  const form = h('form', {class: 'signin', on: {submit: async (ev) => {
    ev.preventDefault();
    const res = await api.post('/api/session', {key: key.value.trim()});
    key.value = '';  // the key is not kept anywhere, not even in the field
    if (!res.ok) {
      const wait = res.headers && res.headers.get('Retry-After');
      note.show(res.status === 401 ? '密钥不正确，请检查后重试'
        : res.status === 429 ? `尝试次数过多，请 ${wait || 60} 秒后再试` : api.errorText(res), 'error');
      key.focus();
      return;
    }
    start(res.body);
  }}},
  h('h1', {}, '登录控制台'),
  h('p', {class: 'lead'}, '输入企业 API 密钥或运营方密钥。密钥只用于换取本次登录，不会保存在浏览器里。'),
  field('密钥', key, '以 mpk_ 开头'),
  h('button', {type: 'submit', class: 'primary'}, '登录'),
  note);
  clear(main).append(form);
  main.dataset.ready = 'signin';
  if (message) note.show(message, 'error');
  key.focus();
}

async function signOut() {
  await api.del('/api/session');
  history.replaceState(null, '', '/console');
  signInForm();
  announce('已退出登录');
}

async function start(s) {
  session = s;
  session.demo = (await api.get('/api/demo')).ok;  // the demo's enterprise is seen: 模拟来电 shows
  api.setSession(s, () => signInForm('登录已失效，请重新登录'));
  who.textContent = s.operator ? '运营方' : `企业：${await enterpriseName(s.enterprise)}`;
  show();
}

window.addEventListener('hashchange', show);

// The page's module loads while the session is asked for (both lists: the role is not known yet).
const wanted = route().name;
for (const [name, , load] of [...ENTERPRISE_PAGES, ...OPERATOR_PAGES]) if (name === wanted) load();
const res = await api.get('/api/session');
if (res.ok) start(res.body);
else signInForm();
