// Cards: for each line, group or the whole enterprise and each call phase, a template and its
// data (the studio's schema form), previewed on the phone mock-ups with the cost per channel.
// Every save is a new version the operator reviews (reviews.js); until then calls get the version
// approved before. Each card shows where its review stands, and lists its versions.

import {SchemaForm} from '/static/form.js';
import * as sapi from '/static/api.js';
import {debounce} from '/static/dom.js';
import * as api from './capi.js';
import {Preview, unconfiguredText} from './preview.js';
import {CLASSES, CLASS_HINT, CLASS_NAME, personName, sentText, stateBadge, versionPhones} from './reviews.js';
import {CHANNEL_NAME, PHASES, PHASE_NAME, button, clear, confirmButton, field, h, input, notice, phone, section, select,
  table, when} from './ui.js';

function scopeText(c) {
  if (c.line) return `线路 ${phone(c.line)}`;
  if (c.group) return `分组 ${c.group}`;
  return '全部线路';
}

function costTable(channels) {
  return table([
    {title: '渠道', get: (c) => CHANNEL_NAME[c.channel] || c.channel},
    {title: '条数', get: (c) => c.segments ?? '', num: true},
    {title: '计费单位', get: (c) => c.units ?? '', num: true},
    {title: '套餐内', get: (c) => c.covered_by_packages ?? '', num: true},
    {title: '超出', get: (c) => c.beyond_packages ?? '', num: true},
    {title: '费用（元）', get: (c) => (c.cost ?? ''), num: true},
    {title: '可发送', get: (c) => (c.error ? '放不下' : c.sendable ? '是' : c.has_package === false ? '否（没有套餐）' : '否（套餐用完）')},
  ], channels, {caption: '每次发送的费用估算'});
}

