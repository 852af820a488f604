// The device engine: one signed-in browser device. It keeps the account's
// tokens and Olm/Megolm state in IndexedDB, holds one WebSocket to its
// gateway (resuming its feed by epoch and seq, reconnecting with backoff),
// handles feed entries in order and acks them, and keeps the chats the UI
// shows. Sending lives in send.js, chat loading in chats.js.

import { Api } from './api.js';
import { Crypto } from './crypto.js';
import * as db from './db.js';

export const KEY_BATCH = 50;
const PING_EVERY_MS = 25_000;
const ANSWER_WAIT_MS = 20_000;

export class Client {
  constructor(Olm, saved) {
    this.Olm = Olm;
    this.me = saved.user_id;
    this.deviceId = saved.device_id;
    this.phone = saved.phone;
    this.api = new Api(saved.base, saved.tokens, () => this.saveSoon());
    this.crypto = Crypto.fromJSON(Olm, saved.crypto);
    this.epoch = saved.epoch || null;
    this.seq = saved.seq || 0;
    this.chats = new Map(Object.entries(saved.chats || {}).map(([id, chat]) => [id, freshChat(chat)]));
    this.outbox = saved.outbox || [];
    this.status = 'connecting';
    this.presence = new Map();
    this.profiles = new Map();
    this.devices = new Map(); // user -> {device: identity}
    this.waiting = new Map(); // req -> {resolve, reject, timer}
    this.listeners = new Set();
    this.feed = Promise.resolve();
    this.openChatId = null;
    this.notices = [];
    this.ws = null;
    this.backoff = 500;
    this.reqCounter = 0;
    this.stopped = false;
    this.mediaCache = new Map();
    this.contacts = saved.contacts || {};
  }

  /** The device saved in this browser, or null. */
  static async load(Olm) {
    const saved = await db.get('device');
    return saved ? new Client(Olm, saved) : null;
  }

  /** Registers this browser as a device of the phone's account and publishes its keys. */
  static async register(Olm, { phone, code, deviceName, pin }) {
    const api = new Api(null, null);
    const body = { phone, code, device_name: deviceName };
    if (pin) body.pin = pin;
    const answer = await api.raw('POST', '/v1/auth/verify', body);
    const crypto = Crypto.create(Olm, answer.user_id, answer.device_id);
    api.setTokens(answer);
    await api.raw('PUT', '/v1/keys', crypto.uploadBody(KEY_BATCH), api.tokens.access_token);
    const saved = {
      user_id: answer.user_id,
      device_id: answer.device_id,
      phone,
      base: api.base,
      tokens: api.tokens,
      crypto: crypto.toJSON(),
    };
    await db.put('device', saved);
    return new Client(Olm, saved);
  }

  static requestCode(phone) {
    return new Api(null, null).raw('POST', '/v1/auth/otp', { phone });
  }

