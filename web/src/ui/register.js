// Registration: a phone number, the code it received, a name for this device.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';

import { Client } from '../client.js';

export function Register({ Olm, onRegistered }) {
  const [phone, setPhone] = useState('');
  const [code, setCode] = useState('');
  const [deviceName, setDeviceName] = useState(defaultDeviceName());
  const [pin, setPin] = useState(null); // asked for once the server says the account has one
  const [step, setStep] = useState('phone');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const run = (action) => async (event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      await action();
    } catch (e) {
      setError(explain(e));
    } finally {
      setBusy(false);
    }
  };
  const requestCode = run(async () => {
    await Client.requestCode(phone.trim());
    setStep('code');
  });
  const verify = run(async () => {
    try {
      const client = await Client.register(Olm, { phone: phone.trim(), code: code.trim(), deviceName, pin });
      onRegistered(client);
    } catch (error) {
      if (error.code === 'pin_required') setPin('');
      throw error;
    }
  });

  return html`<div class="register">
    <h1>Missive</h1>
    <p class="lead">Private messaging, end-to-end encrypted.</p>
    ${step === 'phone'
      ? html`<form onSubmit=${requestCode} data-testid="phone-form">
          <label>Your phone number <input type="tel" name="phone" placeholder="+14155550100" value=${phone}
            onInput=${(e) => setPhone(e.target.value)} required autofocus autocomplete="tel" /></label>
          <button type="submit" disabled=${busy}>Send me a code</button>
        </form>`
      : html`<form onSubmit=${verify} data-testid="code-form">
          <p>We sent a 6-digit code to ${phone}.</p>
          <label>Code <input name="code" inputmode="numeric" pattern="[0-9]{6}" value=${code}
            onInput=${(e) => setCode(e.target.value)} required autofocus autocomplete="one-time-code" /></label>
          <label>Name this device <input name="device" value=${deviceName} maxlength="64"
            onInput=${(e) => setDeviceName(e.target.value)} /></label>
          ${pin !== null && html`<label>Your PIN <input name="pin" type="password" inputmode="numeric" pattern="[0-9]{6}"
            value=${pin} onInput=${(e) => setPin(e.target.value)} required autofocus /></label>`}
          <button type="submit" disabled=${busy}>${busy ? 'Creating keys…' : 'Verify'}</button>
          <button type="button" class="link" onClick=${() => setStep('phone')}>Use another number</button>
        </form>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </div>`;
}

function defaultDeviceName() {
  const ua = navigator.userAgent;
  const browser = /Firefox/.test(ua) ? 'Firefox' : /Chrom/.test(ua) ? 'Chrome' : /Safari/.test(ua) ? 'Safari' : 'Browser';
  return `${browser} on ${navigator.platform || 'the web'}`;
}

export function explain(error) {
  const hints = {
    invalid_phone: 'That is not a phone number in international form (+ and country code).',
    invalid_code: 'That code is wrong or expired. Ask for a new one.',
    rate_limited: 'Too many tries. Wait a little and try again.',
    pin_required: 'This account has a PIN: enter it to add this device.',
    invalid_pin: 'That PIN is wrong.',
    too_many_devices: 'This account has 8 devices already: remove one first.',
  };
  return hints[error.code] || error.message || String(error);
}
