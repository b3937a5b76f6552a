// Phone mock-up frames. Each view is a <figure> with a status bar, an app bar and a screen whose
// content the page replaces; a note line says when a backend is missing or a render failed.

import {h, clear} from './dom.js';

export const VIEWS = [
  {id: 'rcs', title: '5G 消息', app: '消息'},
  {id: 'image', title: '图片', app: '图片预览'},
  {id: 'video', title: '视频', app: '视频预览'},
  {id: 'ussd', title: 'USSD', app: ''},
  {id: 'flash', title: '闪信', app: ''},
  {id: 'sms', title: '短信', app: '信息'},
  {id: 'h5', title: 'H5 页面', app: '浏览器'},
];

export class Phone {
  constructor({id, title, app}, brand) {
    this.id = id;
    // Not aria-live: seven phones re-render on every keystroke; the page's status line
    // announces what matters (errors, bot replies, live reloads) once.
    this.body = h('div', {class: 'convo'});
    this.screen = h('div', {class: 'screen'}, this.body);
    this.note = h('p', {class: 'phone-note', hidden: true});
    this.appTitle = h('span', {class: 'app-title'}, brand || app);
    // Shown while the screen holds an older render than the form's data (an invalid edit).
    this.badge = h('span', {class: 'stale-badge', hidden: true}, '未更新');
    this.el = h('figure', {class: `phone phone-${id}`, id: `phone-${id}`, dataset: {view: id}, 'aria-labelledby': `cap-${id}`},
      h('figcaption', {id: `cap-${id}`}, title, ' ', this.badge),
      h('div', {class: 'device'},
        h('div', {class: 'statusbar', 'aria-hidden': 'true'},
          h('span', {}, '9:41'), h('span', {}, id === 'ussd' || id === 'flash' ? '2G ▂▄▆' : '5G ▂▄▆█')),
        app ? h('div', {class: 'appbar'}, this.appTitle) : null,
        this.screen),
      this.note);
  }

  set brand(text) {
    if (text) this.appTitle.textContent = text;
  }

  show(nodes) {
    clear(this.body).append(...[nodes].flat().filter(Boolean));
    this.el.classList.remove('stale', 'off', 'broken');
    this.badge.hidden = true;
    this.setNote('');
  }

  add(...nodes) {
    this.body.append(...nodes);
    this.screen.scrollTop = this.screen.scrollHeight;
  }

  scrollEnd() {
    this.screen.scrollTop = this.screen.scrollHeight;
  }

  setNote(text, kind = 'info') {
    this.note.hidden = !text;
    this.note.textContent = text || '';
    this.note.className = `phone-note ${kind}`;
  }

  /** The backend for this view is not served: say so instead of pretending. */
  off(message) {
    clear(this.body).append(h('p', {class: 'off-text'}, message));
    this.el.classList.add('off');
  }

  /** The template itself is broken: the note says what and where (several lines). */
  broken(text) {
    this.el.classList.add('stale', 'broken');
    this.badge.hidden = false;
    this.setNote(text, 'error broken');
  }

  /** The template works again: whatever this phone shows is no longer marked broken. */
  fixed() {
    if (!this.el.classList.contains('broken')) return;
    this.el.classList.remove('stale', 'broken');
    this.badge.hidden = true;
    this.setNote('');
  }

  stale(message) {
    this.el.classList.add('stale');
    this.badge.hidden = false;
    this.setNote(`未更新：${message}`, 'error');
  }
}
