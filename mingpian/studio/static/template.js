// The template page: schema form ↔ live renders on seven phone mock-ups, problems, raw payload,
// carrier profile, share link, and live reload from the template folder (SSE).

import * as api from './api.js';
import {Chat} from './chat.js';
import {announce, copyText, debounce, h, clear} from './dom.js';
import {SchemaForm} from './form.js';
import {legacyBody, legacyScreen, parseReply} from './legacy.js';
import {mediaResult} from './media.js';
import {Phone, VIEWS} from './phones.js';
import {renderMessageList} from './rcs.js';
import {encodeState, readShared, shareUrl} from './share.js';

const LEGACY = ['ussd', 'flash', 'sms'];
const IMAGE_FORMATS = ['png', 'webp', 'jpeg'];
const VIDEO_FORMATS = ['mp4'];
const STATUS_WORDS = {queued: '排队中', pending: '排队中', running: '渲染中', started: '渲染中'};
const FORMAT_NAMES = {png: '图片', mp4: '视频', ussd: 'USSD', flash: '闪信', sms: '短信', h5: 'H5 页面'};

const main = document.getElementById('main');
const name = main.dataset.template;
const state = {
  detail: null, caps: null, profile: '', gen: 0, raw: {}, rawKind: 'rcs',
  imageAbort: null, videoAbort: null, imageUrl: null, replyMaps: {}, media: '',
};
const phones = {};
let form;
const chats = {};

// What the page says about a failed render, in Chinese, by the API's stable `error` code (its
// English `message` is for API clients; problems of data and limits carry Chinese messages).
const SUMMARIES = {
  data_invalid: (n) => `数据有 ${n} 处错误`,
  limit_exceeded: (n) => `卡片超出运营商限制（${n} 处）`,
  template_error: (n) => `模板有 ${n} 处错误`,
  render_error: () => '无法生成这张卡片',
  template_not_found: () => '找不到这个模板',
  unknown_profile: () => '没有这个运营商配置',
  render_failed: () => '渲染失败',
  worker_died: () => '渲染进程意外退出',
  encoder_failed: () => '视频编码失败',
  cancelled: () => '渲染已取消',
  invalid_parameter: () => '渲染参数不对',
  chatbot_disabled: () => '聊天机器人未启用',
  no_bot: () => '没有机器人处理',
  preview_failed: () => '预览通道没有送达机器人的回复',
};

function problemsOf(body) {
  if (!body || typeof body !== 'object') return [{path: '$', message: String(body || '请求失败')}];
  if (Array.isArray(body.problems) && body.problems.length) return body.problems;
  return [{path: '$', message: summaryOf(body)}];
}

function summaryOf(body, status) {
  if (!body || typeof body !== 'object') return status ? `请求失败（HTTP ${status}）` : '请求失败';
  const n = Array.isArray(body.problems) ? body.problems.length : 1;
  const known = SUMMARIES[body.error];
  return known ? known(n) : (status ? `请求失败（HTTP ${status}）` : '请求失败');
}

function whereOf(p) {
  if (p.file) return p.line ? `${p.file}:${p.line}` : p.file;
  // A data problem names its field in the message; the path is shown only when no field has it.
  if (form && form.fieldFor(p.path) && form.fieldFor(p.path).path !== '$') return '';
  return p.path && p.path !== '$' ? p.path : '';
}

function showProblems(body, {fromTemplate = false} = {}) {
  const box = document.getElementById('problems');
  const list = document.getElementById('problem-list');
  clear(list);
  if (!body) {
    box.hidden = true;
    form && form.clearProblems();
    return;
  }
  const problems = problemsOf(body);
  const unplaced = fromTemplate || !form ? problems : form.showProblems(problems);
  const items = problems.map((p) => {
    const where = whereOf(p);
    const jump = !p.file && form && form.fieldFor(p.path) && p.path !== '$'
      ? h('button', {type: 'button', class: 'link', on: {click: () => form.focus(p.path)}}, '定位')
      : null;
    // The parser's own words (Jinja, YAML), for developers, on hover.
    return h('li', {class: p.file ? 'template-problem' : 'data-problem', title: p.detail || undefined},
      where ? h('code', {class: 'where'}, where) : null, ' ', h('span', {}, p.message), ' ', jump);
  });
  list.append(h('li', {class: 'summary'}, summaryOf(body)), ...items);
  box.hidden = false;
  box.dataset.count = String(problems.length);
  if (unplaced.length || fromTemplate) announce(`有 ${problems.length} 个错误`);
}

