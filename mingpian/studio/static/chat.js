// The conversation behind the mock-ups: a tapped suggestion or a numbered legacy reply goes to
// POST /api/studio/chat, where the MaaP simulator delivers it to the bot's webhook (the studio's
// private chatbot runtime: store, outbox, simulated MaaP) and the replies the outbox sent come
// back as the GSMA messageList (and the SMS fallback a legacy phone would get). Without a
// chatbot the tap is only shown, and the page says so.

import {postJSON} from './api.js';

function sessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Chat {
  constructor(caps, lane) {
    this.caps = caps || {};
    this.endpoint = this.caps.chatEndpoint || null;
    this.available = Boolean(this.caps.chatbot && this.endpoint);
    this.lane = lane;
    this.reset();
  }

  /** A fresh conversation (a new card was rendered, or the user asked). */
  reset() {
    this.session = `${this.lane}-${sessionId()}`;
    this.started = false;
  }

  /** Send a tap ({postback, text}) or typed text; resolves {messages, sms, raw} or {error}. */
  async send({text, postback}) {
    if (!this.available) return {error: {message: '聊天机器人未启用'}};
    const body = {session: this.session};
    if (postback) body.postback = postback;
    if (text) body.text = text;
    const res = await postJSON(this.endpoint, body);
    if (!res.ok) return {error: res.body || {message: `HTTP ${res.status}`}};
    this.started = true;
    return {messages: res.body.messageList || [], sms: res.body.sms || [], raw: res.body};
  }
}
