// Chats: the list (newest first, previews decrypted here), each chat's
// loaded messages, paged from history, and what feed entries change in
// them (messages, receipts, edits, reactions, deletes, group changes).

import { Client } from './client.js';
import { directConversation } from './util.js';

export const PAGE = 50;

Object.assign(Client.prototype, {
  chatList() {
    return [...this.chats.values()].sort((a, b) => (b.lastAt || 0) - (a.lastAt || 0));
  },

  ensureChat(id, fields = {}) {
    let chat = this.chats.get(id);
    if (!chat) {
      chat = { id, kind: 'group', messages: [], loaded: false, hasMore: true, unread: 0, receipts: {}, lastAt: 0, typing: null };
      this.chats.set(id, chat);
    }
    Object.assign(chat, fields);
    return chat;
  },

  /** The chat with a user (created locally until its first message). */
  async directChat(user) {
    const id = await directConversation(this.me, user);
    const chat = this.ensureChat(id, { kind: 'direct', peer: user });
    this.loadProfile(user);
    this.subscribePresence();
    return chat;
  },

  nameOf(user) {
    if (user === this.me) return 'You';
    const profile = this.profiles.get(user);
    if (profile?.display_name) return profile.display_name;
    const phone = this.contacts?.[user];
    return phone || `User ${user.slice(-4)}`;
  },

  chatName(chat) {
    if (chat.kind === 'direct') return this.nameOf(chat.peer);
    return chat.name || 'Group';
  },

  async loadProfile(user) {
    if (this.profiles.has(user) || user === this.me) return;
    this.profiles.set(user, {});
    try {
      this.profiles.set(user, await this.api.get(`/v1/users/${user}/profile`));
      this.changed();
    } catch {
      this.profiles.delete(user);
    }
  },

  /** Opens a body: the sealed payload, or the plaintext of a server that allows it. */
  openBody(conversationId, entry) {
    if (entry.encrypted) return this.crypto.open(conversationId, entry.encrypted).payload;
    return { text: entry.content ?? entry.emoji ?? '', plaintext: true };
  },

  toMessage(entry) {
    const message = {
      id: entry.message_id,
      seq: entry.conv_seq,
      from: entry.from,
      at: entry.sent_at,
      mine: entry.from === this.me,
      replyTo: entry.reply_to,
      forwarded: !!entry.forwarded,
      manyTimes: !!entry.forwarded_many_times,
      deleted: !!entry.deleted,
      edited: !!entry.edited_at,
      reactions: {},
      raw: entry,
    };
    this.openInto(message, entry.conversation_id);
    for (const [user, reaction] of Object.entries(entry.reactions || {})) {
      try {
        const emoji = typeof reaction === 'string' ? reaction : this.crypto.open(entry.conversation_id, reaction).payload.text;
        if (emoji) message.reactions[user] = emoji;
      } catch {
        // a reaction this device holds no key for is left out
      }
    }
    return message;
  },

  openInto(message, conversationId) {
    if (message.deleted) return Object.assign(message, { text: '', attachment: null, unreadable: null });
    try {
      const payload = this.openBody(conversationId, message.raw);
      Object.assign(message, { text: payload.text || '', attachment: payload.attachment || null, unreadable: null, plaintext: !!payload.plaintext });
    } catch (error) {
      message.unreadable = error.message;
    }
  },

  preview(chat, message) {
    if (!message) return;
    chat.last = {
      from: message.from,
      text: message.deleted ? '🚫 This message was deleted' : message.unreadable ? '🔒 Waiting for this message' : message.attachment ? `📎 ${message.text || message.attachment.name || 'Attachment'}` : message.text,
      at: message.at,
      seq: message.seq,
      id: message.id,
    };
    chat.lastAt = Math.max(chat.lastAt || 0, message.at || 0);
  },

  async receiveMessage(entry) {
    const chat = this.chats.get(entry.conversation_id) || (await this.chatFor(entry));
    const message = this.toMessage(entry);
    this.insert(chat, message);
    this.preview(chat, message);
    if (!message.mine) {
      chat.unread = (chat.unread || 0) + 1;
      this.markOpenChatRead();
    }
  },

  /** The chat a message that starts one belongs to. */
  async chatFor(entry) {
    const peerOf = entry.from === this.me ? null : entry.from;
    if (peerOf && (await directConversation(this.me, peerOf)) === entry.conversation_id) return this.directChat(peerOf);
    const chat = this.ensureChat(entry.conversation_id, { kind: 'group' });
    this.loadGroup(chat);
    return chat;
  },

  insert(chat, message) {
    const list = chat.messages;
    const at = list.findIndex((m) => m.id === message.id);
    if (at >= 0) return Object.assign(list[at], message, { pending: false });
    let i = list.length;
    while (i > 0 && (list[i - 1].seq === undefined || list[i - 1].seq > message.seq)) i--;
    list.splice(i, 0, message);
  },

  receiveReceipt(entry) {
    const chat = this.chats.get(entry.conversation_id);
    if (!chat) return;
    chat.receipts ||= {};
    if (entry.count >= entry.of) {
      chat.receipts[entry.status] = Math.max(chat.receipts[entry.status] || 0, entry.up_to);
    }
    const target = chat.messages.find((m) => m.id === entry.message_id);
    if (target) (target.counts ||= {})[entry.status] = { count: entry.count, of: entry.of };
    this.saveSoon();
  },

  /** sent, delivered or read: a message of mine as its ticks show it. */
  ticks(chat, message) {
    if (message.failed) return 'failed';
    if (message.pending || message.seq === undefined) return 'pending';
    if ((chat.receipts?.read || 0) >= message.seq) return 'read';
    if ((chat.receipts?.delivered || 0) >= message.seq) return 'delivered';
    return 'sent';
  },

  receiveModified(entry) {
    const chat = this.chats.get(entry.conversation_id);
    if (!chat) return;
    const target = chat.messages.find((m) => m.id === entry.message_id);
    switch (entry.operation) {
      case 'edit':
        if (target) {
          target.raw = { ...target.raw, encrypted: entry.encrypted, content: entry.content };
          this.openInto(target, entry.conversation_id);
          target.edited = true;
        }
        break;
      case 'react': {
        if (!target) break;
        let emoji = entry.emoji || '';
        if (entry.encrypted) {
          try {
            emoji = this.crypto.open(entry.conversation_id, entry.encrypted).payload.text || '';
          } catch {
            emoji = '';
          }
        }
        if (emoji) target.reactions = { ...target.reactions, [entry.by]: emoji };
        else {
          const { [entry.by]: _gone, ...rest } = target.reactions;
          target.reactions = rest;
        }
        break;
      }
      case 'delete_for_everyone':
        if (target) Object.assign(target, { deleted: true, text: '', attachment: null });
        if (chat.last?.id === entry.message_id) chat.last.text = '🚫 This message was deleted';
        break;
      case 'delete_for_me':
        chat.messages = chat.messages.filter((m) => m.id !== entry.message_id);
        break;
      default:
    }
  },

  receiveGroupChange(entry) {
    const chat = this.ensureChat(entry.conversation_id, {
      kind: 'group',
      name: entry.name,
      icon: entry.icon,
      members: entry.members,
      admins: entry.admins,
      settings: entry.settings,
    });
    const subjects = entry.subjects || [];
    if (entry.change === 'invited' && subjects.includes(this.me) && !entry.members.includes(this.me)) chat.invited = true;
    if (['member_removed', 'member_left'].includes(entry.change) && subjects.includes(this.me)) chat.left = true;
    if (['joined', 'members_added', 'created'].includes(entry.change) && entry.members.includes(this.me)) {
      chat.left = false;
      chat.invited = false;
    }
    chat.lastAt = Math.max(chat.lastAt || 0, entry.at);
    for (const user of entry.members) this.loadProfile(user);
    const who = this.nameOf(entry.by);
    const names = subjects.map((user) => this.nameOf(user)).join(', ');
    const lines = {
      created: `${who} created group "${entry.name}"`,
      members_added: `${who} added ${names}`,
      member_removed: `${who} removed ${names}`,
      member_left: `${names || who} left`,
      admins_changed: `${who} changed the admins`,
      info_updated: `${who} changed the group info`,
      settings_updated: `${who} changed the group settings`,
      invited: `${who} invited ${names}`,
      joined: `${names || who} joined`,
      invite_declined: `${names || who} declined the invite`,
    };
    this.systemLine(entry.conversation_id, lines[entry.change] || entry.change, entry.conv_seq, entry.at);
    if (!chat.last) chat.last = { text: lines[entry.change], at: entry.at };
  },

  systemLine(conversationId, text, seq, at = Date.now()) {
    const chat = this.chats.get(conversationId);
    if (!chat) return;
    const id = `sys-${seq ?? at}-${text}`;
    if (chat.messages.some((m) => m.id === id)) return;
    this.insert(chat, { id, seq: seq ?? chat.messages.at(-1)?.seq ?? 0, system: true, text, at, reactions: {} });
  },

  async loadGroup(chat) {
    try {
      const group = await this.api.get(`/v1/groups/${chat.id}`);
      Object.assign(chat, { kind: 'group', name: group.name, icon: group.icon, members: group.members, admins: group.admins, settings: group.settings });
      for (const user of group.members) this.loadProfile(user);
      this.changed();
    } catch (error) {
      if (error.status === 404) chat.left = true;
    }
  },

  /** The conversation list from the server, merged with the chats known here. */
  async refreshChats() {
    const { conversations } = await this.api.get('/v1/conversations');
    for (const summary of conversations) {
      const direct = (await directConversation(this.me, summary.peer)) === summary.conversation_id && summary.peer !== this.me;
      const chat = direct
        ? await this.directChat(summary.peer)
        : this.ensureChat(summary.conversation_id, { kind: 'group' });
      if (!direct && !chat.members) this.loadGroup(chat);
      chat.unread = summary.unread;
      if (summary.last_message) this.preview(chat, this.toMessage(summary.last_message));
    }
    this.changed();
  },

  /** After a gap in the feed: the list again, and the open chat's newest page (the scroll position is kept by the view). */
  async resync() {
    await this.refreshChats();
    const chat = this.chats.get(this.openChatId);
    if (chat) {
      const newest = await this.page(chat, null);
      for (const message of newest) this.insert(chat, message);
    }
    this.changed();
  },

  async page(chat, before) {
    const query = before ? `?before=${before}&limit=${PAGE}` : `?limit=${PAGE}`;
    let messages;
    try {
      ({ messages } = await this.api.get(`/v1/conversations/${chat.id}/messages${query}`));
    } catch (error) {
      // A chat opened here before its first message is not on the server yet.
      if (error.status !== 404) throw error;
      messages = [];
    }
    return messages.reverse().map((entry) => this.toMessage(entry));
  },

  /** Loads the page before the oldest loaded message; false when history is exhausted. */
  async loadOlder(chat) {
    if (!chat.hasMore || chat.loadingOlder) return false;
    chat.loadingOlder = true;
    try {
      const oldest = chat.messages.find((m) => m.seq !== undefined && !m.system)?.seq;
      const older = await this.page(chat, chat.loaded ? oldest : null);
      for (const message of older) this.insert(chat, message);
      chat.hasMore = older.length === PAGE;
      chat.loaded = true;
      if (!chat.last && older.length) this.preview(chat, older.at(-1));
      this.changed();
      return older.length > 0;
    } finally {
      chat.loadingOlder = false;
    }
  },

  async openChat(id) {
    this.openChatId = id;
    const chat = this.chats.get(id);
    this.changed();
    if (!chat) return;
    if (chat.kind === 'group' && !chat.members) await this.loadGroup(chat);
    if (!chat.loaded) await this.loadOlder(chat).catch((error) => this.notice(error.message));
    this.markOpenChatRead();
  },

  markOpenChatRead() {
    const chat = this.chats.get(this.openChatId);
    if (!chat || document.visibilityState !== 'visible') return;
    const newest = chat.messages.filter((m) => !m.mine && !m.system && m.seq !== undefined).at(-1)?.seq || 0;
    if (!newest || newest <= (chat.readUpTo || 0)) return;
    if (this.sendFrame({ type: 'read', conversation_id: chat.id, up_to: newest })) {
      chat.readUpTo = newest;
      chat.unread = 0;
      this.changed();
    }
  },

  /** Tries again to open messages whose key arrived later. */
  retryUnreadable(conversationId) {
    const chat = this.chats.get(conversationId);
    for (const message of chat?.messages || []) if (message.unreadable) this.openInto(message, conversationId);
  },
});