function setRaw(kind, body) {
  state.raw[kind] = body;
  const select = document.getElementById('raw-kind');
  if (select && !select.querySelector(`option[value="${kind}"]`)) {
    const label = kind === 'chat' ? '机器人回复（下行报文）' : VIEWS.find((v) => v.id === kind)?.title || kind;
    select.append(h('option', {value: kind}, label));
  }
  if (kind === state.rawKind) drawRaw();
}

function drawRaw() {
  const body = state.raw[state.rawKind];
  document.getElementById('raw').textContent = body === undefined ? '' : JSON.stringify(body, null, 2);
}

function brandText() {
  const b = state.detail?.brand || {};
  const plain = (s) => (typeof s === 'string' && !s.includes('{') ? s : '');
  return plain(b.name) || plain(b.signature) || state.detail?.title || name;
}

// ---- conversation ------------------------------------------------------------------------------

function userBubble(text, cls = '') {
  return h('div', {class: `bubble user ${cls}`}, text);
}

function systemLine(text) {
  return h('p', {class: 'sys'}, text);
}

async function onTap(d) {
  const phone = phones.rcs;
  if (d.kind !== 'reply' && d.kind !== 'action') {
    // What the phone itself does (open a URL, dial, show a map...); the postback still goes
    // to the bot, as on a real 5G-message client.
    phone.add(systemLine(`${d.text}：${d.detail || d.kind}`));
  }
  phone.add(userBubble(d.text));
  const chat = chats.rcs;
  if (!chat.available) {
    phone.add(systemLine(`按钮回传：${d.postback || '（无）'} · 聊天机器人未启用`));
    return;
  }
  const typing = systemLine('对方正在输入…');
  phone.add(typing);
  const res = await chat.send({text: d.text, postback: d.postback});
  typing.remove();
  if (res.error) {
    phone.add(systemLine(res.error.error === 'no_bot'
      ? `没有机器人处理这个按钮（回传：${d.postback}）`
      : `机器人没有回复：${summaryOf(res.error)}`));
    return;
  }
  setRaw('chat', res.raw);
  const nodes = renderMessageList(res.messages, {onTap});
  if (!nodes.length) phone.add(systemLine('（机器人没有回复）'));
  phone.add(...nodes.map((n) => { n.classList.add('reply'); return n; }));
  announce('机器人已回复');
}

async function onLegacyReply(channel, text, area) {
  const chat = chats[channel];
  area.append(userBubble(text));
  let postback;
  if (!chat.started) {
    // The first reply answers the card on screen: its menu number → that button's postback.
    // Later numbers answer the bot's own SMS, whose reply map the bot keeps.
    const key = parseReply(text);
    postback = key ? (state.replyMaps[channel] || {})[key] : undefined;
    if (!postback) {
      area.append(systemLine(key ? `没有第 ${key} 项` : '请回复菜单里的数字'));
      return;
    }
    area.append(systemLine(`回复 ${key} → ${postback}`));
  }
  if (!chat.available) {
    area.append(systemLine('聊天机器人未启用'));
    return;
  }
  const res = await chat.send({text, postback});
  if (res.error) {
    area.append(systemLine(`机器人没有回复：${summaryOf(res.error)}`));
    return;
  }
  setRaw('chat', res.raw);
  if (!res.sms.length) area.append(systemLine('（机器人没有回复）'));
  for (const sms of res.sms) {
    area.append(h('div', {class: 'bubble bot sms reply'}, h('pre', {class: 'legacy-text'}, sms)));
  }
  announce('机器人已回复');
}

// ---- renders -----------------------------------------------------------------------------------

