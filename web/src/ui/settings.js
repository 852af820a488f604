// Settings: profile, privacy, blocked users, devices, log out.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';

import { useAction } from './dialogs.js';

export function Settings({ client, close, onSignedOut }) {
  const [profile, setProfile] = useState(null);
  const [privacy, setPrivacy] = useState(null);
  const [devices, setDevices] = useState([]);
  const [blocked, setBlocked] = useState([]);
  const { error, busy, run } = useAction();
  const load = () =>
    run(async () => {
      setProfile(await client.api.get('/v1/profile'));
      setPrivacy(await client.api.get('/v1/privacy'));
      setDevices((await client.api.get('/v1/devices')).devices);
      setBlocked((await client.api.get('/v1/blocks')).blocked);
    });
  useEffect(() => {
    load();
  }, []);
  const saveProfile = (event) => {
    event.preventDefault();
    run(async () => {
      const saved = await client.api.put('/v1/profile', { display_name: profile.display_name, about: profile.about });
      setProfile(saved);
      client.profiles.set(client.me, saved);
      client.notice('Profile saved', 'info');
    });
  };
  const setting = (field, value) => run(async () => setPrivacy(await client.api.put('/v1/privacy', { [field]: value })));
  const unblock = (user) => run(async () => (await client.api.del(`/v1/blocks/${user}`), load()));
  const removeDevice = (device) => run(async () => (await client.api.del(`/v1/devices/${device}`), load()));
  const logout = () => run(async () => (await client.logout(), close(), onSignedOut()));
  if (!profile || !privacy) return html`<h2>Settings</h2><p>${error || 'Loading…'}</p>`;
  const choice = (field, label) => html`<label>${label}
    <select value=${privacy[field]} onChange=${(e) => setting(field, e.target.value)}>
      <option value="everyone">Everyone</option><option value="contacts">My contacts</option><option value="nobody">Nobody</option>
    </select></label>`;
  return html`<h2>Settings</h2>
    <form onSubmit=${saveProfile} data-testid="profile-form">
      <h3>Profile</h3>
      <label>Name <input name="display_name" maxlength="25" value=${profile.display_name || ''}
        onInput=${(e) => setProfile({ ...profile, display_name: e.target.value })} /></label>
      <label>About <input name="about" maxlength="139" value=${profile.about || ''}
        onInput=${(e) => setProfile({ ...profile, about: e.target.value })} /></label>
      <p class="muted">${client.phone} · user ${client.me}</p>
      <button type="submit" disabled=${busy}>Save</button>
    </form>
    <section><h3>Privacy</h3>
      ${choice('last_seen', 'Last seen and online')}${choice('photo', 'Profile photo')}${choice('about', 'About')}${choice('groups', 'Who can add me to groups')}
      <label class="check"><input type="checkbox" checked=${privacy.read_receipts} onChange=${(e) => setting('read_receipts', e.target.checked)} /> Read receipts</label>
    </section>
    <section><h3>Blocked</h3>
      ${blocked.length ? html`<ul>${blocked.map((user) => html`<li>${client.nameOf(user)} <button onClick=${() => unblock(user)}>Unblock</button></li>`)}</ul>` : html`<p class="muted">Nobody.</p>`}
    </section>
    <section data-testid="devices"><h3>Devices</h3>
      <ul>${devices.map((device) => html`<li>${device.name || 'Device'} ${device.current ? html`<strong>(this browser)</strong>` : html`<button onClick=${() => removeDevice(device.device_id)}>Remove</button>`}</li>`)}</ul>
    </section>
    <button class="danger" onClick=${logout} data-testid="logout">Log out</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}`;
}
