// Card versions and the operator's review. The queue: each waiting version on the phones beside
// the version calls get now, with what changed (template fields named by the template's own
// titles), approved or refused with a note. And the words the enterprise's card pages use for a
// version's state, its class and who made or decided it.

import * as sapi from '/static/api.js';
import {legacyBody, legacyScreen} from '/static/legacy.js';
import {Phone, VIEWS} from '/static/phones.js';
import {renderMessageList} from '/static/rcs.js';
import * as api from './capi.js';
import {PHASE_NAME, button, field, h, input, notice, pagedList, when} from './ui.js';

export const CLASSES = [['notification', '通知'], ['marketing', '营销']];
export const CLASS_NAME = Object.fromEntries(CLASSES);
export const CLASS_HINT = '营销名片每次修改都要经运营方审核，并遵守免打扰时段；通知名片用于运单、预约等事务提醒';
const KIND_NAME = {identity: '身份名片', ad: '广告'};

const STATES = {
  pending: ['待审核', 'wait'],
  approved: ['已通过', 'ok'],
  refused: ['未通过', 'bad'],
  superseded: ['已被新版本取代', 'off'],
  replaced: ['未审核，被之后的修改替换', 'off'],
  withdrawn: ['已撤回（名片已删除）', 'off'],
};

export function stateBadge(state) {
  const [text, kind] = STATES[state] || [state, 'off'];
  return h('span', {class: `badge ${kind}`}, text);
}

/** Who made or decided a version, as a person reads it (an enterprise by `name` when known). */
export function personName(who, name = '') {
  if (!who) return '—';
  if (who === 'operator') return '运营方';
  if (who === 'trusted') return '免审，自动通过';
  if (who.startsWith('enterprise:')) return `企业 ${name || who.slice('enterprise:'.length)}`;
  if (who.startsWith('seed ')) return `初始数据（${who.slice('seed '.length)}）`;  // loaded at start
  return who;
}

/** Which version calls get. */
export function sentText(review) {
  return review && review.sent_version != null ? `正在发送 v${review.sent_version}` : '尚未发送';
}

// A card's own fields, by name; a template's fields are named by its schema's titles.
const FIELDS = {
  id: '名片 ID', phase: '时机', template: '模板', kind: '类型', class: '类别', line: '线路', group: '分组',
  data: '名片数据', call_fields: '通话字段', weight: '权重',
};
const schemas = new Map();

function schemaOf(template) {
  if (!template) return Promise.resolve(null);
  if (!schemas.has(template)) {
    schemas.set(template, sapi.getJSON(`/api/templates/${encodeURIComponent(template)}`)
      .then((r) => (r.ok ? r.body.dataSchema : null)));
  }
  return schemas.get(template);
}

function titled(schema, keys) {
  const out = [];
  let node = schema;
  for (const k of keys) {
    const prop = node && node.properties && node.properties[k];
    if (!prop) return null;
    out.push(prop.title || k);
    node = prop;
  }
  return out.join(' · ');
}

/** `$.data.courier.name` → 快递员 · 姓名 (the first of `templates` whose schema knows it). */
export async function pathLabel(path, templates) {
  const keys = path.replace(/^\$\.?/, '').split('.').filter(Boolean);
  if (keys[0] === 'data' && keys.length > 1) {
    for (const t of templates) {
      const found = titled(await schemaOf(t), keys.slice(1));
      if (found) return found;
    }
    return keys.slice(1).join('.');
  }
  if (!keys.length) return '整张名片';
  return FIELDS[keys[0]] ? [FIELDS[keys[0]], ...keys.slice(1)].join(' · ') : keys.join('.');
}

function valueText(path, v) {
  if (v === null || v === undefined) {  // not given: a card's class and kind have defaults
    const fallback = {'$.class': '通知', '$.kind': '身份名片'}[path];
    return h('span', {class: 'muted'}, fallback ? `（未填，即${fallback}）` : '（无）');
  }
  if (path === '$.class') return CLASS_NAME[v] || String(v);
  if (path === '$.phase') return PHASE_NAME[v] || String(v);
  if (path === '$.kind') return KIND_NAME[v] || String(v);
  if (typeof v === 'string') return v === '' ? h('span', {class: 'muted'}, '（空）') : v;
  if (typeof v === 'boolean') return v ? '是' : '否';
  if (typeof v === 'number') return String(v);
  return h('code', {}, JSON.stringify(v));
}

function changesTable(r) {
  const templates = [r.pending && r.pending.template, r.approved && r.approved.template].filter(Boolean);
  const rows = (r.changes || []).map((c) => {
    const label = h('span', {class: 'field-name'}, c.path.replace(/^\$\./, ''));
    pathLabel(c.path, templates).then((text) => {
      label.textContent = text;
      label.title = c.path.replace(/^\$\./, '');
    });
    return h('tr', {},
      h('th', {scope: 'row'}, label),
      h('td', {class: 'before'}, valueText(c.path, c.before)),
      h('td', {class: 'after'}, valueText(c.path, c.after)));
  });
  const empty = h('tr', {}, h('td', {colspan: '3', class: 'empty'}, r.approved ? '内容与正在发送的版本相同' : '新名片'));
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'changes'},
      h('caption', {}, r.approved ? `相对 v${r.approved_version} 的改动` : '新名片：还没有通过的版本'),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, '内容'), h('th', {scope: 'col'}, '原来'),
        h('th', {scope: 'col'}, '改为'))),
      h('tbody', {}, rows.length ? rows : [empty])));
}