function has(fmt) {
  return state.caps.formats.includes(fmt);
}

async function renderAll() {
  const gen = ++state.gen;
  const data = form.value;
  const profile = state.profile;
  syncUrl();
  const rcs = await api.render(name, data, {profile, query: state.media ? {media: state.media, lint: '1'} : {lint: '1'}});
  if (gen !== state.gen) return;
  if (rcs.ok) {
    showProblems(null);
    for (const p of Object.values(phones)) p.fixed(); // those not drawn again (the video) too
    state.lastRcs = rcs.body;
    phones.rcs.show(renderMessageList(rcs.body.messageList, {onTap}));
    markUnanswered(phones.rcs.body, rcs.body.warnings);
    chats.rcs.reset();
    if (!chats.rcs.available) phones.rcs.setNote('聊天机器人未启用：点按按钮只显示 postback');
    phones.rcs.el.dataset.version = rcs.body.templateVersion || '';
    if (rcs.body.brand?.name) {
      // The rendered brand: a templated one (staff card, personal card) is filled in here.
      for (const p of Object.values(phones)) p.brand = rcs.body.brand.name;
    }
    setRaw('rcs', rcs.body);
  } else {
    showProblems(rcs.body);
    // Every phone keeps its last good render, marked 未更新 so nobody mistakes it for this data;
    // a template error (its file:line) is said on every phone.
    if (rcs.body?.error === 'template_error') showBroken(rcs.body);
    else markStale(summaryOf(rcs.body, rcs.status));
    main.dataset.renders = String(gen);
    return;
  }
  await Promise.all([
    ...LEGACY.filter(has).map((ch) => renderLegacy(ch, data, profile, gen)),
    renderImage(data, profile, gen),
    has('h5') ? renderH5(data, profile, gen) : null,
  ]);
  main.dataset.renders = String(gen);
}

/** A broken template: every phone says so, each problem once with its file:line, in Chinese. */
function showBroken(body) {
  const lines = problemsOf(body).map((p) => [whereOf(p), p.message].filter(Boolean).join(' '));
  const text = `模板有错误，修好后会自动更新：\n${lines.join('\n')}`;
  for (const p of Object.values(phones)) {
    if (p.el.classList.contains('off')) continue;
    p.broken(text);
  }
}

/** Mark every phone that shows a render as stale (the video phone only once it holds a video). */
function markStale(why) {
  for (const p of Object.values(phones)) {
    if (p.el.classList.contains('off')) continue;
    if (p.id === 'video' && !p.body.querySelector('video')) continue;
    p.stale(why);
  }
}

async function renderLegacy(ch, data, profile, gen) {
  const res = await api.render(name, data, {format: ch, profile});
  if (gen !== state.gen) return;
  const lt = res.ok ? legacyBody(res.body) : null;
  if (!lt) {
    phones[ch].stale(summaryOf(res.body, res.status));
    return;
  }
  state.replyMaps[ch] = lt.replyMap || {};
  chats[ch].reset();
  phones[ch].show(legacyScreen(ch, lt, {onReply: async (text, area) => {
    const done = onLegacyReply(ch, text, area);
    phones[ch].scrollEnd();
    await done;
    phones[ch].scrollEnd();
  }}));
  setRaw(ch, res.body);
  // Numbered replies whose button no chatbot flow answers, said before anyone replies.
  const lost = new Set((state.lastRcs?.warnings || []).filter((w) => w.code === 'unanswered_button').map((w) => w.postback));
  const keys = Object.entries(state.replyMaps[ch]).filter(([, pb]) => lost.has(pb)).map(([k, pb]) => `回复 ${k}（回传 ${pb}）`);
  if (keys.length) phones[ch].setNote(`没有机器人回答：${keys.join('、')}`, 'error');
}

