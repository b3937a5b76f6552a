// The operator's pages: enterprises (create, suspend, trust their notification cards), the
// verification queue (number, evidence, approve or refuse with a note), brand change requests,
// packages and shared pools (create, assign lines, top up), and fleet-wide reports. The card
// review queue is reviews.js.

import * as api from './capi.js';
import {balanceTable} from './account.js';
import {status as lineStatus} from './lines.js';
import {button, chinaDate, chinaDayEnd, chinaDayStart, clear, field, formData, h, input, notice, packageDays, pagedList, phone,
  section, select, table} from './ui.js';

async function enterprises(main) {
  const note = notice();
  const listBox = h('div');
  async function reload() {
    const res = await api.get('/api/enterprises');
    clear(listBox).append(table([
      {title: 'ID', get: (e) => e.id},
      {title: '名称', get: (e) => e.name},
      {title: '署名', get: (e) => `【${e.signature}】`},
      {title: '状态', get: (e) => h('span', {class: `badge ${e.suspended ? 'bad' : 'ok'}`}, e.suspended ? '已暂停' : '正常')},
      {title: '通知类名片免审', get: (e) => h('span', {class: 'row-actions'},
        h('span', {class: `badge ${e.notification_trusted ? 'ok' : 'off'}`}, e.notification_trusted ? '免审' : '需审核'),
        button(e.notification_trusted ? '取消免审' : '设为免审', async () => {
          const {notification_trusted: trusted, ...rest} = e;
          const r = await api.put(api.ent(e.id), trusted ? rest : {...rest, notification_trusted: true});
          note.show(r.ok ? `${e.name}：${trusted ? '已取消免审，通知类名片也要经过审核才会发送' : '通知类名片免审，提交即生效；营销名片仍需审核'}`
            : api.errorText(r), r.ok ? 'ok' : 'error');
          reload();
        }, {'aria-label': `${e.notification_trusted ? '取消免审' : '设为免审'} ${e.name}`}))},
      {title: '操作', get: (e) => h('span', {class: 'row-actions'},
        h('a', {href: `#/e/${encodeURIComponent(e.id)}/lines`}, '进入'),
        button(e.suspended ? '恢复' : '暂停', async () => {
          const {suspended, ...rest} = e;
          const body = e.suspended ? rest : {...rest, suspended: true};
          const r = await api.put(api.ent(e.id), body);
          note.show(r.ok ? `${e.name}：${e.suspended ? '已恢复' : '已暂停，不再发送名片，密钥暂不可用'}` : api.errorText(r), r.ok ? 'ok' : 'error');
          reload();
        }, {'aria-label': `${e.suspended ? '恢复' : '暂停'} ${e.name}`}),
        button('签发密钥', async () => {
          const r = await api.request('POST', api.ent(e.id, `/keys?label=${api.enc('运营方签发')}`));
          if (!r.ok) { note.show(api.errorText(r), 'error'); return; }
          note.show(`${e.name} 的新密钥（只显示这一次）：${r.body.key}`);
        }))},
    ], res.ok ? res.body.enterprises : [], {empty: '还没有企业'}));
  }
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const body = formData(form);
    const res = await api.post('/api/enterprises', body);
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    note.show(`已创建 ${res.body.name}`);
    form.reset();
    reload();
  }}},
  field('ID', input('id', {required: true, maxlength: '64', pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]*'}), '字母、数字、. _ -'),
  field('名称', input('name', {required: true, maxlength: '100'})),
  field('署名', input('signature', {required: true, maxlength: '20'}), '短信署名，不带括号'),
  field('品牌名', input('brand_name', {maxlength: '100'})),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '创建企业')));
  main.append(h('h1', {}, '企业'), section('新建企业', form, note), section('全部企业', listBox));
  await reload();
}