const SHOWN = VIEWS.filter((v) => v.id === 'rcs' || v.id === 'sms');

/** The 5G and SMS phones of one version of a card, as the enterprise's brand shows it. */
export function versionPhones(r, version, which, title) {
  const phones = SHOWN.map((v) => {
    const p = new Phone(v, '');
    const id = `${which}-${r.enterprise}-${r.card}-${v.id}`.replace(/[^A-Za-z0-9_-]/g, '_');
    p.el.id = `phone-${id}`;
    p.el.querySelector('figcaption').id = `cap-${id}`;
    p.el.setAttribute('aria-labelledby', `cap-${id}`);
    return p;
  });
  const box = h('div', {class: `review-version ${which}`}, h('h3', {}, title),
    h('div', {class: 'phones review-phones'}, phones.map((p) => p.el)));
  if (version == null) {
    for (const p of phones) p.off('这张名片还没有通过的版本，来电不发送');
    return {el: box, ready: Promise.resolve()};
  }
  const base = api.ent(r.enterprise, `/cards/${api.enc(r.card)}/preview?version=${version}`);
  const [rcs, sms] = phones;
  const ready = Promise.all([
    api.get(base).then((res) => {
      if (!res.ok) { rcs.off(`无法预览：${api.errorText(res)}`); return; }
      rcs.show(renderMessageList(res.body.messageList, {}));
      if (res.body.brand && res.body.brand.name) { rcs.brand = res.body.brand.name; sms.brand = res.body.brand.name; }
    }),
    api.get(`${base}&format=sms`).then((res) => {
      const lt = res.ok ? legacyBody(res.body) : null;
      if (lt) sms.show(legacyScreen('sms', lt, {}));
      else sms.off(res.ok ? '短信放不下这张名片' : `无法预览：${api.errorText(res)}`);
    }),
  ]);
  return {el: box, ready};
}

async function queue(main) {
  const note = notice();
  let list;
  const decide = (r, approve, reason, local) => async (ev) => {
    const text = reason.value.trim();
    if (!approve && !text) {
      local.show('拒绝时请写明原因，企业会看到它', 'error');
      reason.focus();
      return;
    }
    ev.currentTarget.disabled = true;
    const url = api.ent(r.enterprise, `/cards/${api.enc(r.card)}/versions/${r.version}/decision`);
    const res = await api.post(url, {approve, note: text});
    const what = `${r.enterprise_name} 的名片 ${r.card} v${r.version}`;
    note.show(res.ok
      ? `${what}：${approve ? '已通过，来电开始发送这个版本' : '已拒绝，企业会看到原因'}`
      : `${what}：${api.errorText(res)}`, res.ok ? 'ok' : 'error');
    note.scrollIntoView({block: 'nearest'});
    await list.reload();
  };
  const item = (r) => {
    const reason = input('note', {maxlength: '500', 'aria-label': `${r.card} v${r.version} 的审核备注`,
      placeholder: '拒绝时必填，企业会看到'});
    const local = notice();
    const pending = versionPhones(r, r.version, 'pending', `待审核版本 v${r.version}`);
    const sent = versionPhones(r, r.approved_version, 'sent',
      r.approved_version != null ? `正在发送 v${r.approved_version}` : '尚无已通过版本');
    const el = h('article', {class: 'block review', dataset: {enterprise: r.enterprise, card: r.card, version: String(r.version)}},
      h('h2', {}, `${r.enterprise_name} · 名片 ${r.card}`),
      h('dl', {class: 'facts'},
        h('div', {}, h('dt', {}, '企业'), h('dd', {}, `${r.enterprise_name}（${r.enterprise}）`)),
        h('div', {}, h('dt', {}, '名片'), h('dd', {}, r.card)),
        h('div', {}, h('dt', {}, '版本'), h('dd', {}, `v${r.version}`)),
        h('div', {}, h('dt', {}, '类别'), h('dd', {}, h('span', {class: `badge ${r.class === 'marketing' ? 'wait' : 'ok'}`},
          CLASS_NAME[r.class] || r.class))),
        h('div', {}, h('dt', {}, '提交人'), h('dd', {}, personName(r.made_by, r.enterprise_name))),
        h('div', {}, h('dt', {}, '提交时间'), h('dd', {}, when(r.made_at)))),
      h('div', {class: 'review-compare'}, pending.el, sent.el),
      changesTable(r),
      h('div', {class: 'decide'},
        field('审核备注', reason),
        h('div', {class: 'actions'},
          button('通过', decide(r, true, reason, local), {class: 'primary', 'aria-label': `通过 ${r.card} v${r.version}`}),
          button('拒绝', decide(r, false, reason, local), {class: 'danger', 'aria-label': `拒绝 ${r.card} v${r.version}`}))),
      local);
    Promise.all([pending.ready, sent.ready]).then(() => { el.dataset.shown = '1'; });
    return el;
  };
  list = pagedList({
    url: '/api/reviews', key: 'reviews', searchLabel: '搜索名片', limit: 10, placeholder: '名片 ID、企业 ID…',
    draw: (items) => (items.length
      ? h('div', {class: 'reviews'}, items.map(item))
      : h('p', {class: 'empty-list'}, '没有待审核的名片')),
  });
  main.append(h('h1', {}, '名片审核'),
    h('p', {class: 'lead'}, '企业新建或修改的名片要经过审核才会发送；审核期间，来电继续发送之前通过的版本。'),
    note, list.el);
  await list.load(0);
}

export async function render(main, ctx) {
  await queue(main, ctx);
}
