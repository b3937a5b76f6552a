// Brand: what a verified line shows of the enterprise (署名, 品牌名, 颜色, 标志, 5G 消息号) and the
// number its texts come from (短信发送号码: always the operator's to approve, but for its own verified lines).
// Once the enterprise has verified lines these change only through a request the operator
// approves: the enterprise files one here and sees its answer; the operator decides in its queue.

import * as api from './capi.js';
import {button, clear, confirmButton, field, formData, h, input, notice, phone, section, table, when} from './ui.js';

const FIELDS = [
  ['name', '企业名称', 100], ['signature', '署名', 20], ['brand_name', '品牌名', 100],
  ['color', '品牌色', 7], ['logo', '标志', 2048], ['chatbot', '5G 消息号', 200],
  ['sms_sender', '短信发送号码', 20],
];
const FIELD_NAME = Object.fromEntries(FIELDS.map(([k, label]) => [k, label]));
const STATE = {pending: '待审核', approved: '已通过', refused: '已拒绝', withdrawn: '已撤回'};

function changesText(changes) {
  return Object.entries(changes || {}).map(([k, v]) => `${FIELD_NAME[k] || k}：${
    v === '' ? '（清除）' : k === 'sms_sender' ? phone(v) : v}`).join('；');
}

// `names`: enterprise id → its name, for the operator's queue of every enterprise's requests
function requestsTable(items, extra, names = {}) {
  return table([
    {title: '提交时间', get: (r) => when(r.filed_at)},
    {title: '企业', get: (r) => names[r.enterprise] || r.enterprise},
    {title: '变更', get: (r) => changesText(r.changes)},
    {title: '说明', get: (r) => r.note || ''},
    {title: '状态', get: (r) => h('span', {class: `badge ${r.state === 'approved' ? 'ok' : r.state === 'pending' ? 'wait' : 'bad'}`}, STATE[r.state] || r.state)},
    {title: '运营方备注', get: (r) => r.decision_note || ''},
    ...extra,
  ], items, {empty: '没有申请'});
}

/** The enterprise's page: its brand now, a request to change it, its requests and their answers. */
export async function enterprisePage(main, {eid}) {
  const note = notice();
  const listBox = h('div');
  const ent = await api.get(api.ent(eid));
  const current = ent.ok ? ent.body : {};
  async function reload() {
    const res = await api.get(api.ent(eid, '/brand-requests'));
    clear(listBox).append(requestsTable(res.ok ? res.body.brand_requests : [], [
      {title: '操作', get: (r) => (r.state === 'pending' ? confirmButton('撤回', '确认撤回', async () => {
        const d = await api.del(api.ent(eid, `/brand-requests/${api.enc(r.id)}`));
        note.show(d.ok ? '已撤回' : api.errorText(d), d.ok ? 'ok' : 'error');
        reload();
      }) : '')},
    ]));
  }
  const inputs = FIELDS.map(([k, label, max]) => field(label, input(k, {value: current[k] || '', maxlength: String(max)})));
  const why = input('note', {maxlength: '500'});
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const values = formData(form);
    const changes = {};
    for (const [k] of FIELDS) if ((values[k] || '') !== (current[k] || '')) changes[k] = values[k] || '';
    if (!Object.keys(changes).length) { note.show('没有改动', 'error'); return; }
    const res = await api.post(api.ent(eid, '/brand-requests'), {changes, ...(values.note ? {note: values.note} : {})});
    note.show(res.ok ? '已提交，等待运营方审核' : res.body?.error === 'request_pending' ? '已有一个待审核的申请' : api.errorText(res),
      res.ok ? 'ok' : 'error');
    reload();
  }}}, ...inputs, field('说明', why, '给运营方看的变更原因'),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '提交变更申请')));
  main.append(h('h1', {}, '品牌'),
    h('p', {class: 'lead'}, '已认证的号码以这里的署名和品牌发送名片。有已认证号码后，品牌变更需要运营方审核；短信发送号码除本企业已认证的号码外，始终需要运营方审核。'),
    section('申请变更', form, note), section('我的申请', listBox));
  await reload();
}

/** The operator's queue: pending requests of every enterprise, approve or refuse with a note. */
export async function operatorPage(main) {
  const note = notice();
  const listBox = h('div');
  let names = {};
  const who = (r) => names[r.enterprise] || r.enterprise;
  async function reload() {
    const [res, list] = await Promise.all([api.get('/api/brand-requests?state=pending'), api.get('/api/enterprises')]);
    names = Object.fromEntries((list.ok ? list.body.enterprises : []).map((e) => [e.id, e.name]));
    if (!res.ok) { clear(listBox).append(h('p', {class: 'notice'}, '这台服务器还没有开放品牌变更申请。')); return; }
    clear(listBox).append(requestsTable(res.body.brand_requests, [
      {title: '备注', get: (r) => input('note', {maxlength: '500', 'aria-label': `${who(r)} 品牌申请的审核备注`})},
      {title: '审核', get: (r) => h('span', {class: 'row-actions'},
        button('通过', decide(r, true), {class: 'primary', 'aria-label': `通过 ${who(r)} 的品牌申请`}),
        button('拒绝', decide(r, false), {class: 'danger', 'aria-label': `拒绝 ${who(r)} 的品牌申请`}))},
    ], names));
  }
  const decide = (r, approve) => async (ev) => {
    const text = ev.target.closest('tr').querySelector('input[name=note]').value.trim();
    if (!approve && !text) { note.show('拒绝时请写明原因', 'error'); return; }
    const res = await api.post(api.ent(r.enterprise, `/brand-requests/${api.enc(r.id)}/decision`), {approve, note: text});
    note.show(res.ok ? `${who(r)}：${approve ? '已通过，品牌已更新' : '已拒绝'}` : api.errorText(res), res.ok ? 'ok' : 'error');
    reload();
  };
  main.append(h('h1', {}, '品牌变更'),
    h('p', {class: 'lead'}, '企业的署名、品牌名、标志和 5G 消息号在有已认证号码后由这里审核；短信发送号码始终由这里审核。'), note, listBox);
  await reload();
}

export async function render(main, ctx, name) {
  if (name === 'brands') await operatorPage(main);
  else await enterprisePage(main, ctx);
}
