// Media library: the enterprise's pictures and short videos (uploaded through the library API),
// each with the `media:<id>` a card's data names.

import {copyText} from '/static/dom.js';
import * as api from './capi.js';
import {button, clear, confirmButton, field, h, input, notice, section, table, when} from './ui.js';

const ERRORS = {
  unsupported_media: '不是图片或视频', undecodable_media: '文件已损坏，无法读取', media_too_large: '文件太大',
  media_too_long: '视频太长', quota_exceeded: '素材库空间不够', not_multipart: '上传格式不对',
};

function size(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

export async function render(main, {eid}) {
  main.append(h('h1', {}, '媒体素材'));
  const probe = await api.get(api.ent(eid, '/media'));
  if (!probe.ok) {
    main.append(h('p', {class: 'notice'}, '这台服务器还没有开放企业素材库。'));
    return;
  }
  const note = notice();
  const listBox = h('div');
  const usage = h('p', {class: 'lead'});
  function draw(body) {
    usage.textContent = `已用 ${size(body.used)} / ${size(body.quota)}`;
    clear(listBox).append(table([
      {title: '预览', get: (m) => (m.kind === 'video'
        ? h('video', {src: api.ent(eid, `/media/${api.enc(m.id)}/content`), controls: true, preload: 'metadata', class: 'thumb-media', 'aria-label': m.name})
        : h('img', {src: api.ent(eid, `/media/${api.enc(m.id)}/content`), alt: m.name, class: 'thumb-media', loading: 'lazy'}))},
      {title: '名称', get: (m) => m.name},
      {title: '尺寸', get: (m) => `${m.width}×${m.height}${m.seconds ? `，${m.seconds} 秒` : ''}`},
      {title: '大小', get: (m) => size(m.bytes), num: true},
      {title: '上传时间', get: (m) => when(m.created)},
      {title: '名片里填写', get: (m) => h('span', {class: 'row-actions'}, h('code', {}, m.ref),
        button('复制', async () => note.show(await copyText(m.ref) ? `已复制 ${m.ref}` : '无法复制'), {'aria-label': `复制 ${m.ref}`}))},
      {title: '操作', get: (m) => confirmButton('删除', '确认删除', async () => {
        const r = await api.del(api.ent(eid, `/media/${api.enc(m.id)}`));
        note.show(r.ok ? `已删除 ${m.name}` : api.errorText(r), r.ok ? 'ok' : 'error');
        reload();
      })},
    ], body.media, {empty: '还没有素材'}));
  }
  async function reload() {
    const res = await api.get(api.ent(eid, '/media'));
    if (res.ok) draw(res.body);
  }
  const file = input('file', {type: 'file', accept: 'image/*,video/*', required: true});
  const form = h('form', {class: 'grid-form', on: {submit: async (ev) => {
    ev.preventDefault();
    if (!file.files[0]) return;
    const body = new FormData();
    body.append('file', file.files[0]);
    note.show('正在上传…');
    const res = await api.request('POST', api.ent(eid, '/media'), {body});
    if (!res.ok) { note.show(ERRORS[res.body?.error] || api.errorText(res), 'error'); return; }
    note.show(`已上传，名片里填写 ${res.body.ref}`);
    form.reset();
    reload();
  }}}, field('图片或视频', file, '标志、员工照片、包裹图片等；服务器会去掉文件里的元数据'),
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, '上传')));
  main.append(usage, section('上传', form, note), section('全部素材', listBox));
  draw(probe.body);
}