// The H5 card page a short link in an SMS opens, as its own document in a sandboxed frame (no
// scripts, no forms, no navigation out of it; its buttons are in-page anchors, so nothing reaches
// production). The data goes in the frame's URL as share links encode it; a fresh frame each time
// leaves no entries in the tab's history.
const H5_URL_MAX = 7000;
async function renderH5(data, profile, gen) {
  const q = new URLSearchParams({s: await encodeState(data)});
  if (profile) q.set('profile', profile);
  if (gen !== state.gen) return;
  const url = `/api/templates/${encodeURIComponent(name)}/h5?${q}`;
  if (url.length > H5_URL_MAX) {
    phones.h5.stale('数据太长，H5 页面预览没有更新');
    return;
  }
  phones.h5.show(h('iframe', {class: 'h5-frame', title: 'H5 名片页面预览', sandbox: '', referrerpolicy: 'no-referrer', src: url}));
}

function carouselSize(body) {
  for (const part of body?.messageList || []) {
    const cards = part?.contentText?.message?.generalPurposeCardCarousel?.content;
    if (Array.isArray(cards)) return cards.length;
  }
  return 0;
}

async function renderImage(data, profile, gen) {
  const fmt = IMAGE_FORMATS.find(has);
  if (!fmt) return;
  if (state.imageAbort) state.imageAbort.abort();
  const abort = new AbortController();
  state.imageAbort = abort;
  // A carousel is one picture per card, shown as the phone shows it: a row to swipe through.
  const count = Math.max(1, carouselSize(state.lastRcs));
  let res;
  const outs = [];
  try {
    for (let i = 0; i < count; i += 1) {
      const query = count > 1 ? {card: String(i)} : {};
      res = await api.render(name, data, {format: fmt, profile, signal: abort.signal, query});
      outs.push(await mediaResult(res, {signal: abort.signal}));
    }
  } catch {
    return; // superseded by a newer render
  }
  if (gen !== state.gen || outs.some((o) => o.aborted)) return;
  const failed = outs.find((o) => o.error);
  if (failed) {
    phones.image.stale(summaryOf(failed.error));
    return;
  }
  for (const u of state.imageUrls || []) if (u.startsWith('blob:')) URL.revokeObjectURL(u);
  state.imageUrls = outs.map((o) => o.url);
  state.imageUrl = outs[0].url;
  const imgs = outs.map((o, i) => h('img', {class: 'rendered', src: o.url,
    alt: count > 1 ? `${state.detail.title}：第 ${i + 1}/${count} 张` : `${state.detail.title}（${fmt.toUpperCase()} 渲染）`}));
  phones.image.show(count > 1 ? h('div', {class: 'swipe', tabindex: '0', 'aria-label': `轮播图片，共 ${count} 张，可左右滑动`}, imgs) : imgs[0]);
  showGlyphWarnings(state.lastRcs?.warnings);
  if (!(res.body instanceof Blob)) setRaw('image', res.body);
}

/** Mark, before anyone taps, each button no chatbot flow answers (the server's warnings). */
function markUnanswered(root, warnings) {
  const lost = new Map((warnings || []).filter((w) => w.code === 'unanswered_button').map((w) => [w.postback, w]));
  if (!lost.size) return;
  for (const btn of root.querySelectorAll('button.sugg')) {
    const w = lost.get(btn.dataset.postback);
    if (!w) continue;
    btn.classList.add('unanswered');
    btn.title = w.message;
    btn.setAttribute('aria-label', `${btn.getAttribute('aria-label')}（没有机器人回答这个按钮）`);
    btn.append(h('span', {class: 'no-answer', 'aria-hidden': 'true'}, '无人回答'));
  }
}

function showGlyphWarnings(warnings) {
  // Characters no font draws show as boxes in the picture and video: say which, by field.
  const glyphs = (warnings || []).filter((w) => w.code === 'uncovered_character');
  const text = glyphs.map((w) => `${w.path}：${w.message}`).join('\n');
  phones.image.setNote(text, 'error');
}

