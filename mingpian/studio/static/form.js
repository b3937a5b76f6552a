// A form generated from a template's JSON Schema (2020-12 subset used by card templates):
// strings (formats, patterns, enums → select), numbers, booleans, nested objects, arrays with
// add/remove, required markers, and inline messages from the server's 422 problems, matched to
// fields by JSON path ($.a.b[0].c, the same spelling renderer/jsonpath.py produces).

import {h, clear, uid} from './dom.js';

const PLAIN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FORMAT_INPUT = {uri: 'url', email: 'email', date: 'date'};
const FORMAT_HINT = {
  uri: '网址', email: '邮箱', date: '日期 YYYY-MM-DD',
  'date-time': '时间 2026-12-01T09:00:00+08:00', time: '时间 HH:MM:SS',
};

export function childPath(parent, key) {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (PLAIN.test(key)) return `${parent}.${key}`;
  return `${parent}['${key.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}']`;
}

function lookup(root, ref) {
  if (!ref.startsWith('#')) return {};
  let node = root;
  for (const raw of ref.slice(1).split('/').filter(Boolean)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    node = node && typeof node === 'object' ? node[part] : undefined;
  }
  return node || {};
}

function resolve(schema, root) {
  let s = schema || {};
  for (let i = 0; s.$ref && i < 16; i += 1) s = {...lookup(root, s.$ref), ...s, $ref: undefined};
  return s;
}

function kindOf(s) {
  if (Array.isArray(s.enum)) return 'enum';
  if (s.const !== undefined) return 'const';
  let t = s.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null');
  if (!t && s.properties) t = 'object';
  if (!t && s.items) t = 'array';
  return t || 'json';
}

function emptyValue(s, root) {
  const r = resolve(s, root);
  const kind = kindOf(r);
  if (r.default !== undefined) return structuredClone(r.default);
  if (kind === 'object') return {};
  if (kind === 'array') return [];
  return undefined;
}

function constraints(s, kind, patternText = {}) {
  const parts = [];
  if (s.description) parts.push(s.description);
  if (s.format && FORMAT_HINT[s.format]) parts.push(FORMAT_HINT[s.format]);
  if (s.minLength !== undefined && s.maxLength !== undefined) parts.push(`${s.minLength}–${s.maxLength} 字`);
  else if (s.maxLength !== undefined) parts.push(`最多 ${s.maxLength} 字`);
  else if (s.minLength) parts.push(`至少 ${s.minLength} 字`);
  // A pattern is shown in words (the server's patternText), never as the regex itself.
  if (s.pattern && patternText[s.pattern]) parts.push(patternText[s.pattern].replace(/^须(为\s*)?/, ''));
  if (kind === 'number' || kind === 'integer') {
    if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
    if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  }
  if (s.default !== undefined) parts.push(`默认 ${s.default}`);
  return parts.join(' · ');
}

const chars = (text) => [...text].length; // JSON Schema lengths count code points

export class SchemaForm {
  /** @param {HTMLFormElement} root */
  constructor(root, {onChange, patternText} = {}) {
    this.root = root;
    this.patternText = patternText || {};
    this.onChange = onChange || (() => {});
    this.fields = new Map();
    this.schema = {type: 'object'};
    this.editor = null;
    root.addEventListener('submit', (ev) => ev.preventDefault());
  }

  build(schema, value) {
    this.schema = schema || {type: 'object'};
    this.fields.clear();
    this.editor = this.#editor(this.schema, '$', '', true);
    clear(this.root).append(this.editor.el);
    this.editor.set(value ?? {});
  }

  get value() {
    const v = this.editor ? this.editor.get() : {};
    return v === undefined ? {} : v;
  }

  set value(v) {
    this.editor.set(v ?? {});
  }

  clearProblems() {
    for (const f of this.fields.values()) f.setError(null);
  }

  /** Show each problem at its field (or nearest ancestor); returns those with no field. */
  showProblems(problems) {
    this.clearProblems();
    const byField = new Map();
    const rest = [];
    for (const p of problems || []) {
      const field = p.file ? null : this.fieldFor(p.path);
      if (!field || field.path === '$') { rest.push(p); continue; }
      if (!byField.has(field)) byField.set(field, []);
      byField.get(field).push(p.path === field.path ? p.message : `${p.path.slice(field.path.length).replace(/^\./, '')}: ${p.message}`);
    }
    for (const [field, messages] of byField) field.setError(messages.join('；'));
    return rest;
  }

