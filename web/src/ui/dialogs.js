// Dialogs: new chat (by phone number, or contact sync of a pasted list),
// forward, message info (delivered n/m, read by), security code; settings
// and group info live in their own modules.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';

import { securityCode, timeOfDay } from '../util.js';
import { GroupInfo, NewGroup } from './group.js';
import { Settings } from './settings.js';

export function Dialogs({ client, dialog, close, onSignedOut }) {
  const body = {
    'new-chat': () => html`<${NewChat} client=${client} close=${close} />`,
    'new-group': () => html`<${NewGroup} client=${client} close=${close} />`,
    'group-info': () => html`<${GroupInfo} client=${client} chat=${dialog.chat} close=${close} />`,
    settings: () => html`<${Settings} client=${client} close=${close} onSignedOut=${onSignedOut} />`,
    forward: () => html`<${Forward} client=${client} dialog=${dialog} close=${close} />`,
    'message-info': () => html`<${MessageInfo} client=${client} dialog=${dialog} />`,
    security: () => html`<${SecurityCode} client=${client} chat=${dialog.chat} />`,
  }[dialog.kind];
  useEffect(() => {
    const onKey = (event) => event.key === 'Escape' && close();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  return html`<div class="overlay" onClick=${(e) => e.target === e.currentTarget && close()}>
    <div class="dialog" role="dialog" aria-modal="true" data-testid=${'dialog-' + dialog.kind}>
      <button class="close" aria-label="Close" onClick=${close}>✕</button>
      ${body ? body() : null}
    </div>
  </div>`;
}

/** Runs an async action, showing its error in the dialog. */
export function useAction() {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const run = async (action) => {
    setBusy(true);
    setError('');
    try {
      return await action();
    } catch (e) {
      setError(e.message || String(e));
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run };
}

function NewChat({ client, close }) {
  const [numbers, setNumbers] = useState('');
  const [found, setFound] = useState(null);
  const { error, busy, run } = useAction();
  const search = (event) => {
    event.preventDefault();
    run(async () => {
      const list = numbers.split(/[\s,;]+/).map((n) => n.trim()).filter(Boolean);
      const users = await client.syncContacts(list);
      if (list.length === 1 && users.length === 1) return start(users[0].user);
      setFound({ users, asked: list.length });
    });
  };
  const start = async (user) => {
    const chat = await client.directChat(user);
    client.openChat(chat.id);
    close();
  };
  return html`<h2>New chat</h2>
    <form onSubmit=${search} data-testid="new-chat-form">
      <label>Phone numbers (one, or a pasted list: they are hashed in this browser)
        <textarea name="numbers" rows="3" placeholder="+14155550101" value=${numbers} onInput=${(e) => setNumbers(e.target.value)} required></textarea></label>
      <button type="submit" disabled=${busy}>Find on Missive</button>
    </form>
    ${found && html`<p>${found.users.length} of ${found.asked} numbers are on Missive.</p>
      <ul class="pick">${found.users.map(({ phone, user }) => html`<li><button onClick=${() => start(user)}>${client.nameOf(user)} · ${phone}</button></li>`)}</ul>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}`;
}

function Forward({ client, dialog, close }) {
  const [picked, setPicked] = useState([]);
  const chats = client.chatList().filter((chat) => !chat.left);
  const toggle = (chat) => setPicked(picked.includes(chat) ? picked.filter((c) => c !== chat) : [...picked, chat].slice(0, 5));
  return html`<h2>Forward to…</h2>
    <ul class="pick">${chats.map((chat) => html`<li><label><input type="checkbox" checked=${picked.includes(chat)}
      onChange=${() => toggle(chat)} /> ${client.chatName(chat)}</label></li>`)}</ul>
    <button disabled=${!picked.length} onClick=${() => (client.forward(dialog.message, dialog.chat, picked), close())}>Forward (${picked.length})</button>`;
}

function MessageInfo({ client, dialog }) {
  const [info, setInfo] = useState(null);
  const { error, run } = useAction();
  useEffect(() => {
    run(async () => setInfo(await client.api.get(`/v1/conversations/${dialog.chat.id}/messages/${dialog.message.id}/receipts`)));
  }, []);
  if (!info) return html`<h2>Message info</h2>${error ? html`<p class="error">${error}</p>` : html`<p>Loading…</p>`}`;
  const line = ({ user, at }) => html`<li>${client.nameOf(user)} <small>${timeOfDay(at)}</small></li>`;
  return html`<h2>Message info</h2>
    <p data-testid="delivered-count">Delivered ${info.delivered.length}/${info.recipients}</p>
    <ul>${info.delivered.map(line)}</ul>
    <p data-testid="read-count">Read by ${info.read.length}/${info.recipients}</p>
    <ul data-testid="read-by">${info.read.map(line)}</ul>`;
}

/** A 1:1 contact: the security code of the chat, and blocking. */
function SecurityCode({ client, chat }) {
  const [code, setCode] = useState(null);
  const { error, run } = useAction();
  useEffect(() => {
    run(async () => {
      const keysOf = async (user) => Object.values(await client.devicesOf(user, true)).map((identity) => identity.ed25519);
      setCode(await securityCode(client.me, await keysOf(client.me), chat.peer, await keysOf(chat.peer)));
    });
  }, []);
  const [blocked, setBlocked] = useState(null);
  useEffect(() => {
    client.api.get('/v1/blocks').then(({ blocked: list }) => setBlocked(list.includes(chat.peer)), () => {});
  }, []);
  const toggleBlock = () =>
    run(async () => {
      const answer = await client.api.call(blocked ? 'DELETE' : 'PUT', `/v1/blocks/${chat.peer}`);
      setBlocked(answer.blocked);
    });
  return html`<h2>${client.nameOf(chat.peer)}</h2>
    <h3>Security code</h3>
    <p>Compare these numbers with ${client.nameOf(chat.peer)}, in person or by a call. If they match, nobody stands between you: your messages are end-to-end encrypted.</p>
    ${code ? html`<p class="code" data-testid="code">${code}</p>` : html`<p>${error || 'Computing…'}</p>`}
    ${blocked !== null && html`<button class=${blocked ? '' : 'danger'} data-testid="block" onClick=${toggleBlock}>
      ${blocked ? `Unblock ${client.nameOf(chat.peer)}` : `Block ${client.nameOf(chat.peer)}`}</button>`}
    ${blocked && html`<p class="muted">Blocked: their messages, calls and typing do not reach you.</p>`}`;
}
