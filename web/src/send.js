// Sending: an ordered outbox of messages (kept in IndexedDB, so a send made
// offline or before a reload goes out once connected, in order, once: a
// resend keeps its client_msg_id), sealed for exactly the devices the
// server lists (device_mismatch answers are taken and the send repeated),
// and the operations on messages (edit, react, delete, forward), typing,
// groups, contacts and media.

import { Client } from './client.js';
import { kindOf, openMedia, sealMedia, thumbnail } from './media.js';
import { sha256Hex, uuid } from './util.js';

const MISMATCH_RETRIES = 3;
const TYPING_EVERY_MS = 3000;

Object.assign(Client.prototype, {
  /** Queues a message; it shows at once with a clock tick. */
  queue(chat, payload, extra = {}) {
    const item = { id: uuid(), conversationId: chat.id, to: this.targetOf(chat), payload, extra, at: Date.now() };
    this.outbox.push(item);
    this.insert(chat, {
      id: item.id,
      pending: true,
      mine: true,
      from: this.me,
      at: item.at,
      text: payload.text,
      attachment: payload.attachment || null,
      replyTo: extra.reply_to,
      forwarded: !!extra.forward_of,
      reactions: {},
      clientMsgId: item.id,
    });
    this.preview(chat, chat.messages.at(-1));
    this.save();
    this.changed();
    this.flushOutbox();
    return item;
  },

  targetOf(chat) {
    return chat.kind === 'direct' ? { user: chat.peer } : { group: chat.id };
  },

  sendText(chat, text, replyTo) {
    this.typing(chat, 'paused');
    return this.queue(chat, { text }, replyTo ? { reply_to: replyTo } : {});
  },

  /** Sends the outbox in order, one at a time, while connected. */
  async flushOutbox() {
    if (this.flushing || this.status !== 'online') return;
    this.flushing = true;
    try {
      while (this.outbox.length && this.status === 'online') {
        const item = this.outbox[0];
        let answer;
        try {
          answer = await this.transmit(item);
        } catch (error) {
          // Kept at the head of the queue: tried again on the next connection,
          // or after a growing pause if this one stays up (an `unavailable`).
          if (this.status === 'online') {
            this.notice(`Not sent yet: ${error.message}`);
            this.outboxPause = Math.min((this.outboxPause || 1000) * 2, 30_000);
            clearTimeout(this.outboxTimer);
            this.outboxTimer = setTimeout(() => this.flushOutbox(), this.outboxPause);
          }
          return;
        }
        this.outboxPause = 0;
        this.outbox.shift();
        this.settle(item, answer);
        this.save();
        this.changed();
      }
    } finally {
      this.flushing = false;
    }
  },

  settle(item, answer) {
    const chat = this.chats.get(item.conversationId);
    const message = chat?.messages.find((m) => m.clientMsgId === item.id);
    if (!message) return;
    if (answer.type === 'sent') {
      chat.messages = chat.messages.filter((m) => m !== message);
      const existing = chat.messages.find((m) => m.id === answer.message_id);
      Object.assign(existing || message, { id: answer.message_id, seq: answer.conv_seq, at: answer.at, pending: false });
      if (!existing) this.insert(chat, message);
      message.raw = { ...item.sealed, message_id: answer.message_id, conversation_id: answer.conversation_id, conv_seq: answer.conv_seq, from: this.me, sent_at: answer.at };
      this.preview(chat, existing || message);
    } else {
      Object.assign(message, { pending: false, failed: answer.message || answer.code });
      this.notice(`Not sent: ${answer.message || answer.code}`);
    }
  },

  /** One send: share the session key, seal, send; repeat after device_mismatch. */
  async transmit(item) {
    const chat = this.chats.get(item.conversationId);
    const members = await this.membersOf(chat, item.to);
    let devices = await this.deviceSet(members);
    for (let attempt = 0; attempt <= MISMATCH_RETRIES; attempt++) {
      await this.share(item.conversationId, devices);
      const encrypted = this.crypto.seal(item.conversationId, item.payload);
      item.sealed = { encrypted: { ...encrypted } };
      encrypted.devices = this.crypto.sharedWith(item.conversationId);
      await this.save();
      const answer = await this.request({ type: 'send', to: item.to, client_msg_id: item.id, encrypted, ...item.extra });
      if (answer.type === 'error' && ['unavailable', 'internal'].includes(answer.code)) throw new Error(answer.message);
      if (answer.code !== 'device_mismatch') return answer;
      for (const user of Object.keys(answer.missing || {})) {
        devices[user] = { ...(await this.devicesOf(user, true)) };
        if (user === this.me) delete devices[user][this.deviceId];
      }
      for (const [user, stale] of Object.entries(answer.stale || {})) {
        for (const device of stale) {
          delete devices[user]?.[device];
          delete this.devices.get(user)?.[device];
        }
      }
    }
    throw new Error('the devices of this chat kept changing; try again');
  },

  async membersOf(chat, to) {
    if (to.user) return [this.me, to.user];
    const group = await this.api.get(`/v1/groups/${to.group}`);
    chat.members = group.members;
    return group.members;
  },

  /** Every end-to-end device of the members but this one. */
  async deviceSet(members) {
    const set = {};
    for (const member of members) {
      set[member] = { ...(await this.devicesOf(member)) };
      if (member === this.me) delete set[member][this.deviceId];
    }
    return set;
  },

  /** Gives the conversation's session key to the devices not given it yet. */
  async share(conversationId, devices) {
    const { toShare } = this.crypto.prepare(conversationId, devices);
    if (!toShare.length) return;
    const messages = [];
    for (const [user, device] of toShare) {
      const identity = devices[user][device];
      if (!this.crypto.hasOlmSession(identity)) {
        const claimed = await this.api.post('/v1/keys/claim', { user_id: user, device_id: device });
        this.crypto.openOlmSession(user, device, identity, claimed.one_time_key);
      }
      messages.push(this.crypto.shareEntry(conversationId, user, device, identity));
    }
    await this.save();
    // Naming the conversation lets keys for a group reach members who blocked this user.
    const answer = await this.request({ type: 'share_keys', messages, conversation_id: conversationId });
    if (answer.type !== 'shared') throw new Error(answer.message || 'the keys could not be shared');
  },

  /** The `encrypted` body of an edit or reaction in a chat. */
  async sealFor(chat, payload) {
    const members = await this.membersOf(chat, this.targetOf(chat));
    await this.share(chat.id, await this.deviceSet(members));
    const sealed = this.crypto.seal(chat.id, payload);
    await this.save();
    return sealed;
  },

  async operate(frame) {
    const answer = await this.request(frame);
    if (answer.type === 'error') throw new Error(answer.message || answer.code);
    return answer;
  },

  async edit(chat, message, text) {
    const encrypted = await this.sealFor(chat, { text });
    await this.operate({ type: 'edit', conversation_id: chat.id, message_id: message.id, encrypted });
    Object.assign(message, { text, edited: true });
    this.changed();
  },

  async react(chat, message, emoji) {
    const body = emoji ? { encrypted: await this.sealFor(chat, { text: emoji }) } : { emoji: '' };
    await this.operate({ type: 'react', conversation_id: chat.id, message_id: message.id, ...body });
    if (emoji) message.reactions = { ...message.reactions, [this.me]: emoji };
    else {
      const { [this.me]: _mine, ...rest } = message.reactions;
      message.reactions = rest;
    }
    this.changed();
  },

  async remove(chat, message, scope) {
    await this.operate({ type: 'delete', conversation_id: chat.id, message_id: message.id, scope });
    if (scope === 'me') chat.messages = chat.messages.filter((m) => m !== message);
    else Object.assign(message, { deleted: true, text: '', attachment: null });
    this.changed();
  },

  /** Forwards an opened message: re-sealed for each chat, a send with `forward_of`. */
  forward(message, from, targets) {
    const payload = { text: message.text };
    if (message.attachment) payload.attachment = message.attachment;
    for (const chat of targets) {
      this.queue(chat, payload, { forward_of: { conversation_id: from.id, message_id: message.id } });
    }
  },

  /** A typing signal, at most one per 3 s while typing, within the server's allowance (3 at once, then 1 a second). */
  typing(chat, state) {
    const now = Date.now();
    if (state === 'typing' && chat.typingSentAt && now - chat.typingSentAt < TYPING_EVERY_MS) return;
    if (state === 'paused' && !chat.typingSentAt) return;
    this.typingTokens = Math.min(3, (this.typingTokens ?? 3) + (now - (this.typingAt || now)) / 1000);
    this.typingAt = now;
    if (this.typingTokens < 1) return; // the other side's indicator lapses by itself
    this.typingTokens -= 1;
    chat.typingSentAt = state === 'typing' ? now : 0;
    this.sendFrame({ type: 'typing', conversation_id: chat.id, state });
  },

  /** Seals a file, uploads it with progress, then sends it with its key inside the sealed body. */
  async sendFile(chat, file, caption, onProgress) {
    const plain = new Uint8Array(await file.arrayBuffer());
    const sealed = await sealMedia(plain);
    const slot = await this.api.post('/v1/media/uploads', {
      kind: 'document',
      content_type: 'application/octet-stream',
      size: sealed.bytes.length,
      sha256: sealed.secret.sha256,
    });
    await this.api.upload(slot, sealed.bytes, onProgress);
    await this.api.post(`/v1/media/uploads/${slot.media_id}/complete`, {});
    const attachment = {
      ...sealed.secret,
      media_id: slot.media_id,
      kind: kindOf(file.type || ''),
      content_type: file.type || 'application/octet-stream',
      size: plain.length,
      name: file.name,
    };
    const thumb = await thumbnail(file);
    if (thumb) attachment.thumbnail = thumb;
    this.mediaCache.set(slot.media_id, URL.createObjectURL(file));
    return this.queue(chat, { text: caption || '', attachment }, { media: { media_id: slot.media_id } });
  },

  /** A blob URL of an attachment's opened bytes (downloaded once). */
  async mediaUrl(attachment) {
    const cached = this.mediaCache.get(attachment.media_id);
    if (cached) return cached;
    const bytes = await openMedia(await this.api.download(attachment.media_id), attachment);
    const url = URL.createObjectURL(new Blob([bytes], { type: attachment.content_type }));
    this.mediaCache.set(attachment.media_id, url);
    return url;
  },

  // --- groups ---

  async createGroup(name, members) {
    const group = await this.api.post('/v1/groups', { name, members });
    const chat = this.ensureChat(group.conversation_id || group.id, {
      kind: 'group',
      name: group.name,
      members: group.members,
      admins: group.admins,
      lastAt: Date.now(),
      loaded: true,
      hasMore: false,
    });
    this.save();
    this.changed();
    return chat;
  },

  async groupCall(chat, method, path, body) {
    const group = await this.api.call(method, `/v1/groups/${chat.id}${path}`, body);
    Object.assign(chat, { name: group.name, icon: group.icon, members: group.members, admins: group.admins, settings: group.settings });
    this.changed();
    return group;
  },

  async setGroupIcon(chat, file) {
    const media = await this.uploadPlain(file, 'group_icon');
    return this.groupCall(chat, 'PATCH', '', { icon: media });
  },

  /** A plain upload (profile pictures and group icons, which the server makes thumbnails of). */
  async uploadPlain(file, purpose) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const slot = await this.api.post('/v1/media/uploads', {
      kind: 'image',
      content_type: file.type,
      size: bytes.length,
      sha256: await sha256Hex(bytes),
      purpose,
    });
    await this.api.upload(slot, bytes);
    await this.api.post(`/v1/media/uploads/${slot.media_id}/complete`, {});
    return slot.media_id;
  },

  async thumbnailUrl(mediaId) {
    const key = `thumb:${mediaId}`;
    if (this.mediaCache.has(key)) return this.mediaCache.get(key);
    let bytes;
    for (let attempt = 0; ; attempt++) {
      try {
        bytes = await this.api.download(`${mediaId}?size=150`);
        break;
      } catch (error) {
        // The server makes thumbnails a moment after the upload completes.
        if (error.code !== 'not_ready' || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    const url = URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' }));
    this.mediaCache.set(key, url);
    return url;
  },

  // --- contacts ---

  /** Finds which of these phone numbers are on Missive (hashed here; the server never sees them). */
  async syncContacts(numbers) {
    const byHash = new Map();
    for (const number of numbers) byHash.set(await sha256Hex(number), number);
    const { users } = await this.api.post('/v1/contacts/sync', { hashes: [...byHash.keys()] });
    this.contacts ||= {};
    const found = users.map(({ hash, user_id }) => {
      this.contacts[user_id] = byHash.get(hash);
      return { phone: byHash.get(hash), user: user_id };
    });
    this.changed();
    return found;
  },
});
