// Small building blocks of the console's pages, on the studio's DOM helpers (textContent only).

import {h, clear, uid, announce} from '/static/dom.js';
import * as api from './capi.js';

export {h, clear, announce};

export function field(label, control, hint) {
  const id = control.id || uid('c');
  control.id = id;
  const hintEl = hint ? h('small', {class: 'hint', id: `${id}-hint`}, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', {class: 'field'}, h('label', {for: id}, label), control, hintEl);
}

export function input(name, props = {}) {
  return h('input', {name, autocomplete: 'off', ...props});
}

export function select(name, options, value = '') {
  const el = h('select', {name}, options.map(([v, label]) => h('option', {value: v}, label)));
  el.value = value;
  return el;
}

export function button(text, onClick, props = {}) {
  return h('button', {type: 'button', ...props, on: {click: onClick}}, text);
}

/** A button that asks once more before acting (no window.confirm: it blocks and hides context). */
export function confirmButton(text, confirmText, onConfirm) {
  const btn = h('button', {type: 'button', class: 'danger'}, text);
  let armed = false;
  btn.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      btn.textContent = confirmText;
      setTimeout(() => { armed = false; btn.textContent = text; }, 4000);
      return;
    }
    armed = false;
    btn.disabled = true;
    await onConfirm();
    btn.disabled = false;
    btn.textContent = text;
  });
  return btn;
}

/** A status line under a form: ok / error, announced to screen readers. */
export function notice() {
  const el = h('p', {class: 'notice', role: 'status', hidden: true});
  el.show = (text, kind = 'ok') => {
    el.textContent = text;
    el.className = `notice ${kind}`;
    el.hidden = !text;
    if (text) announce(text);
  };
  return el;
}

export function table(columns, rows, {caption, empty = '暂无数据'} = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', {scope: 'col'}, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', {}, columns.map((c) => {
      const v = c.get(r);
      return h('td', {class: c.num ? 'num' : null, 'data-label': c.title}, v instanceof Node ? v : String(v ?? ''));
    })))
    : [h('tr', {}, h('td', {colspan: String(columns.length), class: 'empty'}, empty))];
  // rows: on a phone each row is a block of «title value» lines (console.css), not a squeezed grid
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'rows'}, caption ? h('caption', {}, caption) : null, h('thead', {}, head), h('tbody', {}, body)));
}

export function pager(total, limit, offset, go) {
  const pages = Math.max(1, Math.ceil(total / limit));
  const page = Math.floor(offset / limit) + 1;
  return h('nav', {class: 'pager', 'aria-label': '翻页'},
    button('上一页', () => go(Math.max(0, offset - limit)), {disabled: offset <= 0}),
    h('span', {}, `第 ${page} / ${pages} 页，共 ${total} 条`),
    button('下一页', () => go(offset + limit), {disabled: offset + limit >= total}));
}

/** A list paged and searched on the server: search box, table (or what `draw` makes of a page's
 * items), pager. */
export function pagedList({url, key, columns, searchLabel = '搜索', limit = 50, empty, draw,
  placeholder = '号码、名称、标签…'}) {
  const q = input('q', {type: 'search', placeholder});
  const out = h('div', {class: 'paged'});
  const state = {offset: 0};
  async function load(offset = 0) {
    state.offset = offset;
    const sep = url.includes('?') ? '&' : '?';
    const res = await api.get(`${url}${sep}limit=${limit}&offset=${offset}&q=${encodeURIComponent(q.value.trim())}`);
    if (!res.ok) {
      clear(out).append(h('p', {class: 'notice error'}, api.errorText(res)));
      return;
    }
    const items = res.body[key] || [];
    clear(out).append(draw ? draw(items) : table(columns, items, {empty}),
      pager(res.body.total, limit, offset, load));
    out.dataset.total = String(res.body.total);
  }
  const form = h('form', {class: 'search', role: 'search', on: {submit: (ev) => { ev.preventDefault(); load(0); }}},
    field(searchLabel, q), h('button', {type: 'submit'}, '搜索'));
  return {el: h('div', {}, form, out), reload: () => load(state.offset), load};
}

export function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) {
    if (typeof v === 'string' && v.trim() !== '') out[k] = v.trim();
  }
  return out;
}

// Times and days are China's (UTC+8, no summer time) whatever the browser's zone: the
// enterprise's packages, reports and calls are counted in China days.
const CHINA = 8 * 3600;

/** A Unix time as China's date and time, 2027-03-31 09:30. */
export function when(seconds) {
  if (!seconds) return '';
  return new Date((seconds + CHINA) * 1000).toISOString().slice(0, 16).replace('T', ' ');
}

/** The China day (YYYY-MM-DD) a Unix time falls on. */
export function chinaDate(seconds) {
  return new Date((seconds + CHINA) * 1000).toISOString().slice(0, 10);
}

/** A China day's first second, and the first second after it (an inclusive last day's end). */
export function chinaDayStart(day) {
  return Date.parse(`${day}T00:00:00Z`) / 1000 - CHINA;
}
export function chinaDayEnd(day) {
  return chinaDayStart(day) + 86400;
}

/** A package's days as a person reads them: its first day and its last, both whole. */
export function packageDays(p) {
  return {from: p.valid_from ? chinaDate(p.valid_from) : '', to: p.valid_to ? chinaDate(p.valid_to - 1) : ''};
}

// numbers as people in China read them (shared with the reports page)
export {phone} from '/static/numbers.js';

export const PHASES = [['ringing', '来电前'], ['answered', '通话中'], ['ended', '挂机后']];
export const PHASE_NAME = Object.fromEntries(PHASES);
export const CHANNEL_NAME = {rcs: '5G 消息', ussd: 'USSD', flash: '闪信', sms: '短信', cardsms: '卡片短信'};

export function page(title, ...children) {
  return [h('h1', {}, title), ...children];
}

export function section(title, ...children) {
  return h('section', {class: 'block'}, h('h2', {}, title), ...children);
}