async function renderVideo() {
  const fmt = VIDEO_FORMATS.find(has);
  if (!fmt) return;
  if (state.videoAbort) state.videoAbort.abort();
  const abort = new AbortController();
  state.videoAbort = abort;
  const bar = h('progress', {max: '100', 'aria-label': '视频渲染进度'});
  const label = h('span', {}, '排队中…');
  phones.video.show(h('div', {class: 'progress'}, bar, label));
  let res;
  try {
    res = await api.render(name, form.value, {format: fmt, profile: state.profile, signal: abort.signal,
      query: {async: '1'}});
  } catch {
    return;
  }
  const out = await mediaResult(res, {
    signal: abort.signal,
    onProgress: (pct, status) => {
      if (pct !== null) bar.value = pct;
      const words = STATUS_WORDS[status] || '渲染中';
      label.textContent = pct !== null ? `${words} ${pct}%` : words;
    },
  });
  if (out.aborted) return;
  if (out.error) {
    phones.video.show(videoButton());
    phones.video.stale(`视频渲染失败：${summaryOf(out.error)}`);
    return;
  }
  phones.video.show([h('video', {class: 'rendered', src: out.url, controls: true, preload: 'metadata',
    'aria-label': `${state.detail.title} 视频`}), videoButton('重新生成')]);
  announce('视频已生成');
}

function videoButton(text = '生成视频') {
  return h('button', {type: 'button', class: 'make-video', on: {click: renderVideo}}, text);
}

const scheduleRender = debounce(() => renderAll(), 200);

// ---- URL state and share link ------------------------------------------------------------------

function shareState() {
  const out = {data: form.value, profile: state.profile};
  if (state.media) out.media = state.media;
  return out;
}

const syncUrl = debounce(async () => {
  const url = await shareUrl(shareState());
  history.replaceState(null, '', url);
}, 300);

async function share() {
  const url = await shareUrl(shareState());
  history.replaceState(null, '', url);
  const ok = await copyText(url);
  announce(ok ? '分享链接已复制' : '无法复制，请从地址栏复制链接');
  const btn = document.getElementById('share');
  btn.dataset.url = url;
  btn.textContent = ok ? '已复制链接 ✓' : '链接已放入地址栏';
  setTimeout(() => { btn.textContent = '复制分享链接'; }, 2000);
}

// ---- live reload -------------------------------------------------------------------------------

async function reloadTemplate() {
  const res = await api.getJSON(`/api/templates/${encodeURIComponent(name)}`);
  if (!res.ok) {
    showProblems(res.body, {fromTemplate: true});
    showBroken(res.body);
    return false;
  }
  const wasBroken = state.detail === null;
  const before = JSON.stringify(state.detail?.dataSchema);
  state.detail = res.body;
  form.patternText = res.body.patternText || {};
  document.getElementById('title').textContent = res.body.title;
  for (const p of Object.values(phones)) p.brand = brandText();
  if (JSON.stringify(res.body.dataSchema) !== before) {
    const keep = wasBroken ? (state.shared?.data ?? res.body.sampleData) : form.value;
    form.build(res.body.dataSchema, keep);
  }
  return true;
}

function listen() {
  const es = new EventSource(`/api/templates/${encodeURIComponent(name)}/events`);
  let version = null;
  const refresh = async (ev) => {
    let info = {};
    try { info = JSON.parse(ev.data); } catch { info = {}; }
    if (ev.type === 'ready' && version === null) {
      version = info.templateVersion || '';
      main.dataset.live = 'on';
      return;
    }
    if (ev.type === 'ready' && info.templateVersion === version) return;
    version = info.templateVersion || '';
    if (await reloadTemplate()) {
      await renderAll();
      announce('模板已更新');
    }
  };
  es.addEventListener('ready', refresh);
  es.addEventListener('changed', refresh);
  es.addEventListener('gone', () => {
    es.close();
    main.dataset.live = 'gone';
    showProblems({error: 'template_not_found', problems: [{path: '$', message: `模板 ${name} 已不存在`}]}, {fromTemplate: true});
  });
  es.addEventListener('error', () => { main.dataset.live = 'reconnecting'; });
}

// ---- start -------------------------------------------------------------------------------------