async function queue(main) {
  const note = notice();
  const ents = await api.get('/api/enterprises');
  const names = Object.fromEntries((ents.ok ? ents.body.enterprises : []).map((e) => [e.id, e.name]));
  let list;
  const decide = (l, verified) => async (ev) => {
    const row = ev.target.closest('tr');
    const text = row.querySelector('input[name=note]').value.trim();
    if (!verified && !text) { note.show('拒绝时请写明原因', 'error'); row.querySelector('input[name=note]').focus(); return; }
    const res = await api.post(api.ent(l.enterprise, `/lines/${api.enc(l.number)}/verify`), {verified, note: text});
    note.show(res.ok ? `${phone(l.number)}：${verified ? '已通过' : '已拒绝'}` : api.errorText(res), res.ok ? 'ok' : 'error');
    list.reload();
  };
  list = pagedList({
    url: '/api/lines?unverified=1', key: 'lines', searchLabel: '搜索号码', empty: '没有待审核的号码',
    columns: [
      {title: '号码', get: (l) => phone(l.number)},
      {title: '企业', get: (l) => names[l.enterprise] || l.enterprise},
      {title: '标签', get: (l) => l.label || ''},
      {title: '认证材料', get: (l) => l.evidence || '（未提供）'},
      {title: '状态', get: lineStatus},
      {title: '备注', get: (l) => input('note', {maxlength: '500', 'aria-label': `${phone(l.number)} 的审核备注`})},
      {title: '审核', get: (l) => h('span', {class: 'row-actions'},
        button('通过', decide(l, true), {class: 'primary', 'aria-label': `通过 ${phone(l.number)}`}),
        button('拒绝', decide(l, false), {class: 'danger', 'aria-label': `拒绝 ${phone(l.number)}`}))},
    ],
  });
  main.append(h('h1', {}, '号码审核'),
    h('p', {class: 'lead'}, '核对企业提交的号码与材料：通过后，这个号码发出的名片显示企业署名和品牌。'),
    note, list.el);
  await list.load(0);
}

async function pools(main) {
  const list = await api.get('/api/enterprises');
  const ents = list.ok ? list.body.enterprises : [];
  const which = select('enterprise', ents.map((e) => [e.id, `${e.name}（${e.id}）`]), ents[0] ? ents[0].id : '');
  const out = h('div');
  const note = notice();
  async function load() {
    const eid = which.value;
    if (!eid) return;
    const [pk, report] = await Promise.all([api.get(api.ent(eid, '/packages')), api.get(api.ent(eid, '/report'))]);
    const docs = pk.ok ? pk.body.packages : [];
    const topUp = (p) => {
      const amount = input('units', {type: 'number', min: '1', step: '1', 'aria-label': `${p.id} 充值条数`, class: 'short'});
      return h('span', {class: 'row-actions'}, amount, button('充值', async () => {
        const n = Number(amount.value);
        if (!Number.isInteger(n) || n <= 0) { note.show('充值条数应为正整数', 'error'); return; }
        const r = await api.put(api.ent(eid, `/packages/${api.enc(p.id)}`), {...p, units: p.units + n});
        note.show(r.ok ? `${p.id} 已充值 ${n} 条，共 ${r.body.units} 条` : api.errorText(r), r.ok ? 'ok' : 'error');
        load();
      }));
    };
    const assign = (p) => {
      const lines = input('lines', {value: (p.lines || []).map(phone).join('，'), 'aria-label': `${p.id} 覆盖的线路`});
      return h('span', {class: 'row-actions'}, lines, button('分配', async () => {
        const numbers = lines.value.split(/[,，、;；\n]+/).map((n) => n.trim()).filter(Boolean);
        const r = await api.put(api.ent(eid, `/packages/${api.enc(p.id)}`), {...p, lines: numbers});
        note.show(r.ok ? `${p.id} 已分配到 ${numbers.length ? numbers.length + ' 条线路' : '全部线路'}` : api.errorText(r), r.ok ? 'ok' : 'error');
        load();
      }));
    };
    clear(out).append(
      section('余量', balanceTable(report.ok ? report.body.packages : [])),
      section('套餐', table([
        {title: '套餐', get: (p) => p.id},
        {title: '类型', get: (p) => (p.kind === 'pool' ? '共享池' : '线路套餐')},
        {title: '最后一天', get: (p) => packageDays(p).to},
        {title: '覆盖线路（逗号分隔，空为全部）', get: assign},
        {title: '充值', get: topUp},
      ], docs, {empty: '没有套餐'})));
  }
  const now = Date.now() / 1000;
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const f = formData(form);
    const body = {
      id: f.id, kind: f.kind, units: Number(f.units), price: Number(f.price || 0), policy: f.policy,
      // whole China days: from the first day's start to the end of the last (inclusive)
      valid_from: chinaDayStart(f.valid_from),
      valid_to: chinaDayEnd(f.valid_to),
    };
    if (f.overage_price) body.overage_price = Number(f.overage_price);
    const res = await api.post(api.ent(which.value, '/packages'), body);
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    note.show(`已为 ${which.value} 开通 ${res.body.id}`);
    load();
  }}},
  field('套餐 ID', input('id', {required: true, maxlength: '64'})),
  field('类型', select('kind', [['pool', '共享池'], ['line', '线路套餐']], 'pool')),
  field('条数', input('units', {type: 'number', min: '0', required: true})),
  field('价格（元）', input('price', {type: 'number', min: '0', step: '0.01'})),
  field('用完后', select('policy', [['stop', '停止发送'], ['overage', '按量计费']], 'stop')),
  field('超出单价（元）', input('overage_price', {type: 'number', min: '0', step: '0.0001'})),
  field('生效日期', input('valid_from', {type: 'date', required: true, value: chinaDate(now)}), '当天零点起（北京时间）'),
  field('最后一天', input('valid_to', {type: 'date', required: true, value: chinaDate(now + 364 * 86400)}), '含这一天，到当天 24 点（北京时间）'),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '开通套餐')));
  which.addEventListener('change', load);
  main.append(h('h1', {}, '套餐与共享池'), field('企业', which), section('开通', form, note), out);
  await load();
}

