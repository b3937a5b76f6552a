// The enterprise's account pages: API keys (issued and shown once, revoked), opt-outs (search,
// export), the audit log, packages and balances (read-only) and the reports.

import {copyText} from '/static/dom.js';
import {reportView} from '/delivery/static/report_view.js';
import {funnelView} from '/delivery/static/funnel_view.js';
import {BY_NAMES, cardFunnelView} from '/delivery/static/card_funnel_view.js';
import * as api from './capi.js';
import {CHANNEL_NAME, button, clear, confirmButton, field, h, input, notice, packageDays, phone, section, select, table,
  when} from './ui.js';

const ACTIONS = {
  'create enterprise': '创建企业', 'update enterprise': '修改企业', 'issue key': '签发密钥',
  'revoke key': '吊销密钥', 'import staff': '导入员工', verify: '认证号码', unverify: '拒绝认证',
  'create line': '添加线路', 'update line': '修改线路', 'delete line': '删除线路',
  'create card': '新建名片', 'update card': '修改名片', 'delete card': '删除名片',
  'create staff': '添加员工', 'update staff': '修改员工', 'delete staff': '删除员工',
  'create package': '新建套餐', 'update package': '修改套餐', 'delete package': '删除套餐',
  'file brand request': '提交品牌申请', 'withdraw brand request': '撤回品牌申请',
  'approve brand request': '通过品牌申请', 'refuse brand request': '拒绝品牌申请',
  'upload media': '上传素材', 'delete media': '删除素材',
  'carrier refused card': '运营商驳回名片', 'clear carrier refusal': '解除运营商驳回',
  'approve card version': '通过名片版本', 'refuse card version': '拒绝名片版本', 'fetch media': '抓取素材',
  'start experiment': '开始实验', 'change experiment weights': '调整实验比例', 'stop experiment': '停止实验',
  'promote experiment winner': '采用实验胜出版本', 'promote experiment variant': '采用实验版本',
};

// the audit log's object, `kind:id` as the server writes it → the kind's name and the item
const TARGET_KIND = {line: '线路', card: '名片', staff: '员工', package: '套餐', media: '素材', brand_request: '品牌申请'};

function target(t, eid, ename) {
  if (t === 'staff') return '员工名单';  // a whole staff file imported
  if (t === eid) return `企业 ${ename}`;
  const at = t.indexOf(':');
  const word = at > 0 ? TARGET_KIND[t.slice(0, at)] : null;
  if (!word) return t;
  const id = t.slice(at + 1);
  return `${word} ${t.startsWith('line:') ? phone(id) : id}`;
}

/** A key's note as a person reads it: the operator's keys were once noted `operator`, and a key
 * the server loaded from its seed file is noted `seed <file>`. */
export function keyLabel(label) {
  if (label === 'operator') return '运营方签发';
  if ((label || '').startsWith('seed ')) return `初始数据（${label.slice('seed '.length)}）`;
  return label || '';
}

function actor(a) {
  if (a.startsWith('carrier:')) return `运营商（${a.slice(8)}）`;
  return a === 'operator' ? '运营方' : a.startsWith('enterprise:') ? '企业' : a;
}

async function keys(main, {eid}) {
  const note = notice();
  const shown = h('div', {class: 'key-once', hidden: true, 'aria-live': 'polite'});
  const listBox = h('div');
  async function reload() {
    const res = await api.get(api.ent(eid, '/keys'));
    clear(listBox).append(table([
      {title: '编号', get: (k) => h('code', {}, k.id)},
      {title: '备注', get: (k) => keyLabel(k.label)},
      {title: '签发时间', get: (k) => when(k.created)},
      {title: '操作', get: (k) => confirmButton('吊销', '确认吊销', async () => {
        const r = await api.del(api.ent(eid, `/keys/${api.enc(k.id)}`));
        note.show(r.ok ? `已吊销 ${k.id}，用它登录的会话也已失效` : api.errorText(r), r.ok ? 'ok' : 'error');
        reload();
      })},
    ], res.ok ? res.body.keys : [], {empty: '没有密钥'}));
  }
  const label = input('label', {maxlength: '64', placeholder: '例如：呼叫中心系统'});
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const res = await api.request('POST', api.ent(eid, `/keys?label=${api.enc(label.value.trim())}`));
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    const value = h('code', {class: 'secret'}, res.body.key);
    clear(shown).append(h('p', {}, h('strong', {}, '新密钥只显示这一次，请现在复制保存：')), value,
      button('复制', async () => note.show(await copyText(res.body.key) ? '已复制' : '无法复制，请手动选中复制')),
      button('我已保存，隐藏', () => { clear(shown); shown.hidden = true; }));
    shown.hidden = false;
    label.value = '';
    reload();
  }}}, field('备注', label), h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '签发新密钥')));
  main.append(h('h1', {}, 'API 密钥'),
    h('p', {class: 'lead'}, '系统对接用的密钥。服务器只保存密钥的摘要，签发后无法再次查看。'),
    section('签发', form, shown, note), section('已签发的密钥', listBox));
  await reload();
}