async function start() {
  const [detail, caps, profiles, shared] = await Promise.all([
    api.getJSON(`/api/templates/${encodeURIComponent(name)}`),
    api.capabilities(),
    api.getJSON('/api/profiles'),
    readShared(),
  ]);
  state.caps = caps;
  state.shared = shared;
  for (const lane of ['rcs', ...LEGACY]) chats[lane] = new Chat(caps, lane);

  const select = document.getElementById('profile');
  if (profiles.ok) {
    clear(select);
    for (const p of profiles.body.profiles) {
      select.append(h('option', {value: p.name}, p.label || p.name));
    }
    state.profile = shared?.profile && profiles.body.profiles.some((p) => p.name === shared.profile)
      ? shared.profile : profiles.body.default;
    select.value = state.profile;
  }
  const limits = document.getElementById('profile-limits');
  const showLimits = () => {
    const p = profiles.ok ? profiles.body.profiles.find((x) => x.name === select.value) : null;
    limits.textContent = p ? [
      `标题 ≤${p.title_max}`, `描述 ≤${p.description_max}`, `按钮 ≤${p.suggestions_per_card_max} 个`,
      `按钮文字 ≤${p.suggestion_text_max}`, `快捷回复 ≤${p.chips_max}`, `轮播 ${p.carousel_min}–${p.carousel_max} 张`,
      `图片 ≤${Math.round(p.image_max_bytes / 1048576)} MB`,
      `视频 ≤${Math.round(p.video_max_bytes / 1048576)} MB / ${p.video_max_seconds} 秒`,
    ].join(' · ') : '';
  };
  showLimits();
  select.addEventListener('change', () => {
    showLimits();
    state.profile = select.value;
    announce(`运营商：${select.selectedOptions[0]?.textContent || ''}`);
    renderAll();
  });

  const mediaSelect = document.getElementById('media-mode');
  if (IMAGE_FORMATS.some(has)) {
    // The media feature can render each card's media slot and put its /media/ URL into the
    // payload (format=rcs&media=card): the 5G view then shows real pictures, not placeholders.
    mediaSelect.closest('.media-mode').hidden = false;
    state.media = shared?.media === 'card' ? 'card' : '';
    mediaSelect.value = state.media;
    mediaSelect.addEventListener('change', () => {
      state.media = mediaSelect.value;
      renderAll();
    });
  }
  const container = document.getElementById('phones');
  for (const view of VIEWS) {
    phones[view.id] = new Phone(view, '');
    container.append(phones[view.id].el);
  }
  const missing = (fmt) => `这台服务器没有启用${FORMAT_NAMES[fmt] || fmt}渲染`;
  if (!IMAGE_FORMATS.some(has)) phones.image.off(missing('png'));
  if (!VIDEO_FORMATS.some(has)) phones.video.off(missing('mp4'));
  else phones.video.show(videoButton());
  for (const ch of LEGACY) if (!has(ch)) phones[ch].off(missing(ch));
  if (!has('h5')) phones.h5.off(missing('h5'));

  form = new SchemaForm(document.getElementById('data-form'), {onChange: scheduleRender,
    patternText: detail.ok ? detail.body.patternText : {}});
  if (!detail.ok) {
    showProblems(detail.body, {fromTemplate: true});
    showBroken(detail.body);
    form.build({type: 'object'}, {});
    state.detail = null;
  } else {
    state.detail = detail.body;
    for (const p of Object.values(phones)) p.brand = brandText();
    form.build(detail.body.dataSchema, shared?.data ?? detail.body.sampleData);
  }

  const rawKind = document.getElementById('raw-kind');
  rawKind.addEventListener('change', () => { state.rawKind = rawKind.value; drawRaw(); });
  document.getElementById('copy-raw').addEventListener('click', async () => {
    const ok = await copyText(document.getElementById('raw').textContent);
    announce(ok ? '报文已复制' : '无法复制');
  });
  document.getElementById('share').addEventListener('click', share);
  document.getElementById('reset').addEventListener('click', () => {
    if (!state.detail) return;
    form.value = state.detail.sampleData;
    renderAll();
    announce('已恢复示例数据');
  });

  listen();
  if (state.detail) await renderAll();
  main.dataset.ready = 'true';
}

start();
