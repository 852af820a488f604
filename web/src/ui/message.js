// A message bubble: reply quote, forwarded label, text or attachment, time,
// ticks, reactions, and its actions.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';

import { bytesLabel, timeOfDay } from '../util.js';

const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
const EDIT_WINDOW_MS = 15 * 60 * 1000;
const DELETE_WINDOW_MS = 60 * 60 * 1000;

export function Message({ client, chat, message, onReply, onEdit, openDialog }) {
  const [menu, setMenu] = useState(false);
  if (message.system) {
    return html`<div class="system" data-id=${message.id}><span>${message.text}</span></div>`;
  }
  const mine = message.mine;
  const ticks = mine ? client.ticks(chat, message) : null;
  const quoted = message.replyTo && chat.messages.find((m) => m.id === message.replyTo);
  const act = (action) => async () => {
    setMenu(false);
    try {
      await action();
    } catch (error) {
      client.notice(error.message);
    }
  };
  const admin = chat.admins?.includes(client.me);
  const canEdit = mine && !message.deleted && !message.attachment && Date.now() - message.at < EDIT_WINDOW_MS;
  const canDeleteAll = !message.deleted && ((mine && Date.now() - message.at < DELETE_WINDOW_MS) || admin);
  const reactions = Object.entries(message.reactions || {});
  return html`<div class="row ${mine ? 'mine' : 'theirs'}" data-id=${message.id} data-testid="message" data-seq=${message.seq}>
    <div class="bubble ${message.deleted ? 'deleted' : ''}" tabindex="0"
      onKeyDown=${(e) => e.key === 'Enter' && e.target === e.currentTarget && setMenu(!menu)}>
      ${chat.kind === 'group' && !mine && html`<p class="sender">${client.nameOf(message.from)}</p>`}
      ${message.forwarded && html`<p class="forwarded">${message.manyTimes ? '⏩ Forwarded many times' : '↪ Forwarded'}</p>`}
      ${message.replyTo && html`<blockquote class="quote" data-testid="quote">
        <strong>${quoted ? client.nameOf(quoted.from) : ''}</strong>
        ${quoted ? quoted.text || (quoted.attachment ? '📎 ' + (quoted.attachment.name || 'Attachment') : '') : 'A message'}
      </blockquote>`}
      ${message.deleted
        ? html`<p class="text muted">🚫 ${mine ? 'You deleted this message' : 'This message was deleted'}</p>`
        : message.unreadable
          ? html`<p class="text muted" title=${message.unreadable}>🔒 Waiting for this message. This may take a while.</p>`
          : html`${message.attachment && html`<${Attachment} client=${client} attachment=${message.attachment} />`}
              ${message.text && html`<p class="text" data-testid="text">${message.text}</p>`}`}
      <p class="meta">
        ${message.plaintext && html`<span class="muted" title="sent without end-to-end encryption">unencrypted · </span>`}
        ${message.edited && !message.deleted && html`<span class="muted">edited · </span>`}
        <time>${message.at ? timeOfDay(message.at) : ''}</time>
        ${ticks && html`<span class="ticks ${ticks}" data-testid="ticks" data-ticks=${ticks} aria-label=${ticks}>
          ${{ pending: '🕓', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠' }[ticks]}</span>`}
      </p>
      ${!message.deleted && !message.pending && html`<button class="menu-button" aria-label="Message actions" aria-haspopup="menu"
        data-testid="message-menu" onClick=${() => setMenu(!menu)}>⌄</button>`}
      ${menu && html`<div class="menu" role="menu">
        <div class="reactions-pick">${QUICK_REACTIONS.map((emoji) => html`<button role="menuitem" aria-label="React ${emoji}"
          onClick=${act(() => client.react(chat, message, message.reactions?.[client.me] === emoji ? '' : emoji))}>${emoji}</button>`)}</div>
        <button role="menuitem" onClick=${act(onReply)}>Reply</button>
        ${!message.unreadable && html`<button role="menuitem" onClick=${act(() => openDialog({ kind: 'forward', chat, message }))}>Forward</button>`}
        ${canEdit && html`<button role="menuitem" onClick=${act(onEdit)}>Edit</button>`}
        ${mine && html`<button role="menuitem" onClick=${act(() => openDialog({ kind: 'message-info', chat, message }))}>Info</button>`}
        <button role="menuitem" onClick=${act(() => client.remove(chat, message, 'me'))}>Delete for me</button>
        ${canDeleteAll && html`<button role="menuitem" data-testid="delete-everyone" onClick=${act(() => client.remove(chat, message, 'everyone'))}>Delete for everyone</button>`}
      </div>`}
    </div>
    ${reactions.length > 0 && html`<div class="reactions" data-testid="reactions" title=${reactions.map(([u, e]) => `${client.nameOf(u)} ${e}`).join(', ')}>
      ${[...new Set(reactions.map(([, e]) => e))].join('')}${reactions.length > 1 ? ' ' + reactions.length : ''}</div>`}
  </div>`;
}

/** A picture that grew the chat while the reader was at the newest message keeps them there. */
function keepAtBottom(event) {
  const box = event.target.closest('.messages');
  if (box?.dataset.stuck === 'true') box.scrollTop = box.scrollHeight;
}

function Attachment({ client, attachment }) {
  const [url, setUrl] = useState(client.mediaCache.get(attachment.media_id) || null);
  const [error, setError] = useState(null);
  const image = attachment.kind === 'image';
  useEffect(() => {
    if (!image || url) return;
    client.mediaUrl(attachment).then(setUrl, (e) => setError(e.message));
  }, [attachment.media_id]);
  if (image) {
    const src = url || (attachment.thumbnail ? `data:image/jpeg;base64,${attachment.thumbnail}` : null);
    return html`<figure class="picture">
      ${src ? html`<img src=${src} alt=${attachment.name || 'picture'} data-testid="picture" data-full=${url ? 'true' : 'false'}
        class=${url ? '' : 'blurred'} onLoad=${keepAtBottom} />` : html`<div class="placeholder">🖼</div>`}
      ${error && html`<figcaption class="error">${error}</figcaption>`}
    </figure>`;
  }
  const download = async () => {
    try {
      const href = url || (await client.mediaUrl(attachment));
      setUrl(href);
      const link = document.createElement('a');
      link.href = href;
      link.download = attachment.name || 'file';
      link.click();
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<div class="file">
    <span class="file-icon">📄</span>
    <span class="file-name">${attachment.name || 'File'}<br /><small>${bytesLabel(attachment.size || 0)}</small></span>
    <button onClick=${download} aria-label="Download ${attachment.name || 'file'}">⬇</button>
    ${error && html`<p class="error">${error}</p>`}
  </div>`;
}
