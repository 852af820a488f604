// Boot: load Olm (WebAssembly), the device saved in this browser if any,
// and render the app.
import Olm from '@towns-protocol/olm';
import { render } from 'preact';
import { html } from 'htm/preact';

import { Client } from './client.js';
import './chats.js';
import './send.js';
import { App } from './ui/app.js';
import './style.css';

async function boot() {
  const started = performance.now();
  await Olm.initAsync();
  const client = await Client.load(Olm);
  window.missive = { client, started };
  const root = document.getElementById('app');
  root.textContent = ''; // the "Loading…" placeholder
  render(html`<${App} Olm=${Olm} initial=${client} />`, root);
}

boot().catch((error) => {
  document.getElementById('app').textContent = `Missive could not start: ${error.message}`;
});
