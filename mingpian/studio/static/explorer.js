// The API explorer at /api: every operation of /api/openapi.json grouped by its (Chinese) tag,
// in the order of the document's `tags`, with its Chinese summary and description; its
// parameters, body and responses, and a form that sends the request from this page (same
// origin, our own code under the studio's CSP). Everything reaches the DOM as text.

import {h, clear, uid, announce} from './dom.js';

const main = document.getElementById('main');
const groups = document.getElementById('api-groups');
const error = document.getElementById('api-error');
const filter = document.getElementById('api-filter');
const keyInput = document.getElementById('api-key');
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const WHERE = {path: '路径', query: '查询', header: '请求头', cookie: 'Cookie'};
const KEY_STORE = 'mp-api-key';

let spec = null;

function resolve(node, depth = 0) {
  if (!node || typeof node !== 'object' || depth > 8) return node;
  if (typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
    let target = spec;
    for (const part of node.$ref.slice(2).split('/')) target = target ? target[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
    return resolve(target || {}, depth + 1);
  }
  return node;
}

function typeOf(schema) {
  const s = resolve(schema) || {};
  if (Array.isArray(s.enum)) return s.enum.map(String).join(' | ');
  const t = Array.isArray(s.type) ? s.type.join(' | ') : s.type;
  if (t === 'array') return `${typeOf(s.items)}[]`;
  return t || (s.properties ? 'object' : '');
}

/** A small example value from a schema: enough to start typing a request body. */
function example(schema, depth = 0) {
  const s = resolve(schema) || {};
  if (s.example !== undefined) return s.example;
  if (s.default !== undefined) return s.default;
  if (Array.isArray(s.enum)) return s.enum[0];
  if (depth > 4) return null;
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  if (t === 'object' || s.properties) {
    const out = {};
    for (const k of s.required || Object.keys(s.properties || {}).slice(0, 3)) {
      out[k] = example((s.properties || {})[k], depth + 1);
    }
    return out;
  }
  if (t === 'array') return [];
  if (t === 'integer' || t === 'number') return 0;
  if (t === 'boolean') return false;
  if (t === 'string') return '';
  return null;
}

function paramsTable(params) {
  if (!params.length) return null;
  return h('table', {class: 'params'},
    h('thead', {}, h('tr', {}, ['名称', '位置', '必填', '类型', '说明'].map((x) => h('th', {text: x})))),
    h('tbody', {}, params.map((p) => h('tr', {},
      h('td', {}, h('code', {text: p.name})), h('td', {text: WHERE[p.in] || p.in}),
      h('td', {text: p.required ? '是' : ''}), h('td', {}, h('code', {text: typeOf(p.schema)})),
      h('td', {text: p.description || ''})))));
}

function responsesList(responses) {
  return h('ul', {class: 'responses'}, Object.entries(responses || {}).map(([status, r]) => {
    const res = resolve(r) || {};
    const types = Object.keys(res.content || {});
    return h('li', {}, h('code', {class: `status s${status[0]}`, text: status}), ' ',
      res.description || '', types.length ? h('span', {class: 'types', text: ` · ${types.join(', ')}`}) : null);
  }));
}

function showResult(box, resp, text, ms) {
  const type = (resp.headers.get('Content-Type') || '').split(';')[0];
  let shown = text;
  if (type.endsWith('json')) {
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* as sent */ }
  }
  clear(box).append(
    h('p', {class: 'result-head'}, h('code', {class: `status s${String(resp.status)[0]}`, text: String(resp.status)}),
      ` ${resp.statusText || ''} · ${Math.round(ms)} ms · ${type || '无类型'}`,
      resp.headers.get('X-Request-ID') ? ` · 请求 ID ${resp.headers.get('X-Request-ID')}` : ''),
    h('pre', {class: 'result-body', tabindex: '0', text: shown}));
}

