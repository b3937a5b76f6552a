// Dry run: what a call between one of the lines and a number would send, channel by channel,
// in the enterprise's order, with nothing sent or charged.

import * as api from './capi.js';
import {Preview, skipText} from './preview.js';
import {CHANNEL_NAME, PHASES, PHASE_NAME, clear, field, formData, h, input, notice, section, select, table} from './ui.js';

const BLOCKED = [
  ['no card', '这个时机没有名片'],
  ['opted out', '这个号码已退订'],
  ['quiet hours for marketing', '营销名片的免打扰时段'],
  ['quiet hours', '广告名片的免打扰时段'],
  ['does not render', '名片数据不完整，无法生成'],
];

function blockedText(reason) {
  const hit = BLOCKED.find(([k]) => reason.includes(k));
  return hit ? hit[1] : reason;
}

export async function render(main, ctx) {
  const {eid} = ctx;
  const note = notice();
  const preview = new Preview();
  const out = h('div', {class: 'dry-result', 'aria-live': 'polite'});
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    const res = await api.post(api.ent(eid, '/dry-run'), formData(form));
    if (!res.ok) { note.show(api.errorText(res), 'error'); return; }
    note.show('');
    const r = res.body;
    const lines = [
      h('p', {class: 'summary'}, r.card
        ? `${PHASE_NAME[r.phase]}名片「${r.card.id}」（模板 ${r.card.template}），署名【${r.brand ? r.brand.signature : ''}】`
          + (r.verified ? '' : '——号码未认证，只显示号码')
        : '没有名片'),
    ];
    if (r.blocked) lines.push(h('p', {class: 'notice error'}, `不会发送：${blockedText(r.blocked)}`));
    lines.push(table([
      {title: '顺序', get: (c) => String(r.chain.indexOf(c.channel) + 1)},
      {title: '渠道', get: (c) => CHANNEL_NAME[c.channel] || c.channel},
      {title: '情况', get: (c) => (c.error ? '放不下这张名片' : c.skipped ? `跳过：${skipText(c.skipped)}` : '发送，失败则转下一渠道')},
      {title: '条数', get: (c) => c.cost.segments ?? '', num: true},
      {title: '计费单位', get: (c) => c.cost.units ?? '', num: true},
      {title: '费用（元）', get: (c) => c.cost.cost ?? '', num: true},
    ], r.channels || [], {caption: '逐个渠道', empty: '没有可发送的渠道'}));
    clear(out).append(...lines);
    if (r.channels && r.channels.length) preview.showDryRun(r);
    out.dataset.done = String(Date.now());
  }}},
  field('线路', input('line', {required: true, inputmode: 'tel', value: ctx.rest[0] || ''}), '企业的一条线路'),
  field('对方号码', input('to', {required: true, inputmode: 'tel'}), '接听或拨打这条线路的号码'),
  field('时机', select('phase', PHASES, 'ended')),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '试拨')),
  note);
  main.append(h('h1', {}, '试拨'),
    h('p', {class: 'lead'}, '看一通电话会按什么顺序、在哪个渠道发出什么内容。不会真的发送，也不计费。'),
    section('电话', form), out, section('各渠道内容', preview.el));
}
