// The 5G-message view: an HTML/CSS rendition of the GSMA botmessage / botsuggestion payloads
// exactly as the API returned them (generalPurposeCard, generalPurposeCardCarousel, suggestions).

import {h, icon, safeMediaUrl} from './dom.js';

const BOTMESSAGE = 'application/vnd.gsma.botmessage.v1.0+json';
const BOTSUGGESTION = 'application/vnd.gsma.botsuggestion.v1.0+json';

const ACTIONS = {
  urlAction: {icon: 'link', label: '打开链接'},
  dialerAction: {icon: 'phone', label: '拨打电话'},
  mapAction: {icon: 'pin', label: '查看位置'},
  calendarAction: {icon: 'calendar', label: '加入日历'},
  composeAction: {icon: 'message', label: '写信息'},
  deviceAction: {icon: 'device', label: '设备信息'},
  settingsAction: {icon: 'gear', label: '设置'},
};

/** What a suggestion is: {kind: 'reply' | action key, text, postback, detail}. */
export function describeSuggestion(s) {
  if (s.reply) {
    return {kind: 'reply', text: s.reply.displayText || '', postback: s.reply.postback?.data || '', raw: s};
  }
  const a = s.action || {};
  const kind = Object.keys(ACTIONS).find((k) => a[k]) || 'action';
  let detail = '';
  if (a.urlAction) detail = a.urlAction.openUrl?.url || '';
  else if (a.dialerAction) detail = a.dialerAction.dialPhoneNumber?.phoneNumber || '';
  else if (a.mapAction) {
    const loc = a.mapAction.showLocation?.location;
    detail = loc ? `${loc.label || ''} (${loc.latitude}, ${loc.longitude})`.trim() : '发送位置';
  } else if (a.calendarAction) {
    const ev = a.calendarAction.createCalendarEvent || {};
    detail = `${ev.title || ''} ${ev.startTime || ''} – ${ev.endTime || ''}`.trim();
  } else if (a.composeAction) {
    const c = a.composeAction.composeTextMessage || {};
    detail = `${c.phoneNumber || ''} ${c.text || ''}`.trim();
  }
  return {kind, text: a.displayText || '', postback: a.postback?.data || '', detail, raw: s};
}

function suggestionButton(s, onTap, where) {
  const d = describeSuggestion(s);
  const meta = ACTIONS[d.kind];
  return h('button', {
    type: 'button', class: `sugg sugg-${d.kind} ${where}`,
    'aria-label': meta ? `${meta.label}：${d.text}` : `回复：${d.text}`,
    dataset: {postback: d.postback},
    on: {click: () => onTap && onTap(d)},
  }, meta ? icon(meta.icon) : null, h('span', {class: 'label'}, d.text));
}

function mediaBlock(media) {
  if (!media) return null;
  const height = media.height || 'MEDIUM_HEIGHT';
  const src = safeMediaUrl(media.thumbnailUrl || media.mediaUrl);
  const isVideo = (media.mediaContentType || '').startsWith('video/');
  const box = h('div', {class: `media ${height.toLowerCase()}`, title: media.mediaUrl || ''});
  const local = safeMediaUrl(media.mediaUrl);
  if (isVideo && local) {
    box.append(h('video', {src: local, controls: true, preload: 'metadata', 'aria-label': media.contentDescription || '视频',
      poster: src && src !== local ? src : undefined}));
  } else if (src) {
    box.append(h('img', {src, alt: media.contentDescription || '', loading: 'lazy'}));
  } else {
    // External media cannot load under the studio's CSP (and should not be fetched from a
    // designer's machine anyway): show what the phone would, a framed placeholder.
    box.classList.add('placeholder');
    box.append(icon(isVideo ? 'play' : 'image', 'ph-icon'),
      h('span', {class: 'ph-text'}, media.contentDescription || media.mediaContentType || '图片'));
  }
  return box;
}

function cardContent(content, onTap, extraClass = '') {
  const c = content || {};
  return h('article', {class: `rcs-card ${extraClass}${c.media ? ' has-media' : ''}`},
    mediaBlock(c.media),
    h('div', {class: 'card-body'},
      c.title ? h('h3', {class: 'card-title'}, c.title) : null,
      c.description ? h('p', {class: 'card-desc'}, c.description) : null),
    c.suggestions && c.suggestions.length
      ? h('div', {class: 'card-suggs'}, c.suggestions.map((s) => suggestionButton(s, onTap, 'in-card')))
      : null);
}

/** Render a messageList (as returned by the rcs format) into a list of chat nodes. */
export function renderMessageList(messageList, {onTap} = {}) {
  const nodes = [];
  for (const item of messageList || []) {
    const body = item.contentText || {};
    if (item.contentType === BOTMESSAGE || body.message) {
      const msg = body.message || {};
      if (msg.generalPurposeCard) {
        const card = msg.generalPurposeCard;
        const layout = card.layout || {};
        const orient = (layout.cardOrientation || 'VERTICAL').toLowerCase();
        const align = (layout.imageAlignment || 'LEFT').toLowerCase();
        nodes.push(h('div', {class: 'bubble bot card-wrap'},
          cardContent(card.content, onTap, `${orient} img-${align}`)));
      } else if (msg.generalPurposeCardCarousel) {
        const car = msg.generalPurposeCardCarousel;
        const width = (car.layout?.cardWidth || 'MEDIUM_WIDTH').toLowerCase();
        const cards = car.content || [];
        nodes.push(h('div', {class: 'carousel', role: 'group', 'aria-label': `轮播卡片，共 ${cards.length} 张`, tabindex: '0'},
          cards.map((c, i) => cardContent(c, onTap, `vertical ${width} slide-${i}`))));
      } else if (typeof msg.text === 'string' || typeof body.text === 'string') {
        nodes.push(h('div', {class: 'bubble bot text'}, msg.text ?? body.text));
      }
    } else if (item.contentType === BOTSUGGESTION || body.suggestions) {
      const chips = body.suggestions || [];
      if (chips.length) {
        nodes.push(h('div', {class: 'chips', role: 'group', 'aria-label': '快捷回复'},
          chips.map((s) => suggestionButton(s, onTap, 'chip'))));
      }
    } else if (item.contentType === 'text/plain' && typeof item.contentText === 'string') {
      nodes.push(h('div', {class: 'bubble bot text'}, item.contentText));
    }
  }
  return nodes;
}
