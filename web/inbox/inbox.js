// nudge's in-app inbox widget: a bell with the unread count and a panel of the user's
// messages (title, body, link), live. No framework, no global styles (Shadow DOM), themable
// with CSS custom properties. Served by nudge at /v1/sdk/inbox.js.
//
//   <script src="https://NUDGE/v1/sdk/inbox.js" defer></script>
//   <nudge-inbox api="https://NUDGE" user-id="USER" user-hash="HMAC-SHA256(inbox secret, USER)">
//   </nudge-inbox>
//
// Attributes: api (nudge's base URL), user-id, user-hash (computed by the app's server),
// label (the bell's name, default "Notifications"), poll (seconds between checks when the
// server cannot stream, default 10). Every text from the server goes in as text, never HTML.
(() => {
  'use strict';
  if (typeof customElements === 'undefined' || customElements.get('nudge-inbox')) return;

  const STYLE = `
:host { position: relative; display: inline-block; font: var(--nudge-font, 14px/1.4 system-ui, sans-serif);
  color: var(--nudge-fg, #1d2330); }
button { font: inherit; color: inherit; cursor: pointer; }
.bell { position: relative; display: inline-flex; align-items: center; justify-content: center;
  width: 2.5em; height: 2.5em; border: 0; border-radius: 50%; background: transparent; }
.bell:hover, .bell:focus-visible { background: var(--nudge-hover, rgba(0,0,0,.06)); }
.bell:focus-visible, .dismiss:focus-visible, a:focus-visible {
  outline: 2px solid var(--nudge-accent, #3b5bdb); outline-offset: 2px; }
.bell svg { width: 1.4em; height: 1.4em; }
.badge { position: absolute; top: .1em; right: .1em; min-width: 1.3em; height: 1.3em; padding: 0 .3em;
  box-sizing: border-box; border-radius: .65em; background: var(--nudge-badge, #e03131);
  color: var(--nudge-badge-fg, #fff); font-size: .75em; line-height: 1.3em; text-align: center; }
.badge[hidden] { display: none; }
.panel { position: absolute; z-index: var(--nudge-z, 1000); top: calc(100% + .4em); right: 0;
  width: var(--nudge-width, 22em); max-height: var(--nudge-max-height, 28em); overflow: auto;
  background: var(--nudge-bg, #fff); border: 1px solid var(--nudge-border, #d0d5dd);
  border-radius: var(--nudge-radius, .6em); box-shadow: 0 8px 24px rgba(0,0,0,.15); }
.panel[hidden] { display: none; }
.head { margin: 0; padding: .7em 1em; font-size: 1em; border-bottom: 1px solid var(--nudge-border, #d0d5dd); }
ul { list-style: none; margin: 0; padding: 0; }
li { position: relative; padding: .75em 2.5em .75em 1em; border-bottom: 1px solid var(--nudge-border, #eef0f3); }
li.unread { background: var(--nudge-unread-bg, #f1f4ff); }
.title { margin: 0 0 .2em; font-weight: 600; }
.body { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
a { display: inline-block; margin-top: .3em; color: var(--nudge-accent, #3b5bdb); }
.dismiss { position: absolute; top: .55em; right: .5em; width: 1.8em; height: 1.8em; border: 0;
  border-radius: 50%; background: transparent; font-size: 1em; line-height: 1; }
.dismiss:hover { background: var(--nudge-hover, rgba(0,0,0,.06)); }
.empty { margin: 0; padding: 1em; color: var(--nudge-muted, #667085); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
  const BELL = '<svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2"'
    + ' stroke-linecap="round" stroke-linejoin="round"><path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/>'
    + '<path d="M13.73 21a2 2 0 0 1-3.46 0"/></svg>';

  let instances = 0;

  class NudgeInbox extends HTMLElement {
    constructor() {
      super();
      const id = `nudge-inbox-${++instances}`;
      const root = this.attachShadow({ mode: 'open' });
      const style = document.createElement('style');
      style.textContent = STYLE;
      this.bell = el('button', { class: 'bell', type: 'button', part: 'bell', 'aria-haspopup': 'dialog',
        'aria-expanded': 'false', 'aria-controls': `${id}-panel` });
      this.bell.innerHTML = BELL; // a constant: no server text
      this.badge = el('span', { class: 'badge', part: 'badge', 'aria-hidden': 'true', hidden: '' });
      this.bell.append(this.badge);
      this.panel = el('div', { class: 'panel', part: 'panel', id: `${id}-panel`, role: 'dialog', hidden: '',
        'aria-labelledby': `${id}-head` });
      this.heading = el('h2', { class: 'head', id: `${id}-head` });
      this.list = el('ul', { role: 'list' });
      this.empty = el('p', { class: 'empty' }, 'Nothing new.');
      this.panel.append(this.heading, this.list, this.empty);
      this.live = el('div', { class: 'sr', 'aria-live': 'polite' });
      root.append(style, this.bell, this.panel, this.live);
      this.items = [];
      this.seen = new Set();
      this.loaded = false;
      this.bell.addEventListener('click', () => this.toggle());
      this.addEventListener('keydown', (e) => {
        if (e.key === 'Escape' && !this.panel.hidden) {
          e.stopPropagation();
          this.close();
          this.bell.focus();
        }
      });
      this.outside = (e) => {
        if (!this.panel.hidden && !e.composedPath().includes(this)) this.close();
      };
    }

    static get observedAttributes() { return ['api', 'user-id', 'user-hash', 'label']; }

    connectedCallback() {
      document.addEventListener('click', this.outside);
      this.restart();
    }

    disconnectedCallback() {
      document.removeEventListener('click', this.outside);
      this.halt();
    }

    attributeChangedCallback() {
      if (this.isConnected) this.restart();
    }

    get label() { return this.getAttribute('label') || 'Notifications'; }

    /** The inbox's URL for this user, or null until every attribute is set. */
    url(suffix = '') {
      const api = (this.getAttribute('api') || '').replace(/\/+$/, '');
      const user = this.getAttribute('user-id');
      if (!api || !user || !this.getAttribute('user-hash')) return null;
      return `${api}/v1/users/${encodeURIComponent(user)}/inbox${suffix}`;
    }

    headers(extra = {}) {
      return { 'X-User-Hash': this.getAttribute('user-hash') || '', ...extra };
    }

    restart() {
      this.halt();
      this.items = [];
      this.seen = new Set();
      this.loaded = false;
      this.render();
      if (!this.url()) return;
      this.stopped = false;
      this.etag = null;
      this.failures = 0;
      this.listen(1000);
    }

    halt() {
      this.stopped = true;
      if (this.abort) this.abort.abort();
      clearTimeout(this.timer);
    }

    /** Streams the inbox (server-sent events); where the server cannot, polls it. */
    async listen(backoff) {
      if (this.stopped) return;
      const abort = new AbortController();
      this.abort = abort;
      try {
        const res = await fetch(this.url('/stream'), {
          headers: this.headers({ Accept: 'text/event-stream' }),
          signal: abort.signal,
        });
        if (res.status === 404 || res.status === 405 || res.status === 501) return this.poll();
        if (!res.ok || !res.body) throw new Error(`inbox stream: ${res.status}`);
        backoff = 1000;
        this.failures = 0;
        await readEvents(res.body, (event, data) => {
          if (event === 'inbox') this.update(JSON.parse(data));
        });
      } catch (e) {
        if (this.stopped) return;
        // A network that cuts long requests (or a proxy that refuses them): poll instead.
        if (++this.failures >= 3) return this.poll();
      }
      if (this.stopped) return;
      this.timer = setTimeout(() => this.listen(Math.min(backoff * 2, 30000)), backoff);
    }

    async poll() {
      if (this.stopped) return;
      try {
        const res = await fetch(this.url(), {
          headers: this.headers(this.etag ? { 'If-None-Match': this.etag } : {}),
        });
        if (res.ok) {
          this.etag = res.headers.get('ETag');
          this.update(await res.json());
        }
      } catch (e) {
        // Offline or refused: try again at the next tick.
      }
      const seconds = Number(this.getAttribute('poll')) || 10;
      if (!this.stopped) this.timer = setTimeout(() => this.poll(), Math.max(seconds, 2) * 1000);
    }

    update(inbox) {
      const items = Array.isArray(inbox && inbox.items) ? inbox.items : [];
      if (this.loaded) {
        const fresh = items.filter((i) => !this.seen.has(i.id));
        if (fresh.length) this.announce(`New ${this.label.toLowerCase()}: ${fresh.map((i) => i.title).join('; ')}`);
      }
      items.forEach((i) => this.seen.add(i.id));
      this.items = items;
      this.loaded = true;
      this.render();
      if (!this.panel.hidden) this.markRead();
      this.dispatchEvent(new CustomEvent('nudge-inbox-update', { detail: { unread: this.unread() } }));
    }

    unread() { return this.items.filter((i) => !i.read_at).length; }

    render() {
      const unread = this.unread();
      this.badge.textContent = unread > 99 ? '99+' : String(unread);
      this.badge.hidden = unread === 0;
      this.bell.setAttribute('aria-label', unread ? `${this.label}, ${unread} unread` : this.label);
      this.heading.textContent = this.label;
      // Re-rendering must not drop the keyboard focus: put it back on the same control.
      const active = this.shadowRoot.activeElement;
      const row = active && active.closest('li');
      const keep = row ? [row.dataset.id, active.dataset.role] : null;
      this.list.replaceChildren(...this.items.map((item) => this.row(item)));
      this.empty.hidden = this.items.length > 0;
      if (keep) {
        const again = [...this.list.children].find((li) => li.dataset.id === keep[0]);
        const control = again && again.querySelector(`[data-role="${keep[1]}"]`);
        (control || this.bell).focus();
      }
    }

    row(item) {
      const li = el('li', { class: item.read_at ? 'item' : 'item unread', part: 'item', 'data-id': item.id });
      li.append(el('p', { class: 'title' }, item.title || ''));
      if (item.body) li.append(el('p', { class: 'body' }, item.body));
      const api = (this.getAttribute('api') || '').replace(/\/+$/, '');
      // Only nudge's own click links: they count the click, then redirect.
      if (item.url && typeof item.click === 'string' && item.click.startsWith('/v1/c/')) {
        li.append(el('a', { href: api + item.click, target: '_blank', rel: 'noopener noreferrer', part: 'link',
          'data-role': 'link' }, 'Open'));
      }
      const dismiss = el('button', { class: 'dismiss', type: 'button', part: 'dismiss', 'data-role': 'dismiss',
        'aria-label': `Dismiss: ${item.title || 'message'}` }, '\u00d7');
      dismiss.addEventListener('click', (e) => {
        e.stopPropagation();
        this.dismiss(item);
      });
      li.append(dismiss);
      return li;
    }

    toggle() { if (this.panel.hidden) this.open(); else this.close(); }

    open() {
      this.panel.hidden = false;
      this.bell.setAttribute('aria-expanded', 'true');
      this.markRead();
      const first = this.panel.querySelector('a, button');
      if (first) first.focus();
    }

    close() {
      this.panel.hidden = true;
      this.bell.setAttribute('aria-expanded', 'false');
    }

    /** Opening the panel reads what it shows. */
    markRead() {
      const now = new Date().toISOString();
      for (const item of this.items.filter((i) => !i.read_at)) {
        item.read_at = now;
        this.post(item, 'read');
      }
      this.render();
    }

    dismiss(item) {
      this.items = this.items.filter((i) => i.id !== item.id);
      this.render();
      this.post(item, 'dismiss');
      this.bell.focus();
    }

    post(item, action) {
      const url = this.url(`/${encodeURIComponent(item.id)}/${action}`);
      if (url) fetch(url, { method: 'POST', headers: this.headers() }).catch(() => {});
    }

    announce(text) {
      this.live.textContent = '';
      setTimeout(() => { this.live.textContent = text; }, 50);
    }
  }

  /** An element with attributes and text (as text, never HTML). */
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Reads a text/event-stream body, calling back with each event's name and data. */
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = 'message';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let nl;
      while ((nl = buffer.search(/\r?\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(buffer[nl] === '\r' ? nl + 2 : nl + 1);
        if (line === '') {
          if (data.length) onEvent(event, data.join('\n'));
          event = 'message';
          data = [];
        } else if (line.startsWith('event:')) {
          event = line.slice(6).trim();
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
      }
    }
  }

  customElements.define('nudge-inbox', NudgeInbox);
})();
