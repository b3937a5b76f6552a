// The conversation behind the mock-ups: a tapped suggestion or a numbered legacy reply goes to
// the chatbot through the built-in MaaP simulator, and the bot's answer comes back as GSMA
// messageList items. Without a chatbot the tap is only echoed, and the page says so.

import {postJSON} from './api.js';

export class Chat {
  constructor(caps) {
    this.caps = caps || {};
    this.routes = new Set(this.caps.chatbotRoutes || []);
    this.available = Boolean(this.caps.chatbot) && this.#endpoint() !== null;
    this.user = `tel:+8613${String(Date.now()).slice(-9)}`;
  }

  #endpoint() {
    for (const candidate of ['POST /api/simulator/send', 'POST /api/simulator/messages', 'POST /api/simulator/tap']) {
      if (this.routes.has(candidate)) return candidate.split(' ')[1];
    }
    return null;
  }

  /** Send a tap ({text, postback}) or typed text; resolves {messages: [...]} or {error}. */
  async send({text, postback, template}) {
    if (!this.available) return {error: {message: '聊天机器人未启用'}};
    const res = await postJSON(this.#endpoint(), {user: this.user, text, postback, template});
    if (!res.ok) return {error: res.body || {message: `HTTP ${res.status}`}};
    const b = res.body || {};
    return {messages: b.messageList || b.replies || b.messages || [], raw: b};
  }
}
