// The app shell: registration, or the chat list beside the open chat (one
// at a time on a phone-sized screen), a connection banner and dialogs.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';

import { ChatList } from './chatlist.js';
import { Conversation } from './conversation.js';
import { Dialogs } from './dialogs.js';
import { Register } from './register.js';

export function useClient(client) {
  const [, setVersion] = useState(0);
  useEffect(() => client.subscribe(setVersion), [client]);
}

export function App({ Olm, initial }) {
  const [client, setClient] = useState(initial);
  useEffect(() => client?.start(), [client]);
  if (!client) return html`<${Register} Olm=${Olm} onRegistered=${(c) => setClient(c)} />`;
  return html`<${Main} client=${client} onSignedOut=${() => setClient(null)} />`;
}

function Banner({ client }) {
  const text = {
    connecting: 'Connecting…',
    offline: 'You are offline. Messages you send go out when the connection is back.',
    reconnecting: 'Reconnecting…',
  }[client.status];
  const queued = client.outbox.length;
  if (!text) return null;
  return html`<div class="banner ${client.status}" role="status" data-testid="banner">
    ${text}${queued ? ` (${queued} waiting)` : ''}
  </div>`;
}

function Notices({ client }) {
  return html`<div class="notices" aria-live="polite">
    ${client.notices.map((n) => html`<div class="notice ${n.kind}" key=${n.id}>${n.text}</div>`)}
  </div>`;
}

function Main({ client, onSignedOut }) {
  useClient(client);
  const [dialog, setDialog] = useState(null);
  useEffect(() => {
    window.missive.client = client;
    window.missive.ready ||= performance.now();
  }, [client]);
  if (client.status === 'signed_out') {
    return html`<div class="signed-out" data-testid="signed-out">
      <h1>Signed out</h1>
      <p>${client.signedOutWhy}. This browser is no longer a device of your account.</p>
      <button onClick=${async () => (await client.forget(), onSignedOut())}>Register again</button>
    </div>`;
  }
  const chat = client.chats.get(client.openChatId);
  return html`<div class="app ${chat ? 'chat-open' : ''}">
    <${Banner} client=${client} />
    <aside class="sidebar"><${ChatList} client=${client} openDialog=${setDialog} /></aside>
    <main class="pane">
      ${chat
        ? html`<${Conversation} key=${chat.id} client=${client} chat=${chat} openDialog=${setDialog} />`
        : html`<div class="empty-pane"><h2>Missive for the web</h2><p>Messages are end-to-end encrypted: they are sealed in this browser, and the server relays only ciphertext.</p></div>`}
    </main>
    ${dialog && html`<${Dialogs} client=${client} dialog=${dialog} close=${() => setDialog(null)} onSignedOut=${onSignedOut} />`}
    <${Notices} client=${client} />
  </div>`;
}

