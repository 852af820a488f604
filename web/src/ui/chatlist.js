// The chat list: newest first, the last message (opened here), unread
// counts, typing, online / last seen.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';

import { lastSeenLabel, timeOfDay } from '../util.js';
import { Avatar } from './avatar.js';

export function ChatList({ client, openDialog }) {
  const [filter, setFilter] = useState('');
  const chats = client.chatList().filter((chat) => client.chatName(chat).toLowerCase().includes(filter.toLowerCase()));
  return html`<div class="chat-list" data-testid="chat-list">
    <header class="bar">
      <button class="avatar-button" title="Settings" aria-label="Settings" onClick=${() => openDialog({ kind: 'settings' })}>
        <${Avatar} client=${client} user=${client.me} />
      </button>
      <div class="bar-actions">
        <button title="New chat" aria-label="New chat" data-testid="new-chat" onClick=${() => openDialog({ kind: 'new-chat' })}>✎</button>
        <button title="New group" aria-label="New group" data-testid="new-group" onClick=${() => openDialog({ kind: 'new-group' })}>👥</button>
      </div>
    </header>
    <input class="search" type="search" placeholder="Search chats" aria-label="Search chats" value=${filter}
      onInput=${(e) => setFilter(e.target.value)} />
    <ul role="list">
      ${chats.map((chat) => html`<${ChatRow} key=${chat.id} client=${client} chat=${chat} />`)}
    </ul>
    ${chats.length === 0 && html`<p class="hint">No chats yet. Start one with ✎.</p>`}
  </div>`;
}

function ChatRow({ client, chat }) {
  const name = client.chatName(chat);
  const open = client.openChatId === chat.id;
  const typing = chat.typing && `${chat.kind === 'group' ? client.nameOf(chat.typing.from) + ' is ' : ''}${chat.typing.state === 'recording' ? 'recording audio…' : 'typing…'}`;
  const presence = chat.kind === 'direct' ? client.presence.get(chat.peer) : null;
  const last = chat.last;
  const prefix = last && last.from === client.me ? 'You: ' : last && chat.kind === 'group' && last.from ? `${client.nameOf(last.from)}: ` : '';
  return html`<li>
    <button class="chat-row ${open ? 'open' : ''}" data-testid="chat-row" data-chat=${chat.id}
      onClick=${() => client.openChat(chat.id)} aria-current=${open ? 'true' : undefined}>
      <${Avatar} client=${client} user=${chat.kind === 'direct' ? chat.peer : null} group=${chat.kind === 'group' ? chat : null}
        online=${presence?.online} />
      <span class="chat-main">
        <span class="chat-top">
          <span class="chat-name">${name}</span>
          <span class="chat-time">${last?.at ? timeOfDay(last.at) : ''}</span>
        </span>
        <span class="chat-bottom">
          <span class="chat-preview ${typing ? 'typing' : ''}" data-testid="preview">${typing || (last ? prefix + (last.text || '') : lastSeenLabel(presence))}</span>
          ${chat.unread > 0 && html`<span class="unread" data-testid="unread" aria-label="${chat.unread} unread">${chat.unread}</span>`}
        </span>
      </span>
    </button>
  </li>`;
}
