// Gallery thumbnails: the template's PNG render when the server has an image format, otherwise an
// HTML mini-card drawn from its 5G-message payload with the sample data.

import * as api from './api.js';
import {h} from './dom.js';
import {mediaResult} from './media.js';
import {renderMessageList} from './rcs.js';

const IMAGE_FORMATS = ['png', 'webp', 'jpeg'];

async function thumb(el, caps) {
  const name = el.dataset.thumb;
  const detail = await api.getJSON(`/api/templates/${encodeURIComponent(name)}`);
  if (!detail.ok) return;
  const sample = detail.body.sampleData;
  const fmt = IMAGE_FORMATS.find((f) => caps.formats.includes(f));
  if (fmt) {
    const out = await mediaResult(await api.render(name, sample, {format: fmt}));
    if (out.url) {
      el.replaceChildren(h('img', {src: out.url, alt: ''}));
      el.classList.add('image');
      return;
    }
  }
  const res = await api.render(name, sample);
  if (!res.ok) {
    brokenAtRender(el, res.body);
    return;
  }
  const mini = h('div', {class: 'mini', inert: true}, renderMessageList(res.body.messageList));
  el.replaceChildren(mini);
  el.classList.add('mini-card');
}

// A template that loads but fails with its own sample data (an undefined value, a limit): its
// tile says what and where, each problem once, as the server said it (Chinese, file:line).
function brokenAtRender(el, body) {
  const problems = Array.isArray(body?.problems) ? body.problems : [];
  if (!problems.length) return;
  const tile = el.closest('.tile');
  tile.classList.add('broken');
  tile.append(h('div', {class: 'error'}, h('p', {}, '示例数据渲染出错：'),
    h('ul', {class: 'problems'}, problems.map((p) => h('li', {},
      p.file ? h('code', {class: 'where'}, p.line ? `${p.file}:${p.line}` : p.file) : null,
      p.file ? ' ' : '', p.file ? '' : (p.path ? `${p.path}：` : ''), p.message)))));
}

async function start() {
  const caps = await api.capabilities();
  const tiles = [...document.querySelectorAll('[data-thumb]')];
  // Two at a time: the server shares two cores with everything else.
  const queue = tiles.slice();
  const worker = async () => {
    while (queue.length) await thumb(queue.shift(), caps).catch(() => {});
  };
  await Promise.all([worker(), worker()]);
  document.querySelector('main').dataset.ready = 'true';
}

start();
