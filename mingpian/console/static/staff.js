// Staff cards: one template, many employees. Import a CSV (every row checked first; one bad row
// and nothing is written, with each bad row listed), export one, search, edit a member.

import * as api from './capi.js';
import {button, clear, field, h, input, notice, pagedList, section, select, table} from './ui.js';

function flat(data, prefix = '', out = []) {
  for (const [k, v] of Object.entries(data || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v)) flat(v, `${prefix}${k}.`, out);
    else out.push([`${prefix}${k}`, v]);
  }
  return out;
}

function setPath(obj, path, value) {
  const parts = path.split('.');
  let node = obj;
  for (const p of parts.slice(0, -1)) node = node[p] = node[p] && typeof node[p] === 'object' ? node[p] : {};
  node[parts[parts.length - 1]] = value;
}

function memberForm(eid, member, done) {
  const note = notice();
  const name = input('name', {value: member.name, required: true, maxlength: '64'});
  const fields = flat(member.data).map(([path, v]) => [path, input(path, {value: v == null ? '' : String(v)})]);
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const data = structuredClone(member.data || {});
    for (const [path, el] of fields) setPath(data, path, el.value);
    const res = await api.put(api.ent(eid, `/staff/${api.enc(member.id)}`), {id: member.id, name: name.value.trim(), data});
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    note.show('已保存');
    done();
  }}},
  field('姓名', name), ...fields.map(([path, el]) => field(path, el)),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '保存')), note);
  return form;
}

function reportTable(body) {
  return table([
    {title: '行', get: (p) => String(p.row), num: true},
    {title: '列', get: (p) => p.column || ''},
    {title: '问题', get: (p) => p.message || '内容有误'},  // the rule or limit, in Chinese, from the server
  ], body.problems || [], {caption: `${body.bad_rows} 行有错误，没有导入任何一行`});
}

export async function render(main, ctx) {
  const {eid} = ctx;
  const slot = h('div', {class: 'editor-slot'});
  const list = pagedList({
    url: api.ent(eid, '/staff'), key: 'staff', searchLabel: '搜索员工', empty: '还没有员工',
    columns: [
      {title: 'ID', get: (m) => m.id},
      {title: '姓名', get: (m) => m.name},
      {title: '名片内容', get: (m) => flat(m.data).map(([, v]) => v).filter((v) => typeof v === 'string').slice(0, 3).join(' · ')},
      {title: '操作', get: (m) => button('编辑', async () => {
        const res = await api.get(api.ent(eid, `/staff/${api.enc(m.id)}`));
        if (res.ok) {
          clear(slot).append(section(`编辑 ${m.name}`, memberForm(eid, res.body, () => list.reload())));
          slot.querySelector('input[name=name]').focus();
        }
      }, {'aria-label': `编辑 ${m.name}`})},
    ],
  });
  const file = input('file', {type: 'file', accept: '.csv,text/csv', required: true});
  const tpl = select('template', [['staff-card', '员工名片（staff-card）'], ['', '不按模板检查']], 'staff-card');
  const note = notice();
  const report = h('div', {class: 'import-report'});
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return;
    clear(report);
    note.show('正在检查和导入…');
    const started = performance.now();
    const q = tpl.value ? `?template=${api.enc(tpl.value)}` : '';
    // the file's own bytes: the server reads its encoding (a GBK file is refused, not garbled)
    const res = await api.request('POST', api.ent(eid, `/staff-csv${q}`), {body: f, type: 'text/csv'});
    if (!res.ok) {
      const why = {
        422: `有 ${res.body.bad_rows} 行不对，没有导入。改好后重新上传。`,
        413: '文件太大：一个员工文件最多 16 MB',
      };
      note.show(why[res.status] || api.errorText(res), 'error');
      if (res.status === 422) report.append(reportTable(res.body));
      return;
    }
    note.show(`已导入 ${res.body.imported} 名员工（${Math.round(performance.now() - started)} 毫秒）`);
    form.reset();
    list.load(0);
  }}},
  field('CSV 文件', file, '第一行：id,name,字段路径（如 employee.name,employee.mobile）；UTF-8 编码；最多 50000 行、200 个字段列'),
  field('检查字段', tpl),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '导入'),
    h('a', {href: api.ent(eid, '/staff-csv'), download: `staff-${eid}.csv`, class: 'button'}, '导出 CSV')),
  note);
  main.append(h('h1', {}, '员工名片'),
    h('p', {class: 'lead'}, '一个模板，许多员工：线路指定员工 ID 后，来电显示这位员工的名片。'),
    section('导入与导出', form, report), slot, section('全部员工', list.el));
  await list.load(0);
}