async function optouts(main, {eid}) {
  const q = input('q', {type: 'search', placeholder: '号码或回复内容'});
  const out = h('div');
  async function load() {
    const res = await api.get(api.ent(eid, `/optouts?q=${api.enc(q.value.trim())}`));
    clear(out).append(table([
      {title: '号码', get: (o) => phone(o.number)},
      {title: '时间', get: (o) => when(o.at)},
      {title: '渠道', get: (o) => CHANNEL_NAME[o.channel] || o.channel},
      {title: '回复内容', get: (o) => o.text},
    ], res.ok ? res.body.optouts : [], {empty: '没有退订记录'}));
  }
  main.append(h('h1', {}, '退订'),
    h('p', {class: 'lead'}, '回复 TD、退订等字样的号码：所有渠道都不再向他们发送名片。'),
    h('form', {class: 'search', role: 'search', on: {submit: (ev) => { ev.preventDefault(); load(); }}},
      field('搜索', q), h('button', {type: 'submit'}, '搜索'),
      h('a', {class: 'button', href: api.ent(eid, '/optouts?format=csv'), download: `optouts-${eid}.csv`}, '导出 CSV')),
    out);
  await load();
}

async function audit(main, {eid}) {
  const [res, ent] = await Promise.all([api.get(api.ent(eid, '/audit')), api.get(api.ent(eid))]);
  const ename = ent.ok ? ent.body.name : eid;
  main.append(h('h1', {}, '操作日志'), h('p', {class: 'lead'}, '最近 200 条：谁在什么时候改了什么。'),
    table([
      {title: '时间', get: (a) => when(a.at)},
      {title: '操作者', get: (a) => actor(a.actor)},
      {title: '操作', get: (a) => ACTIONS[a.action] || a.action},
      {title: '对象', get: (a) => target(a.target, eid, ename)},
      {title: '备注', get: (a) => (a.detail && a.detail.note) || ''},
    ], res.ok ? res.body.audit : [], {empty: '没有记录'}));
}

export function balanceTable(packages) {
  return table([
    {title: '套餐', get: (p) => p.id},
    {title: '类型', get: (p) => (p.kind === 'pool' ? '共享池' : '线路套餐')},
    {title: '总量', get: (p) => p.units, num: true},
    {title: '已用', get: (p) => p.used, num: true},
    {title: '剩余', get: (p) => p.remaining, num: true},
    {title: '超出', get: (p) => p.overage ?? 0, num: true},
    {title: '用完后', get: (p) => (p.policy === 'overage' ? '按量计费' : '停止发送')},
  ], packages, {empty: '没有套餐'});
}

async function packages(main, {eid}) {
  const [report, list] = await Promise.all([api.get(api.ent(eid, '/report')), api.get(api.ent(eid, '/packages'))]);
  main.append(h('h1', {}, '套餐与余量'), h('p', {class: 'lead'}, '套餐由运营方开通和充值；这里只读。'),
    section('余量', balanceTable(report.ok ? report.body.packages : [])),
    section('有效期', table([
      {title: '套餐', get: (p) => p.id},
      {title: '价格（元）', get: (p) => p.price ?? '', num: true},
      {title: '生效', get: (p) => packageDays(p).from},
      {title: '最后一天', get: (p) => packageDays(p).to},
      {title: '覆盖线路', get: (p) => ((p.lines || []).length ? p.lines.map(phone).join('、') : '全部线路')},
    ], list.ok ? list.body.packages : [])));
}

/** The reports page's stylesheet (charts' colours, grids that fit a phone), once per console. */
function reportStyles() {
  if (document.querySelector('link[data-reports]')) return;
  document.head.append(h('link', {rel: 'stylesheet', href: '/delivery/static/reports.css', 'data-reports': true}));
}

/** Today in China time (as every report's day), and `days` before it, as YYYY-MM-DD. */
function chinaDay(daysBefore = 0) {
  return new Date(Date.now() + 8 * 3600 * 1000 - daysBefore * 86400 * 1000).toISOString().slice(0, 10);
}