  fieldFor(path) {
    if (typeof path !== 'string' || !path.startsWith('$')) return null;
    let p = path;
    while (p) {
      if (this.fields.has(p)) return this.fields.get(p);
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) break;
      p = p.slice(0, cut);
    }
    return this.fields.get('$') || null;
  }

  focus(path) {
    const field = this.fieldFor(path);
    if (field && field.focusEl) {
      field.focusEl.focus();
      field.focusEl.scrollIntoView({block: 'center'});
    }
  }

  #register(field) {
    this.fields.set(field.path, field);
    return field;
  }

  #editor(schema, path, key, required) {
    const s = resolve(schema, this.schema);
    const kind = kindOf(s);
    if (kind === 'object') return this.#objectEditor(s, path, key, required);
    if (kind === 'array') return this.#arrayEditor(s, path, key, required);
    return this.#scalarEditor(s, kind, path, key, required);
  }

  #labelText(s, key) {
    return s.title || key || '数据';
  }

  #errorBox(id) {
    return h('p', {class: 'err', id, hidden: true});
  }

  #scalarEditor(s, kind, path, key, required) {
    const id = uid('in');
    const hintId = `${id}-hint`;
    const errId = `${id}-err`;
    const hint = constraints(s, kind, this.patternText);
    let control;
    let get;
    let set;
    const changed = () => this.onChange(path);
    if (kind === 'enum' || kind === 'const') {
      const options = kind === 'enum' ? s.enum : [s.const];
      control = h('select', {id, name: path},
        required && options.length ? null : h('option', {value: ''}, '（不填）'),
        options.map((opt, i) => h('option', {value: String(i)}, String(opt))));
      get = () => (control.value === '' ? undefined : options[Number(control.value)]);
      set = (v) => {
        const i = options.findIndex((o) => JSON.stringify(o) === JSON.stringify(v));
        control.value = i >= 0 ? String(i) : (required ? '0' : '');
      };
      control.addEventListener('change', changed);
    } else if (kind === 'boolean') {
      control = h('input', {id, name: path, type: 'checkbox'});
      get = () => control.checked;
      set = (v) => { control.checked = Boolean(v); };
      control.addEventListener('change', changed);
    } else if (kind === 'number' || kind === 'integer') {
      control = h('input', {id, name: path, type: 'number', inputmode: 'decimal',
        step: kind === 'integer' ? '1' : 'any', min: s.minimum, max: s.maximum});
      get = () => (control.value === '' ? undefined : Number(control.value));
      set = (v) => { control.value = v === undefined || v === null ? '' : String(v); };
      control.addEventListener('input', changed);
    } else if (kind === 'string') {
      const long = (s.maxLength ?? 0) >= 100;
      control = long
        ? h('textarea', {id, name: path, rows: 3})
        : h('input', {id, name: path, type: FORMAT_INPUT[s.format] || 'text', spellcheck: 'false'});
      if (s.default !== undefined) control.placeholder = String(s.default);
      get = () => (control.value === '' ? undefined : control.value);
      set = (v) => { control.value = v === undefined || v === null ? '' : String(v); };
      control.addEventListener('input', changed);
    } else {
      // Anything the generator does not model (oneOf, free objects) is edited as raw JSON.
      control = h('textarea', {id, name: path, rows: 3, class: 'json', spellcheck: 'false'});
      get = () => {
        if (control.value.trim() === '') return undefined;
        try { return JSON.parse(control.value); } catch { return control.value; }
      };
      set = (v) => { control.value = v === undefined ? '' : JSON.stringify(v, null, 1); };
      control.addEventListener('input', changed);
    }
    control.setAttribute('aria-describedby', `${hint ? hintId : ''} ${errId}`.trim());
    if (required) control.setAttribute('aria-required', 'true');
    const counter = kind === 'string' && s.maxLength !== undefined ? h('span', {class: 'count', 'aria-hidden': 'true'}) : null;
    const updateCount = () => {
      if (!counter) return;
      const n = chars(control.value);
      counter.textContent = `${n}/${s.maxLength}`;
      counter.classList.toggle('over', n > s.maxLength);
    };
    if (counter) control.addEventListener('input', updateCount);
    const err = this.#errorBox(errId);
    const label = h('label', {for: id}, this.#labelText(s, key),
      required ? h('span', {class: 'req', title: '必填'}, ' *') : null, counter);
    const el = h('div', {class: `field field-${kind}`, dataset: {path}},
      kind === 'boolean' ? [control, label] : [label, control],
      hint ? h('p', {class: 'hint', id: hintId}, hint) : null, err);
    return this.#register({
      path, el, focusEl: control,
      get,
      set: (v) => { set(v); updateCount(); },
      setError: (msg) => {
        err.hidden = !msg;
        err.textContent = msg || '';
        if (msg) control.setAttribute('aria-invalid', 'true');
        else control.removeAttribute('aria-invalid');
      },
    });
  }

  #objectEditor(s, path, key, required) {
    const props = s.properties || {};
    const req = new Set(s.required || []);
    const children = Object.entries(props).map(([k, sub]) => [k, this.#editor(sub, childPath(path, k), k, req.has(k))]);
    const errId = uid('obj-err');
    const err = this.#errorBox(errId);
    const isRoot = path === '$';
    const legend = isRoot ? null : h('legend', {}, this.#labelText(s, key), required ? h('span', {class: 'req', title: '必填'}, ' *') : null);
    const el = h(isRoot ? 'div' : 'fieldset', {class: isRoot ? 'root' : 'group', dataset: {path}, 'aria-describedby': errId},
      legend, err, children.map(([, c]) => c.el));
    return this.#register({
      path, el, focusEl: children[0]?.[1].focusEl || null,
      get: () => {
        const out = {};
        for (const [k, c] of children) {
          const v = c.get();
          if (v !== undefined) out[k] = v;
        }
        return !required && Object.keys(out).length === 0 ? undefined : out;
      },
      set: (v) => {
        const obj = v && typeof v === 'object' && !Array.isArray(v) ? v : {};
        for (const [k, c] of children) c.set(obj[k]);
      },
      setError: (msg) => { err.hidden = !msg; err.textContent = msg || ''; },
    });
  }

  #arrayEditor(s, path, key, required) {
    const itemSchema = resolve(s.items || {}, this.schema);
    const min = s.minItems ?? 0;
    const max = s.maxItems ?? Infinity;
    const title = this.#labelText(s, key);
    const list = h('ol', {class: 'items'});
    const errId = uid('arr-err');
    const err = this.#errorBox(errId);
    let items = [];
    const addBtn = h('button', {type: 'button', class: 'add'}, `添加${title}`);
    const self = {
      path, focusEl: addBtn,
      get: () => {
        const out = items.map((it) => it.get());
        return !required && out.length === 0 ? undefined : out.map((v) => (v === undefined ? null : v));
      },
      set: (v) => renderItems(Array.isArray(v) ? v : []),
      setError: (msg) => { err.hidden = !msg; err.textContent = msg || ''; },
    };
    const renderItems = (values) => {
      for (const it of items) this.#forget(it.path);
      items = [];
      clear(list);
      values.forEach((value, i) => {
        const itemPath = childPath(path, i);
        const editor = this.#editor(itemSchema, itemPath, `${title} 第 ${i + 1} 项`, true);
        editor.set(value);
        const remove = h('button', {type: 'button', class: 'remove', disabled: values.length <= min,
          'aria-label': `删除${title}第 ${i + 1} 项`,
          on: {click: () => {
            const current = self.get() || [];
            current.splice(i, 1);
            renderItems(current);
            this.onChange(path);
            (list.querySelector('button.remove') || addBtn).focus();
          }}}, '删除');
        items.push(editor);
        list.append(h('li', {class: 'item'}, h('div', {class: 'item-head'}, remove), editor.el));
      });
      addBtn.disabled = values.length >= max;
    };
    addBtn.addEventListener('click', () => {
      const current = self.get() || [];
      current.push(emptyValue(itemSchema, this.schema) ?? (kindOf(itemSchema) === 'string' ? '' : null));
      renderItems(current);
      this.onChange(path);
      const last = items[items.length - 1];
      if (last && last.focusEl) last.focusEl.focus();
    });
    const hint = [s.description, min ? `至少 ${min} 项` : '', max !== Infinity ? `最多 ${max} 项` : ''].filter(Boolean).join(' · ');
    self.el = h('fieldset', {class: 'group array', dataset: {path}, 'aria-describedby': errId},
      h('legend', {}, title, required ? h('span', {class: 'req', title: '必填'}, ' *') : null),
      hint ? h('p', {class: 'hint'}, hint) : null, err, list, addBtn);
    return this.#register(self);
  }

  #forget(prefix) {
    for (const p of [...this.fields.keys()]) {
      if (p === prefix || p.startsWith(`${prefix}.`) || p.startsWith(`${prefix}[`)) this.fields.delete(p);
    }
  }
}