  // --- state for the UI ---

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    if (this.emitting) return;
    this.emitting = true;
    queueMicrotask(() => {
      this.emitting = false;
      this.version = (this.version || 0) + 1;
      const unread = [...this.chats.values()].reduce((sum, chat) => sum + (chat.unread || 0), 0);
      document.title = unread ? `(${unread}) Missive` : 'Missive';
      for (const listener of this.listeners) listener(this.version);
    });
  }

  notice(text, kind = 'error') {
    const notice = { id: ++this.reqCounter, text, kind };
    this.notices = [...this.notices.slice(-2), notice];
    setTimeout(() => {
      this.notices = this.notices.filter((n) => n !== notice);
      this.changed();
    }, kind === 'error' ? 6000 : 2500);
    this.changed();
  }

  snapshot() {
    return {
      user_id: this.me,
      device_id: this.deviceId,
      phone: this.phone,
      base: this.api.base,
      tokens: this.api.tokens,
      crypto: this.crypto.toJSON(),
      epoch: this.epoch,
      seq: this.seq,
      chats: Object.fromEntries([...this.chats].map(([id, chat]) => [id, storedChat(chat)])),
      outbox: this.outbox,
      contacts: this.contacts,
    };
  }

  save() {
    return db.put('device', this.snapshot());
  }

  saveSoon() {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, 50);
  }

  // --- the connection ---

  start() {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    this.connect();
    window.addEventListener('online', () => {
      this.backoff = 500;
      if (!this.ws) this.connect();
    });
    // The network went away: say so now rather than when a ping goes unanswered.
    window.addEventListener('offline', () => this.drop());
    document.addEventListener('visibilitychange', () => this.markOpenChatRead());
    this.refreshChats().catch((error) => this.notice(error.message));
    this.api.get('/v1/profile').then((profile) => (this.profiles.set(this.me, profile), this.changed()), () => {});
  }

  async connect() {
    if (this.stopped || this.ws) return;
    this.setStatus(this.status === 'online' ? 'reconnecting' : this.status);
    try {
      await this.api.fresh();
    } catch (error) {
      if (error.status === 401) return this.signedOut(error);
      return this.retryLater();
    }
    const ws = new WebSocket(this.api.wsUrl());
    this.ws = ws;
    ws.onopen = () => {
      const hello = { type: 'hello', token: this.api.tokens.access_token };
      if (this.epoch) hello.resume = { epoch: this.epoch, seq: this.seq };
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      this.heardAt = Date.now();
      this.onFrame(JSON.parse(event.data));
    };
    ws.onclose = () => this.onClose(ws);
    ws.onerror = () => {};
  }

  /** Refreshes the token a minute before it expires and hands the fresh one to the open session. */
  scheduleReauth() {
    clearTimeout(this.reauthTimer);
    const due = Math.max(5_000, this.api.tokens.expires_at - Date.now() - 60_000);
    this.reauthTimer = setTimeout(async () => {
      try {
        await this.api.refresh();
        this.sendFrame({ type: 'reauth', token: this.api.tokens.access_token });
        this.scheduleReauth();
      } catch (error) {
        if (error.status === 401) this.signedOut(error);
      }
    }, due);
  }

  setStatus(status) {
    this.status = status;
    this.changed();
  }

  /** Gives up on the current connection (it reconnects with backoff). */
  drop() {
    const ws = this.ws;
    ws?.close();
    if (ws) this.onClose(ws);
  }

  onClose(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearInterval(this.pinger);
    for (const [, waiter] of this.waiting) waiter.reject(new Error('the connection closed'));
    this.waiting.clear();
    if (this.stopped) return;
    this.setStatus('offline');
    this.retryLater();
  }

  retryLater() {
    clearTimeout(this.retryTimer);
    if (!navigator.onLine) return; // the 'online' event reconnects
    this.retryTimer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 8000);
    // A gateway that no longer serves us refuses the upgrade; a refresh finds the one that does.
    if (this.backoff >= 4000) this.api.refresh().catch((error) => error.status === 401 && this.signedOut(error));
  }

  async onWelcome(frame) {
    const resumed = this.epoch !== null;
    const gap = resumed && (!frame.recovered || frame.epoch !== this.epoch);
    this.epoch = frame.epoch;
    this.backoff = 500;
    this.setStatus('online');
    this.heardAt = Date.now();
    this.pinger = setInterval(() => {
      // A connection that answered nothing, not even the last ping, is dead.
      if (Date.now() - this.heardAt > PING_EVERY_MS * 2) return this.drop();
      this.sendFrame({ type: 'ping' });
    }, PING_EVERY_MS);
    this.scheduleReauth();
    this.saveSoon();
    if (gap) await this.resync();
    this.subscribePresence();
    this.flushOutbox();
  }

  sendFrame(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a fresh `req` and waits for the frame answering it. */
  request(frame) {
    const req = `w${++this.reqCounter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(req);
        reject(new Error('the server did not answer in time'));
      }, ANSWER_WAIT_MS);
      this.waiting.set(req, {
        resolve: (answer) => (clearTimeout(timer), resolve(answer)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      if (!this.sendFrame({ ...frame, req })) {
        this.waiting.get(req).reject(new Error('offline'));
        this.waiting.delete(req);
      }
    });
  }

  onFrame(frame) {
    if (frame.req && this.waiting.has(frame.req)) {
      const waiter = this.waiting.get(frame.req);
      this.waiting.delete(frame.req);
      return waiter.resolve(frame);
    }
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame);
      case 'event':
        this.feed = this.feed.then(() => this.onEvent(frame)).catch((error) => console.error('feed entry', error));
        return;
      case 'typing':
        return this.onTyping(frame);
      case 'presence':
        this.presence.set(frame.user, frame);
        return this.changed();
      case 'error':
        return this.onError(frame);
      default:
        return;
    }
  }

  onError(frame) {
    if (['unauthorized', 'device_removed'].includes(frame.code)) return this.signedOut(frame);
    if (['session_replaced', 'idle_timeout', 'token_expired', 'unavailable', 'internal', 'wrong_gateway'].includes(frame.code)) return;
    // An error without `req` answers a background frame (typing, read): a
    // typing signal past the allowance or in a chat not started yet. Nothing
    // the person did failed.
    if (!frame.req) return console.debug('background frame refused', frame.code);
    this.notice(frame.message || frame.code);
  }

  async signedOut(why) {
    this.stopped = true;
    clearTimeout(this.reauthTimer);
    this.ws?.close();
    this.status = 'signed_out';
    this.signedOutWhy = why?.message || why?.code || 'signed out';
    this.changed();
  }

  ack(seq) {
    if (seq <= this.seq) return;
    this.seq = seq;
    if (!this.ackQueued) {
      this.ackQueued = true;
      queueMicrotask(() => {
        this.ackQueued = false;
        this.sendFrame({ type: 'ack', seq: this.seq });
        this.saveSoon();
      });
    }
  }

  async onEvent(frame) {
    const entry = frame.event;
    if (frame.seq <= this.seq) return;
    try {
      await this.handleEntry(entry);
    } catch (error) {
      console.error('handling', entry.kind, error);
    }
    this.ack(frame.seq);
    this.changed();
  }

  async handleEntry(entry) {
    const mine = entry.device_id === this.deviceId;
    switch (entry.kind) {
      case 'message':
        return this.receiveMessage(entry);
      case 'receipt':
        return this.receiveReceipt(entry);
      case 'modified':
        return this.receiveModified(entry);
      case 'group':
        return this.receiveGroupChange(entry);
      case 'to_device':
        if (mine && entry.body) await this.receiveKey(entry);
        return;
      case 'devices_changed':
        this.devices.delete(entry.user);
        return this.systemLine(entry.conversation_id, `${this.nameOf(entry.user)}'s security code changed`);
      case 'keys_low':
        if (mine) await this.api.put('/v1/keys', this.crypto.uploadBody(KEY_BATCH));
        return this.saveSoon();
      default:
        return;
    }
  }

  async receiveKey(entry) {
    const identity = await this.identityOf(entry.from, entry.from_device);
    const conversationId = this.crypto.receiveToDevice(entry, identity);
    this.retryUnreadable(conversationId);
    this.saveSoon();
  }

  /** End-to-end devices of a user (those with identity keys), cached until they change. */
  async devicesOf(user, fresh = false) {
    if (!fresh && this.devices.has(user)) return this.devices.get(user);
    const answer = await this.api.get(`/v1/users/${user}/devices`);
    const devices = {};
    for (const device of answer.devices) if (device.identity_keys) devices[device.device_id] = device.identity_keys;
    this.devices.set(user, devices);
    return devices;
  }

  async identityOf(user, device) {
    const known = this.devices.get(user)?.[device];
    if (known) return known;
    const fetched = (await this.devicesOf(user, true))[device];
    if (!fetched) throw new Error(`device ${device} of ${user} has no keys`);
    return fetched;
  }

  onTyping(frame) {
    const chat = this.chats.get(frame.conversation_id);
    if (!chat) return;
    chat.typing = frame.state === 'paused' ? null : { from: frame.from, state: frame.state, until: frame.expires_at };
    clearTimeout(chat.typingTimer);
    if (chat.typing) {
      chat.typingTimer = setTimeout(() => {
        chat.typing = null;
        this.changed();
      }, Math.max(0, frame.expires_at - Date.now()));
    }
    this.changed();
  }

  subscribePresence() {
    const users = [...new Set([...this.chats.values()].filter((c) => c.kind === 'direct').map((c) => c.peer))];
    if (users.length) this.sendFrame({ type: 'subscribe_presence', users });
  }

  async logout() {
    this.stopped = true;
    try {
      await this.api.post('/v1/auth/logout', {});
    } finally {
      this.ws?.close();
      await db.clear();
    }
  }

  async forget() {
    this.stopped = true;
    this.ws?.close();
    await db.clear();
  }
}

/** A chat as kept in memory: stored fields plus the loaded messages. */
function freshChat(stored) {
  return { ...stored, messages: [], loaded: false, hasMore: true, typing: null };
}

/** What of a chat survives a reload (messages come back from history). */
function storedChat(chat) {
  const { id, kind, peer, name, icon, members, admins, left, invited, last, unread, receipts, lastAt } = chat;
  return { id, kind, peer, name, icon, members, admins, left, invited, last, unread, receipts, lastAt };
}
