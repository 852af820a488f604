// Groups: create one from your chats; its info (name, icon, members,
// admins), block from a 1:1 chat, leave.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';

import { useAction } from './dialogs.js';

function knownPeople(client) {
  const people = new Set([...client.chats.values()].filter((c) => c.kind === 'direct').map((c) => c.peer));
  for (const user of Object.keys(client.contacts || {})) people.add(user);
  people.delete(client.me);
  return [...people];
}

export function NewGroup({ client, close }) {
  const [name, setName] = useState('');
  const [members, setMembers] = useState([]);
  const { error, busy, run } = useAction();
  const toggle = (user) => setMembers(members.includes(user) ? members.filter((u) => u !== user) : [...members, user]);
  const create = (event) => {
    event.preventDefault();
    run(async () => {
      const chat = await client.createGroup(name.trim(), members);
      client.openChat(chat.id);
      close();
    });
  };
  return html`<h2>New group</h2>
    <form onSubmit=${create} data-testid="new-group-form">
      <label>Group name <input name="name" maxlength="100" value=${name} onInput=${(e) => setName(e.target.value)} required /></label>
      <fieldset><legend>Members</legend>
        ${knownPeople(client).map((user) => html`<label class="check"><input type="checkbox" data-user=${user} checked=${members.includes(user)}
          onChange=${() => toggle(user)} /> ${client.nameOf(user)}</label>`)}
      </fieldset>
      <button type="submit" disabled=${busy || !name.trim()}>Create</button>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}`;
}

export function GroupInfo({ client, chat, close }) {
  const [name, setName] = useState(chat.name || '');
  const { error, busy, run } = useAction();
  const admin = chat.admins?.includes(client.me);
  const call = (method, path, body) => run(() => client.groupCall(chat, method, path, body));
  const candidates = knownPeople(client).filter((user) => !chat.members?.includes(user));
  return html`<h2>Group info</h2>
    <form onSubmit=${(e) => (e.preventDefault(), call('PATCH', '', { name }))}>
      <label>Name <input value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <button type="submit" disabled=${busy}>Rename</button>
    </form>
    <label>Icon <input type="file" accept="image/png,image/jpeg,image/webp,image/gif"
      onChange=${(e) => e.target.files[0] && run(() => client.setGroupIcon(chat, e.target.files[0]))} /></label>
    <h3>${chat.members?.length || 0} members</h3>
    <ul data-testid="members">${(chat.members || []).map((user) => html`<li>
      ${client.nameOf(user)} ${chat.admins?.includes(user) && html`<small class="badge">admin</small>`}
      ${admin && user !== client.me && html`
        <button onClick=${() => call(chat.admins.includes(user) ? 'DELETE' : 'PUT', `/admins/${user}`)}>${chat.admins.includes(user) ? 'Dismiss as admin' : 'Make admin'}</button>
        <button onClick=${() => call('DELETE', `/members/${user}`)}>Remove</button>`}
    </li>`)}</ul>
    ${admin && candidates.length > 0 && html`<h3>Add</h3><ul>${candidates.map((user) => html`<li>${client.nameOf(user)}
      <button onClick=${() => call('POST', '/members', { users: [user] })}>Add</button></li>`)}</ul>`}
    ${!chat.left && html`<button class="danger" onClick=${() => run(async () => (await client.groupCall(chat, 'POST', '/leave', {}), (chat.left = true), close()))}>Leave group</button>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}`;
}
