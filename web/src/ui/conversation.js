// One chat: its header (presence, typing), the messages (paged from history
// as you scroll up, and windowed: at most WINDOW are in the page at once,
// however long the chat), and the composer (replies, files, typing).
import { html } from 'htm/preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';

import { dayLabel, lastSeenLabel } from '../util.js';
import { Avatar } from './avatar.js';
import { Composer } from './composer.js';
import { Message } from './message.js';

export const WINDOW = 120;
const STEP = 40;
const EDGE_PX = 300;

export function Conversation({ client, chat, openDialog }) {
  const list = useRef(null);
  const anchor = useRef(null);
  const [top, setTop] = useState(null); // id of the first rendered message; null: stuck to the newest
  const [replyTo, setReplyTo] = useState(null);
  const [editing, setEditing] = useState(null);
  const messages = chat.messages;
  let start = top === null ? -1 : messages.findIndex((m) => m.id === top);
  if (start < 0) start = Math.max(0, messages.length - WINDOW);
  const end = Math.min(messages.length, start + WINDOW);
  const shown = messages.slice(start, end);
  const stuck = end === messages.length;

  // Keep what the reader looks at in place when rows come or go above it.
  const remember = () => {
    const box = list.current;
    if (!box) return;
    const rows = box.querySelectorAll('[data-id]');
    for (const row of rows) {
      if (row.offsetTop + row.offsetHeight > box.scrollTop) {
        anchor.current = { id: row.dataset.id, offset: row.offsetTop - box.scrollTop, bottom: isAtBottom(box) };
        return;
      }
    }
    anchor.current = { bottom: true };
  };
  useLayoutEffect(() => {
    const box = list.current;
    if (!box) return;
    const saved = anchor.current;
    if (!saved || (saved.bottom && stuck)) {
      box.scrollTop = box.scrollHeight;
    } else if (saved.id) {
      const row = box.querySelector(`[data-id="${CSS.escape(saved.id)}"]`);
      if (row) box.scrollTop = row.offsetTop - saved.offset;
    }
  });

  const onScroll = async () => {
    const box = list.current;
    remember();
    if (box.scrollTop < EDGE_PX) {
      if (start > 0) return setTop(messages[Math.max(0, start - STEP)].id);
      if (chat.hasMore && !chat.loadingOlder) {
        const first = messages[0]?.id;
        await client.loadOlder(chat);
        const at = chat.messages.findIndex((m) => m.id === first);
        if (at > 0) setTop(chat.messages[Math.max(0, at - STEP)].id);
      }
    } else if (box.scrollHeight - box.scrollTop - box.clientHeight < EDGE_PX && !stuck) {
      const next = Math.min(start + STEP, Math.max(0, messages.length - WINDOW));
      setTop(next >= messages.length - WINDOW ? null : messages[next].id);
    }
  };

  const jumpToLatest = () => {
    anchor.current = { bottom: true };
    setTop(null);
  };

  return html`<section class="conversation" data-testid="conversation" aria-label=${client.chatName(chat)}
    onDragOver=${(e) => e.preventDefault()}>
    <${Header} client=${client} chat=${chat} openDialog=${openDialog} />
    ${chat.invited && html`<div class="invite" data-testid="invite">You were invited to this group.
      <button onClick=${() => client.groupCall(chat, 'POST', '/invite/accept', {}).then(() => (chat.invited = false))}>Join</button>
      <button onClick=${() => client.groupCall(chat, 'POST', '/invite/decline', {})}>Decline</button></div>`}
    <div class="messages" ref=${list} onScroll=${onScroll} data-testid="messages" role="log" aria-live="polite"
      data-stuck=${String(stuck && (!anchor.current || anchor.current.bottom))}>
      ${start === 0 && !chat.hasMore && html`<p class="history-start">🔒 Messages are end-to-end encrypted. No one outside this chat, not even Missive, can read them.</p>`}
      ${start === 0 && chat.hasMore && html`<p class="history-start">Loading earlier messages…</p>`}
      ${shown.map((message, i) => {
        const previous = i > 0 ? shown[i - 1] : messages[start - 1];
        const newDay = message.at && (!previous?.at || new Date(previous.at).toDateString() !== new Date(message.at).toDateString());
        return html`${newDay && html`<div class="day" key=${'day' + message.id}><span>${dayLabel(message.at)}</span></div>`}
          <${Message} key=${message.id} client=${client} chat=${chat} message=${message}
            onReply=${() => setReplyTo(message)} onEdit=${() => setEditing(message)} openDialog=${openDialog} />`;
      })}
    </div>
    ${!stuck && html`<button class="jump" onClick=${jumpToLatest} aria-label="Jump to the newest message">↓</button>`}
    ${chat.left
      ? html`<p class="left-note">You can't send messages to this group because you're no longer a member.</p>`
      : html`<${Composer} client=${client} chat=${chat} replyTo=${replyTo} clearReply=${() => setReplyTo(null)}
          editing=${editing} clearEditing=${() => setEditing(null)} beforeSend=${jumpToLatest} />`}
  </section>`;
}

function isAtBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
}

function Header({ client, chat, openDialog }) {
  const presence = chat.kind === 'direct' ? client.presence.get(chat.peer) : null;
  let subtitle = chat.kind === 'direct' ? lastSeenLabel(presence) : (chat.members || []).map((u) => client.nameOf(u)).join(', ');
  if (chat.typing) {
    const who = chat.kind === 'group' ? `${client.nameOf(chat.typing.from)} is ` : '';
    subtitle = `${who}${chat.typing.state === 'recording' ? 'recording audio…' : 'typing…'}`;
  }
  return html`<header class="bar conversation-bar">
    <button class="back" aria-label="Back to chats" onClick=${() => ((client.openChatId = null), client.changed())}>←</button>
    <${Avatar} client=${client} user=${chat.kind === 'direct' ? chat.peer : null} group=${chat.kind === 'group' ? chat : null} online=${presence?.online} />
    <div class="title">
      <h2 data-testid="chat-title">${client.chatName(chat)}</h2>
      <p class="subtitle" data-testid="chat-subtitle">${subtitle}</p>
    </div>
    <div class="bar-actions">
      ${chat.kind === 'direct'
        ? html`<button title="Contact info and security code" aria-label="Contact info" data-testid="security-code"
            onClick=${() => openDialog({ kind: 'security', chat })}>🔒</button>`
        : html`<button title="Group info" aria-label="Group info" data-testid="group-info"
            onClick=${() => openDialog({ kind: 'group-info', chat })}>ℹ️</button>`}
    </div>
  </header>`;
}