async function editor(slot, ctx, card, templates, done) {
  const {eid} = ctx;
  const note = notice();
  const preview = new Preview();
  const cost = h('div', {class: 'cost'});
  const dataForm = h('form', {class: 'schema-form', novalidate: true, autocomplete: 'off'});
  const id = input('id', {required: true, value: card ? card.id : '', readonly: Boolean(card), maxlength: '64',
    pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]*'});
  const phase = select('phase', PHASES, card ? card.phase : 'ended');
  const scope = select('scope', [['all', '全部线路'], ['line', '一条线路'], ['group', '一个分组']],
    card ? (card.line ? 'line' : card.group ? 'group' : 'all') : 'all');
  const target = input('target', {value: card ? card.line || card.group || '' : '', maxlength: '64'});
  const kind = select('kind', [['identity', '身份名片'], ['ad', '广告']], card ? card.kind || 'identity' : 'identity');
  const cls = select('class', CLASSES, card ? card.class || 'notification' : 'notification');
  const tpl = select('template', templates.map((t) => [t.name, `${t.title}（${t.name}）`]),
    card ? card.template : (templates.find((t) => t.name === 'courier-hangup') || templates[0] || {}).name);
  const targetField = field('线路号码或分组名', target);
  const syncScope = () => { targetField.hidden = scope.value === 'all'; };
  scope.addEventListener('change', syncScope);
  syncScope();
  let schemaForm;

  const refresh = debounce(async () => {
    const data = schemaForm.value;
    const res = await preview.show(tpl.value, data);
    if (res && !res.ok) schemaForm.showProblems(res.body?.problems || []);
    else schemaForm.clearProblems();
    const line = scope.value === 'line' ? target.value.trim() : '';
    const est = await api.post(api.ent(eid, '/estimate'), {template: tpl.value, data, count: 1, ...(line ? {line} : {})});
    clear(cost).append(est.ok ? costTable(est.body.channels) : h('p', {class: 'notice error'}, api.errorText(est)));
  }, 250);

  async function loadTemplate(initial) {
    const detail = await sapi.getJSON(`/api/templates/${encodeURIComponent(tpl.value)}`);
    if (!detail.ok) { note.show('模板有错误，换一个模板', 'error'); return; }
    schemaForm = new SchemaForm(dataForm, {onChange: refresh});
    schemaForm.build(detail.body.dataSchema, initial ?? detail.body.sampleData);
    refresh.flush();
  }
  tpl.addEventListener('change', () => loadTemplate());

  async function save() {
    // what the form does not show (call fields, weight) is kept as it was
    const {version, review, line, group, ...kept} = card || {};
    const body = {...kept, id: id.value.trim(), phase: phase.value, template: tpl.value, kind: kind.value,
      class: cls.value, data: schemaForm.value};
    if (scope.value === 'line') body.line = target.value.trim();
    if (scope.value === 'group') body.group = target.value.trim();
    const res = card
      ? await api.put(api.ent(eid, `/cards/${api.enc(card.id)}`), body)
      : await api.post(api.ent(eid, '/cards'), body);
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    const r = res.body.review || {};
    const where = `${PHASE_NAME[res.body.phase]}，${scopeText(res.body)}`;
    if (r.state === 'pending') {
      const meanwhile = r.sent_version != null ? `；在此之前来电继续发送 v${r.sent_version}` : '';
      note.show(`名片 ${res.body.id} v${res.body.version} 已提交审核，通过后才会发送（${where}）${meanwhile}`);
    } else {
      note.show(`名片 ${res.body.id} v${res.body.version} 已保存并生效：${where}`);
    }
    card = res.body;
    id.readOnly = true;
    done();
  }

  const state = card && card.review ? card.review.state : '';
  const waiting = state === 'pending'
    ? h('p', {class: 'notice'}, `这张名片的 v${card.version} 正在等待审核，${sentText(card.review)}。再保存会替换等待中的版本。`)
    : state === 'refused'
      ? h('p', {class: 'notice error'}, `这张名片的 v${card.version} 未通过审核：${card.review.note || '运营方没有写明原因'}。`
        + `改好后保存会重新提交审核；${sentText(card.review)}。`)
      : null;
  clear(slot).append(section(card ? `编辑名片 ${card.id}` : '新建名片', waiting,
    h('div', {class: 'grid-form'},
      field('名片 ID', id, '字母、数字、. _ -'),
      field('时机', phase),
      field('适用范围', scope),
      targetField,
      field('模板', tpl),
      field('类型', kind),
      field('类别', cls, CLASS_HINT)),
    h('div', {class: 'card-editor'},
      h('div', {class: 'editor'}, h('h3', {}, '名片数据'), dataForm),
      h('div', {class: 'previews'}, h('h3', {}, '预览'), preview.el, cost)),
    h('div', {class: 'actions'}, button('保存名片', save, {class: 'primary'})),
    note));
  await loadTemplate(card ? card.data : undefined);
  id.focus();
}

/** The latest version's state, and the operator's note when it was refused. */
function reviewCell(c) {
  const r = c.review || {state: 'approved'};
  return h('span', {class: 'review-state'}, stateBadge(r.state), ` v${c.version ?? 1}`,
    r.state === 'refused' && r.note ? h('span', {class: 'refusal'}, `原因：${r.note}`) : null);
}

const READY_STATE = {
  ready: ['ok', '就绪'], waiting: ['wait', '等待审核'], refused: ['bad', '未通过'],
  expired: ['off', '已失效'], unconfigured: ['off', '未配置'],
};

function readyWho(r) {
  if (r.by === 'operator') return '运营方';
  if (r.by === 'vendors') return '手机厂商';
  if (r.by.startsWith('carrier:')) return `运营商（${r.by.slice(8)}）`;
  return '';
}

function readyWhy(r) {
  if (r.channel === 'cardsms' && r.vendors) return vendorList(r);  // on the phones of the vendors that approved it
  if (r.state === 'ready') return '下一次来电会在这个渠道发送';
  if (r.state === 'unconfigured') {
    return r.why.includes('chatbot') ? '企业没有配置 5G 消息 Chatbot' : unconfiguredText(r.channel);
  }
  if (r.by === 'operator' && r.state === 'waiting') return '运营方还没有审核这个版本';
  if (r.state === 'expired') return '已不是正在发送的版本';
  return r.why;
}

// Card SMS: each handset vendor's review of the template, short: "华为 已通过 · OPPO 未通过（原因）".
function vendorList(r) {
  const vendors = r.vendors || [];
  if (!vendors.length) return r.state === 'waiting' ? '还没有提交给手机厂商审核' : r.why;
  const cls = {approved: 'ok', waiting: 'wait', refused: 'bad'};
  return h('ul', {class: 'vendor-reviews'}, vendors.map((v) => h('li', {},
    `${v.name} `, h('span', {class: `badge ${cls[v.state] || ''}`}, v.state_text),
    v.state === 'refused' && v.why ? h('span', {class: 'refusal'}, `原因：${v.why}`) : null)));
}

// Whether a version can go out, channel by channel, and whom it waits for.
async function readinessTable(ctx, card, version) {
  const res = await api.get(api.ent(ctx.eid, `/cards/${api.enc(card.id)}/readiness?version=${version}`));
  if (!res.ok) return h('p', {class: 'notice error'}, api.errorText(res));
  return table([
    {title: '渠道', get: (r) => CHANNEL_NAME[r.channel] || r.channel},
    {title: '情况', get: (r) => {
      const [cls, text] = READY_STATE[r.state] || ['', r.state];
      return h('span', {class: `badge ${cls}`}, text);
    }},
    {title: '等待或决定的一方', get: readyWho},
    {title: '说明', get: readyWhy},
  ], res.body.channels, {caption: `v${version} 的发送情况`, empty: '没有渠道'});
}

async function versions(slot, ctx, card) {
  const res = await api.get(api.ent(ctx.eid, `/cards/${api.enc(card.id)}/versions`));
  const items = res.ok ? [...res.body.versions].reverse() : [];  // newest first
  const sent = card.review ? card.review.sent_version : card.version;
  const previewBox = h('div', {class: 'version-preview', 'aria-live': 'polite'});
  const ready = [await readinessTable(ctx, card, card.version ?? 1)];
  if (sent && sent !== card.version) ready.push(await readinessTable(ctx, card, sent));
  clear(slot).append(section(`名片 ${card.id} 的版本记录`, ...ready,
    res.ok ? null : h('p', {class: 'notice error'}, api.errorText(res)),
    table([
      {title: '版本', get: (v) => `v${v.version}`},
      {title: '状态', get: (v) => h('span', {class: 'row-actions'}, stateBadge(v.state),
        v.state === 'approved' ? h('span', {class: 'badge ok'}, '正在发送') : null)},
      {title: '类别', get: (v) => CLASS_NAME[v.class || 'notification']},
      {title: '提交人', get: (v) => personName(v.made_by, ctx.ename)},
      {title: '提交时间', get: (v) => when(v.made_at)},
      {title: '审核人', get: (v) => (v.decided_by ? personName(v.decided_by, ctx.ename) : '')},
      {title: '审核时间', get: (v) => when(v.decided_at)},
      {title: '审核备注', get: (v) => v.note || ''},
      {title: '预览', get: (v) => button(`v${v.version}`, () => {
        const shown = versionPhones({enterprise: ctx.eid, card: card.id}, v.version, 'history', `v${v.version} 的样子`);
        clear(previewBox).append(shown.el);
        previewBox.scrollIntoView({block: 'nearest'});
      }, {'aria-label': `预览 v${v.version}`})},
    ], items, {caption: '最新的在前', empty: '没有版本记录'}), previewBox));
  slot.querySelector('h2').scrollIntoView({block: 'nearest'});
}

// The card's latest experiment: its variants with weights, each rate with its 95% interval, the
// sequential rule's verdict, and a button that makes a variant the only version sent.
const EXP_STATE = {running: '进行中', promoted: '已提升', stopped: '已停止'};
const GOAL_NAME = {tap_rate: '点击率', open_rate: '链接打开率'};
const pct = (x) => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(1)}%`);

function verdictText(a) {
  const v = a.verdict;
  if (v.winner) return `胜出：${v.winner}（统计量 ${v.statistic.toFixed(1)} ≥ ${v.threshold.toFixed(1)}）`;
  if (v.reason === 'min_sample') return '样本未达最小要求，暂无结论';
  return `暂无明显差异（统计量 ${v.statistic.toFixed(1)}，需达到 ${v.threshold.toFixed(1)}）`;
}

/** The button texts of a card version as rendered for 5G messages (what a `button:` goal names). */
async function buttonsOf(ctx, card, version) {
  const res = await api.get(api.ent(ctx.eid, `/cards/${api.enc(card.id)}/preview?version=${version}`));
  const found = new Set();
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, w] of Object.entries(v)) {
        if (k === 'displayText' && typeof w === 'string') found.add(w);
        else walk(w);
      }
    }
  };
  if (res.ok) walk(res.body);
  return [...found];
}

const LETTERS = 'ABCDE';

/** The form that starts an experiment: 2–5 approved versions with names and weights, the goal,
 * the minimum sample per version, whether a winner is promoted by itself. A 422 is shown at the
 * field its path names (the API's own Chinese sentence); a 409 under the form. */
async function startForm(ctx, card, started) {
  const base = api.ent(ctx.eid, `/cards/${api.enc(card.id)}/experiments`);
  const res = await api.get(api.ent(ctx.eid, `/cards/${api.enc(card.id)}/versions`));
  const usable = res.ok ? res.body.versions.filter((v) => v.state === 'approved' || v.state === 'superseded') : [];
  if (usable.length < 2) {
    return h('p', {class: 'muted'}, '开始实验需要至少两个通过审核的版本：修改名片并通过审核后，旧版本和新版本就可以一起参加实验。');
  }
  const errBox = () => h('p', {class: 'err', hidden: true, role: 'alert'});
  const showErr = (box, text) => { box.textContent = text || ''; box.hidden = !text; };
  const rows = [...usable].sort((a, b) => a.version - b.version).map((v, i, all) => {
    const on = h('input', {type: 'checkbox', name: `use-${v.version}`, checked: i >= all.length - 2});  // the newest two
    const name = input(`name-${v.version}`, {value: LETTERS[i] || `V${v.version}`, maxlength: '20', class: 'short',
      'aria-label': `第 ${v.version} 版的名称`});
    const weight = input(`weight-${v.version}`, {type: 'number', value: '1', min: '0', step: 'any', class: 'short',
      'aria-label': `第 ${v.version} 版的权重`});
    const err = errBox();
    const el = h('div', {class: 'exp-variant', dataset: {version: String(v.version)}},
      h('label', {class: 'exp-use'}, on, ` 第 ${v.version} 版${v.state === 'approved' ? '（正在发送）' : ''}`),
      h('label', {}, '名称', name), h('label', {}, '权重', weight), err);
    return {v, on, name, weight, err, el};
  });
  const goal = select('goal', [['tap_rate', '点击率（点击的人 ÷ 收到的人）'], ['open_rate', '链接打开率']], 'tap_rate');
  const minSample = input('min_sample', {type: 'number', value: '100', min: '30', step: '1'});
  const auto = h('input', {type: 'checkbox', name: 'auto_promote'});
  const errs = {variants: errBox(), goal: errBox(), min_sample: errBox(), auto_promote: errBox()};
  const note = notice();
  buttonsOf(ctx, card, usable[usable.length - 1].version).then((texts) => {
    for (const t of texts) goal.append(h('option', {value: `button:${t}`}, `按钮「${t}」的点击率`));
  });
  const variantsSet = h('fieldset', {class: 'group exp-variants'}, h('legend', {}, '参加实验的版本（2–5 个）'),
    ...rows.map((r) => r.el), errs.variants);
  function clearErrors() {
    for (const box of [...Object.values(errs), ...rows.map((r) => r.err)]) showErr(box, '');
    for (const c of [goal, minSample, auto, ...rows.flatMap((r) => [r.on, r.name, r.weight])]) c.removeAttribute('aria-invalid');
  }
  function showProblems(problems, chosen) {
    let first = null;
    for (const p of problems) {
      const m = /^\$\.variants\[(\d+)\](?:\.(\w+))?/.exec(p.path || '');
      const row = m ? chosen[Number(m[1])] : null;
      if (row) {
        const control = {name: row.name, weight: row.weight}[m[2]] || row.on;
        control.setAttribute('aria-invalid', 'true');
        showErr(row.err, p.message);
        first = first || control;
        continue;
      }
      const key = (p.path || '').replace(/^\$\.?/, '').split(/[.[]/)[0];
      if (errs[key]) {
        showErr(errs[key], p.message);
        const control = {goal, min_sample: minSample, auto_promote: auto}[key];
        if (control) control.setAttribute('aria-invalid', 'true');
        first = first || control || rows[0].on;
      } else {
        note.show(p.message || '填写的内容有误', 'error');
      }
    }
    if (first) first.focus();
  }
  const form = h('form', {class: 'exp-start', novalidate: true, on: {submit: async (ev) => {
    ev.preventDefault();
    clearErrors();
    note.show('');
    const chosen = rows.filter((r) => r.on.checked);
    const body = {
      variants: chosen.map((r) => ({name: r.name.value.trim(), version: r.v.version,
        weight: r.weight.value.trim() === '' ? 1 : Number(r.weight.value)})),
      goal: goal.value,
      min_sample: minSample.value.trim() === '' ? 100 : Number(minSample.value),
      auto_promote: auto.checked,
    };
    const r = await api.post(base, body);
    if (r.ok) { note.show(`实验 ${r.body.id} 已开始`); started(); return; }
    const problems = (r.body && r.body.problems) || [];
    if (r.status === 422 && problems.length) showProblems(problems, chosen);
    else note.show(r.status === 409 ? '这张名片已有进行中的实验，先停止它或提升一个版本' : api.errorText(r), 'error');
  }}},
  variantsSet,
  h('div', {class: 'grid-form'},
    h('div', {class: 'field'}, h('label', {for: goal.id = `goal-${card.id}`}, '目标'), goal, errs.goal),
    h('div', {class: 'field'}, h('label', {for: minSample.id = `min-${card.id}`}, '每个版本的最小样本'), minSample,
      h('small', {class: 'hint'}, '每个版本发送至少这么多次之后才下结论（不少于 30）'), errs.min_sample),
    h('div', {class: 'field'}, h('label', {class: 'exp-use'}, auto, ' 有胜出版本时自动提升为唯一版本'), errs.auto_promote)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '开始实验')),
  note);
  return section('开始新实验', form);
}

async function experiment(slot, ctx, card) {
  const base = api.ent(ctx.eid, `/cards/${api.enc(card.id)}/experiments`);
  const list = await api.get(base);
  const note = notice();
  const again = () => experiment(slot, ctx, card);
  if (!list.ok || !list.body.experiments.length) {
    clear(slot).append(section(`名片 ${card.id} 的实验`,
      h('p', {}, list.ok ? '这张名片还没有实验。' : api.errorText(list))), ...(list.ok ? [await startForm(ctx, card, again)] : []));
    slot.querySelector('h2').scrollIntoView({block: 'nearest'});
    return;
  }
  const res = await api.get(`${base}/${api.enc(list.body.experiments[0].id)}`);
  if (!res.ok) {
    clear(slot).append(section(`名片 ${card.id} 的实验`, h('p', {class: 'notice error'}, api.errorText(res))));
    return;
  }
  const x = res.body;
  const a = x.analysis;
  const goal = GOAL_NAME[x.goal] || `按钮「${x.goal.replace(/^button:/, '')}」的点击率`;
  const running = x.state === 'running';
  const stop = running ? confirmButton('停止实验', '确认停止', async () => {
    const r = await api.post(`${base}/${api.enc(x.id)}/stop`, {});
    note.show(r.ok ? '实验已停止，来电照常发送名片正在发送的版本' : api.errorText(r), r.ok ? 'ok' : 'error');
    if (r.ok) again();
  }) : null;
  clear(slot).append(section(`名片 ${card.id} 的实验`,
    h('p', {}, `${EXP_STATE[x.state] || x.state} · 目标：${goal} · 每个版本至少 ${x.min_sample} 次发送`
      + (x.auto_promote ? ' · 胜出后自动提升' : '')),
    table([
      {title: '版本', get: (v) => `${v.name}（第 ${v.version} 版）${v.state === 'retired' ? ' 已停用' : ''}`},
      {title: '权重', get: (v) => String(v.weight)},
      {title: '发送', get: (v) => String(v.sent)},
      {title: '达成', get: (v) => String(v.goal)},
      {title: '比率（95% 区间）', get: (v) => `${pct(v.rate)}（${pct(v.interval[0])}–${pct(v.interval[1])}）`},
      {title: '操作', get: (v) => (running ? confirmButton('提升为唯一版本', '确认提升', async () => {
        const r = await api.post(`${base}/${api.enc(x.id)}/promote`, {variant: v.name});
        note.show(r.ok ? `已将 ${v.name} 提升为唯一版本` : api.errorText(r), r.ok ? 'ok' : 'error');
        if (r.ok) again();
      }) : '')},
    ], a.variants, {caption: verdictText(a), empty: '没有版本'}),
    a.note ? h('p', {class: 'notice'}, a.note) : null,
    x.winner ? h('p', {class: 'notice ok'}, `${x.winner} 已成为唯一发送的版本`) : null,
    x.state === 'stopped' ? h('p', {class: 'notice'}, '实验已停止') : null,
    h('div', {class: 'actions'}, stop, button('刷新', again),
      h('a', {class: 'button', href: `${ctx.operator ? `#/e/${api.enc(ctx.eid)}` : '#'}/reports/${api.enc(card.id)}`},
        '在报表中查看漏斗')),
    note), ...(running ? [] : [await startForm(ctx, card, again)]));
  slot.querySelector('h2').scrollIntoView({block: 'nearest'});
}

export async function render(main, ctx) {
  const {eid} = ctx;
  const [cards, tlist] = await Promise.all([api.get(api.ent(eid, '/cards')), sapi.getJSON('/api/templates')]);
  const templates = tlist.ok ? tlist.body.templates.filter((t) => t.ok) : [];
  const slot = h('div', {class: 'editor-slot'});
  const listBox = h('div', {});
  const note = notice();
  async function reload() {
    const res = await api.get(api.ent(eid, '/cards'));
    drawList(res.ok ? res.body.cards : []);
  }
  function drawList(items) {
    clear(listBox).append(table([
      {title: 'ID', get: (c) => c.id},
      {title: '时机', get: (c) => PHASE_NAME[c.phase] || c.phase},
      {title: '适用', get: scopeText},
      {title: '模板', get: (c) => c.template},
      {title: '类别', get: (c) => CLASS_NAME[c.class || 'notification']},
      {title: '审核', get: reviewCell},
      {title: '来电发送', get: (c) => sentText(c.review)},
      {title: '操作', get: (c) => h('span', {class: 'row-actions'},
        button('编辑', () => editor(slot, ctx, c, templates, reload), {'aria-label': `编辑名片 ${c.id}`}),
        button('版本记录', () => versions(slot, ctx, c), {'aria-label': `名片 ${c.id} 的版本记录`}),
        button('实验', () => experiment(slot, ctx, c), {'aria-label': `名片 ${c.id} 的实验`}),
        confirmButton('删除', '确认删除', async () => {
          const res = await api.del(api.ent(eid, `/cards/${api.enc(c.id)}`));
          note.show(res.ok ? `已删除 ${c.id}` : api.errorText(res), res.ok ? 'ok' : 'error');
          reload();
        }))},
    ], items, {empty: '还没有名片'}));
  }
  drawList(cards.ok ? cards.body.cards : []);
  main.append(h('h1', {}, '名片'),
    h('p', {class: 'lead'}, '线路自己的名片优先，其次是分组的，最后是企业默认（全部线路）的。'
      + '新建或修改的名片经运营方审核通过后才会发送，审核期间来电继续发送之前通过的版本。'),
    section('已有名片', listBox, note, button('新建名片', () => editor(slot, ctx, null, templates, reload), {class: 'primary'})),
    slot);
}