function tryForm(method, path, op) {
  const params = (op.parameters || []).map(resolve).filter((p) => p.in === 'path' || p.in === 'query');
  const inputs = new Map();
  const fields = params.map((p) => {
    const id = uid('p');
    const input = h('input', {id, type: 'text', autocomplete: 'off', required: p.required && p.in === 'path',
      placeholder: p.required ? '必填' : '', value: p.example !== undefined ? String(p.example) : ''});
    inputs.set(p, input);
    return h('div', {class: 'try-field'}, h('label', {for: id}, `${p.name}（${WHERE[p.in]}）`), input);
  });
  const body = op.requestBody ? resolve(op.requestBody) : null;
  const bodyType = body ? Object.keys(body.content || {})[0] || 'application/json' : null;
  let bodyArea = null;
  if (body) {
    const id = uid('b');
    const schema = (body.content || {})[bodyType]?.schema;
    bodyArea = h('textarea', {id, rows: '6', spellcheck: 'false', class: 'json'});
    bodyArea.value = bodyType.includes('json') ? JSON.stringify(example(schema), null, 2) : '';
    fields.push(h('div', {class: 'try-field wide'}, h('label', {for: id}, `请求体（${bodyType}）`), bodyArea));
  }
  const result = h('div', {class: 'result', 'aria-live': 'polite'});
  const send = async () => {
    let url = path;
    const query = new URLSearchParams();
    for (const [p, input] of inputs) {
      const v = input.value;
      if (p.in === 'path') {
        if (!v) { input.focus(); clear(result).append(h('p', {class: 'error', text: `请填写 ${p.name}`})); return; }
        url = url.replace(`{${p.name}}`, encodeURIComponent(v));
      } else if (v !== '') query.set(p.name, v);
    }
    if ([...query].length) url += `?${query}`;
    const headers = {Accept: 'application/json, */*'};
    const key = keyInput.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = {method: method.toUpperCase(), headers};
    if (bodyArea) {
      headers['Content-Type'] = bodyType;
      init.body = bodyArea.value;
    }
    const t0 = performance.now();
    try {
      const resp = await fetch(url, init);
      const type = resp.headers.get('Content-Type') || '';
      const text = /json|text|xml|javascript/.test(type) ? await resp.text()
        : `（二进制内容，${(await resp.arrayBuffer()).byteLength} 字节）`;
      showResult(result, resp, text, performance.now() - t0);
      announce(`已返回 ${resp.status}`);
    } catch (exc) {
      clear(result).append(h('p', {class: 'error', text: `请求没有发出：${exc}`}));
    }
  };
  return h('form', {class: 'try', on: {submit: (ev) => { ev.preventDefault(); send(); }}},
    h('h4', {text: '试一试'}), fields, h('button', {type: 'submit', class: 'send'}, `发送 ${method.toUpperCase()}`), result);
}

function operation(method, path, op) {
  const params = (op.parameters || []).map(resolve);
  const body = op.requestBody ? resolve(op.requestBody) : null;
  const bodySchema = body ? Object.values(body.content || {})[0]?.schema : null;
  const details = h('details', {class: 'op', dataset: {path, method, search: `${method} ${path} ${op.summary || ''} ${op['x-summary-en'] || ''}`.toLowerCase()}},
    h('summary', {}, h('span', {class: `method m-${method}`, text: method.toUpperCase()}), ' ',
      h('code', {class: 'op-path', text: path}), ' ', h('span', {class: 'op-sum', text: op.summary || ''})));
  let built = false;
  details.addEventListener('toggle', () => {
    if (!details.open || built) return;
    built = true;
    details.append(h('div', {class: 'op-body'},
      op.description ? h('p', {text: op.description}) : null,
      params.length ? [h('h4', {text: '参数'}), paramsTable(params)] : null,
      bodySchema ? [h('h4', {text: '请求体'}), h('pre', {class: 'schema', text: JSON.stringify(resolve(bodySchema), null, 2)})] : null,
      h('h4', {text: '返回'}), responsesList(op.responses),
      tryForm(method, path, op)));
  });
  return details;
}

function draw() {
  const byTag = new Map((spec.tags || []).map((t) => [t.name, []]));
  const about = new Map((spec.tags || []).map((t) => [t.name, t.description || '']));
  for (const [path, ops] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const op = ops[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || '其他';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(method, path, op));
    }
  }
  const filled = [...byTag.entries()].filter(([, ops]) => ops.length);
  clear(groups).append(...filled.map(([tag, ops]) => h('section', {class: 'api-group', dataset: {tag}},
    h('h2', {}, tag, h('span', {class: 'count', text: ` ${ops.length} 个接口`})),
    about.get(tag) ? h('p', {class: 'group-about', text: about.get(tag)}) : null, ops)));
  groups.removeAttribute('aria-busy');
}

function applyFilter() {
  const q = filter.value.trim().toLowerCase();
  for (const op of groups.querySelectorAll('details.op')) op.hidden = Boolean(q) && !op.dataset.search.includes(q);
  for (const g of groups.querySelectorAll('.api-group')) g.hidden = !g.querySelector('details.op:not([hidden])');
}

async function start() {
  keyInput.value = sessionStorage.getItem(KEY_STORE) || '';
  keyInput.addEventListener('change', () => sessionStorage.setItem(KEY_STORE, keyInput.value.trim()));
  filter.addEventListener('input', applyFilter);
  try {
    const resp = await fetch(main.dataset.spec, {headers: {Accept: 'application/json'}});
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    spec = await resp.json();
    draw();
  } catch (exc) {
    error.textContent = `无法读取接口文档：${exc.message || exc}`;
    error.hidden = false;
  }
  main.dataset.ready = 'true';
}

start();