async function fleet(main) {
  const list = await api.get('/api/enterprises');
  const ents = list.ok ? list.body.enterprises : [];
  const rows = await Promise.all(ents.map(async (e) => {
    const r = await api.get(api.ent(e.id, '/report'));
    const attempts = r.ok ? r.body.attempts : [];
    const sum = (pred) => attempts.filter(pred).reduce((a, x) => a + x.attempts, 0);
    const pk = r.ok ? r.body.packages : [];
    return {
      e, total: sum(() => true), delivered: sum((a) => a.outcome === 'delivered' || a.outcome === 'displayed'),
      remaining: pk.reduce((a, p) => a + (p.remaining || 0), 0),
      byChannel: Object.fromEntries(['rcs', 'cardsms', 'ussd', 'flash', 'sms'].map((c) => [c, sum((a) => a.channel === c)])),
    };
  }));
  const all = rows.reduce((a, r) => ({total: a.total + r.total, delivered: a.delivered + r.delivered}), {total: 0, delivered: 0});
  const pct = (a, b) => (b ? `${Math.round((a / b) * 1000) / 10}%` : '—');
  main.append(h('h1', {}, '全网报表'),
    h('p', {class: 'lead'}, `全部企业共尝试 ${all.total} 次，送达 ${all.delivered} 次（${pct(all.delivered, all.total)}）。`),
    table([
      {title: '企业', get: (r) => h('a', {href: `#/e/${encodeURIComponent(r.e.id)}/reports`}, r.e.name)},
      {title: '尝试', get: (r) => r.total, num: true},
      {title: '送达', get: (r) => r.delivered, num: true},
      {title: '送达率', get: (r) => pct(r.delivered, r.total), num: true},
      {title: '5G', get: (r) => r.byChannel.rcs, num: true},
      {title: '卡片短信', get: (r) => r.byChannel.cardsms, num: true},
      {title: 'USSD', get: (r) => r.byChannel.ussd, num: true},
      {title: '闪信', get: (r) => r.byChannel.flash, num: true},
      {title: '短信', get: (r) => r.byChannel.sms, num: true},
      {title: '套餐剩余', get: (r) => r.remaining, num: true},
    ], rows, {caption: '各企业的投递', empty: '没有企业'}));
}

const PAGES = {enterprises, queue, pools, fleet};

export async function render(main, ctx, name) {
  await PAGES[name](main, ctx);
}
