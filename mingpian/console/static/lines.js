// Lines: the enterprise's numbers — list (paged, searched on the server), add, label, group,
// and what the operator decided about each (verified or not, and its note).

import * as api from './capi.js';
import {button, clear, field, formData, h, input, notice, pagedList, phone, section, select} from './ui.js';

const KINDS = [['', '（未指定）'], ['mobile', '手机'], ['hotline', '热线'], ['fixed', '固话'], ['short', '短号']];
const KIND_NAME = Object.fromEntries(KINDS);

export function status(line) {
  if (line.verified) return h('span', {class: 'badge ok'}, '已认证');
  if (line.verify_note) return h('span', {class: 'badge bad'}, `未通过：${line.verify_note}`);
  return h('span', {class: 'badge wait'}, '待审核');
}

function lineForm(eid, line, done) {
  const note = notice();
  const number = input('number', {required: true, value: line ? line.number : '', readonly: Boolean(line),
    inputmode: 'tel', maxlength: '32'});
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const body = formData(form);
    if (line && line.ad) body.ad = true;
    const res = line
      ? await api.put(api.ent(eid, `/lines/${api.enc(line.number)}`), body)
      : await api.post(api.ent(eid, '/lines'), body);
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    note.show(line ? '已保存' : `已添加 ${phone(res.body.number)}，等待运营方审核`);
    if (!line) form.reset();
    done();
  }}},
  field('号码', number, '手机、400 热线、固话或短号'),
  field('类型', select('kind', KINDS, line ? line.kind || '' : '')),
  field('标签', input('label', {value: line ? line.label || '' : '', maxlength: '100'}), '例如：朝阳网点'),
  field('分组', input('group', {value: line ? line.group || '' : '', maxlength: '64'}), '同组线路共用分组名片'),
  field('员工 ID', input('staff', {value: line ? line.staff || '' : '', maxlength: '64'}), '这条线路显示哪位员工的名片'),
  field('认证材料', input('evidence', {value: line ? line.evidence || '' : '', maxlength: '500'}),
    '给运营方核对号码归属：营业执照号、号码证明编号等'),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, line ? '保存' : '添加线路')),
  note);
  return form;
}

export async function render(main, ctx) {
  const {eid} = ctx;
  const editor = h('div', {class: 'editor-slot'});
  const list = pagedList({
    url: api.ent(eid, '/lines'), key: 'lines', searchLabel: '搜索线路',
    empty: '还没有线路，先在上面添加一个号码',
    columns: [
      {title: '号码', get: (l) => phone(l.number)},
      {title: '标签', get: (l) => l.label || ''},
      {title: '分组', get: (l) => l.group || ''},
      {title: '类型', get: (l) => KIND_NAME[l.kind || ''] || l.kind},
      {title: '认证', get: status},
      {title: '操作', get: (l) => button('编辑', () => {
        clear(editor).append(section(`编辑 ${phone(l.number)}`, lineForm(eid, l, () => list.reload())));
        editor.querySelector('input[name=label]').focus();
      }, {'aria-label': `编辑 ${phone(l.number)}`})},
    ],
  });
  main.append(h('h1', {}, '线路'),
    section('添加线路', lineForm(eid, null, () => list.load(0))),
    editor,
    section('全部线路', list.el));
  await list.load(0);
}