// The card funnel (名片漏斗): a card (or every card), a range, the grouping and the buckets; the
// report as charts.js draws it (card_funnel_view.js), and the same report as CSV.
async function cardFunnel(eid, wanted) {
  const cards = await api.get(api.ent(eid, '/cards'));
  const ids = cards.ok ? cards.body.cards.map((c) => c.id) : [];
  const card = select('card', [['', '全部名片'], ...ids.map((id) => [id, `名片 ${id}`])],
    ids.includes(wanted) ? wanted : ids[0] || '');
  const from = input('from', {type: 'date', value: chinaDay(29), required: true});
  const to = input('to', {type: 'date', value: chinaDay(0), required: true});
  const by = select('by', Object.entries(BY_NAMES), 'variant');
  const bucket = select('bucket', [['day', '按天'], ['hour', '按小时']], 'day');
  const csv = h('a', {class: 'button', download: ''}, '下载 CSV');
  const note = notice();
  const out = h('div', {class: 'card-funnel-out', 'aria-live': 'polite'});
  const controls = {card, from, to, by, bucket};
  const query = () => new URLSearchParams({card: card.value, by: by.value, bucket: bucket.value,
    from: from.value, to: to.value}).toString();
  async function load() {
    for (const c of Object.values(controls)) c.removeAttribute('aria-invalid');
    csv.href = api.ent(eid, `/reports/funnel?${query()}&format=csv`);
    csv.download = `funnel-${eid}-${card.value || 'all'}-${from.value}-${to.value}.csv`;
    const res = await api.get(api.ent(eid, `/reports/funnel?${query()}`));
    if (!res.ok) {
      const path = ((res.body && res.body.problems) || [{}])[0].path;
      if (controls[path]) controls[path].setAttribute('aria-invalid', 'true');
      const why = res.body && res.body.error === 'invalid_query' && path === 'bucket'
        ? '按小时查看时日期范围不能超过 31 天' : api.errorText(res);
      note.show(why, 'error');
      clear(out);
      return;
    }
    note.show('');
    clear(out).append(cardFunnelView(res.body, {empty: '这段时间还没有这张名片的发送记录。来电触发名片发送后，这里会显示每一步的人数、'
      + '转化率和用时；可以换一张名片或放宽日期范围。要比较名片的几个版本，先在「名片」页为它开始实验，再按“实验版本”分组查看。'}));
  }
  const form = h('form', {class: 'card-funnel-form', on: {submit: (ev) => { ev.preventDefault(); load(); }}},
    h('label', {}, '名片', card), h('label', {}, '从', from), h('label', {}, '到', to),
    h('label', {}, '分组', by), h('label', {}, '时间粒度', bucket),
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '查看'), csv));
  const el = h('section', {class: 'card-funnel-section'}, h('h2', {text: '名片漏斗'}),
    h('p', {class: 'funnel-range', text: '每张名片从发送到点击的每一步：可按实验版本、名片版本、渠道或名片分组比较，转化率附 95% 置信区间。'}),
    form, note, out);
  await load();
  return el;
}

async function reports(main, {eid, rest}) {
  reportStyles();
  const [report, usage, optouts, funnel, cards] = await Promise.all([api.get(api.ent(eid, '/report')),
    api.get(api.ent(eid, '/usage?by=day,channel')), api.get(api.ent(eid, '/optouts')),
    api.get(api.ent(eid, '/reports/funnel')), cardFunnel(eid, rest[0])]);
  main.append(h('h1', {}, '报表'));
  const failed = [report, usage, optouts, funnel].find((r) => !r.ok);
  if (failed) { main.append(h('p', {class: 'notice error'}, api.errorText(failed))); return; }
  // the same report as the reports page at /reports draws (report_view.js), the card funnel after
  // the delivery funnel
  main.append(h('div', {class: 'reports'},
    ...reportView(report.body, usage.body, optouts.body, h('div', {}, funnelView(funnel.body), cards))),
    h('p', {}, h('a', {href: api.ent(eid, '/reports/funnel?format=csv'), download: `funnel-${eid}.csv`}, '导出投递漏斗 CSV')),
    h('p', {}, h('a', {href: api.ent(eid, '/usage?by=day,line,channel,package&format=csv'), download: `usage-${eid}.csv`}, '导出用量明细 CSV')));
}

const PAGES = {keys, optouts, audit, packages, reports};

export async function render(main, ctx, name) {
  await PAGES[name](main, ctx);
}
