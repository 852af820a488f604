// Two people chat in two browser contexts: both ways, with ticks going
// sent -> delivered -> read, a reply, typing and presence; one goes offline
// and comes back to its backlog; a send made offline goes out once on
// reconnect; a picture is sent and shown; a reload keeps the session and the
// keys. Saves screenshots of each main screen and reports the first-load
// time of the chat list.
import { readFileSync } from 'node:fs';

import { ARTIFACTS, check, log, Person, scenario } from './harness.mjs';

await scenario(async (browser) => {
  const alice = await new Person(browser, 'alice', process.env.ALICE_PHONE || '+14155557001').open();
  const bob = await new Person(browser, 'bob', process.env.BOB_PHONE || '+14155557002').open();
  await alice.screenshot('01-register');
  await alice.register();
  await bob.register();
  await alice.setName('Alice');
  await bob.setName('Bob');
  log('registered', alice.user, bob.user);

  // Alice finds Bob by number and writes.
  await alice.startChat(bob.phone);
  await alice.send('Hello Bob! 👋');
  // Bob's list shows the chat, the preview (decrypted in his browser) and an unread count.
  const row = bob.page.getByTestId('chat-row').filter({ hasText: 'Hello Bob! 👋' });
  await row.waitFor();
  check((await row.getByTestId('unread').textContent()) === '1', 'one unread message');
  await alice.ticks('Hello Bob! 👋', 'delivered');
  await bob.screenshot('02-chat-list');
  await row.click();
  await bob.sees('Hello Bob! 👋');
  await alice.ticks('Hello Bob! 👋', 'read');

  // Typing shows on the other side; presence says online.
  await bob.page.getByTestId('composer').pressSequentially('Hi Al', { delay: 30 });
  await alice.page.getByTestId('chat-subtitle').getByText('typing…').waitFor();
  await bob.page.getByTestId('composer').fill('');
  await bob.page.getByTestId('composer').blur();
  await alice.page.getByTestId('chat-subtitle').getByText('online').waitFor();

  // Bob replies, quoting.
  await bob.message('Hello Bob! 👋').hover();
  await bob.message('Hello Bob! 👋').getByTestId('message-menu').click();
  await bob.page.getByRole('menuitem', { name: 'Reply' }).click();
  await bob.send('Hi Alice, good to see you here');
  await alice.sees('Hi Alice, good to see you here');
  const quote = alice.message('Hi Alice, good to see you here').getByTestId('quote');
  check((await quote.textContent()).includes('Hello Bob!'), 'the reply quotes the message');
  await bob.ticks('Hi Alice, good to see you here', 'read');
  await alice.screenshot('03-conversation');

  // Bob goes offline; Alice writes; Bob comes back to the backlog, in order.
  await bob.context.setOffline(true);
  await bob.page.getByTestId('banner').waitFor();
  for (const text of ['while you were away 1', 'while you were away 2', 'while you were away 3']) await alice.send(text);
  await alice.ticks('while you were away 3', 'sent');
  await bob.screenshot('04-offline');
  await bob.context.setOffline(false);
  await bob.online();
  await bob.sees('while you were away 3');
  const texts = (await bob.texts()).filter((t) => t.startsWith('while you were away'));
  check(JSON.stringify(texts) === JSON.stringify(['while you were away 1', 'while you were away 2', 'while you were away 3']), `backlog in order: ${texts}`);
  await alice.ticks('while you were away 3', 'read');

  // Alice sends while offline: queued, then sent once, in order, on reconnect.
  await alice.context.setOffline(true);
  await alice.page.getByTestId('banner').waitFor();
  await alice.send('queued 1');
  await alice.send('queued 2');
  await alice.ticks('queued 2', 'pending');
  await alice.page.getByTestId('banner').getByText('2 waiting').waitFor();
  await alice.context.setOffline(false);
  await alice.online();
  await bob.sees('queued 2');
  await alice.ticks('queued 2', 'read');
  const queued = (await bob.texts()).filter((t) => t.startsWith('queued'));
  check(JSON.stringify(queued) === JSON.stringify(['queued 1', 'queued 2']), `queued sends arrive once, in order: ${queued}`);

  // A picture: picked, previewed, uploaded sealed, shown on the other side.
  // (A small landscape drawn on a canvas: a real PNG made in the browser.)
  const drawn = await bob.page.evaluate(() => {
    const canvas = document.createElement('canvas');
    Object.assign(canvas, { width: 320, height: 200 });
    const g = canvas.getContext('2d');
    const sky = g.createLinearGradient(0, 0, 0, 200);
    sky.addColorStop(0, '#ff9a5a');
    sky.addColorStop(1, '#ffd9a0');
    g.fillStyle = sky;
    g.fillRect(0, 0, 320, 200);
    g.fillStyle = '#fff3c4';
    g.beginPath();
    g.arc(220, 90, 28, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = '#3d5a80';
    g.beginPath();
    g.moveTo(0, 200); g.lineTo(90, 95); g.lineTo(160, 160); g.lineTo(240, 80); g.lineTo(320, 150); g.lineTo(320, 200);
    g.fill();
    return canvas.toDataURL('image/png').split(',')[1];
  });
  const picture = Buffer.from(drawn, 'base64');
  await bob.page.getByTestId('file-input').setInputFiles({ name: 'view.png', mimeType: 'image/png', buffer: picture });
  await bob.page.getByTestId('file-preview').waitFor();
  await bob.page.getByTestId('composer').fill('the view from here');
  await bob.page.getByTestId('send').click();
  await alice.sees('the view from here');
  const shown = alice.message('the view from here').locator('[data-testid=picture][data-full=true]');
  await shown.waitFor();
  const size = await shown.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  check(size[0] === 320 && size[1] === 200, `the picture opens at its size: ${size}`);
  await alice.screenshot('05-picture');

  // A document dropped on the chat: sealed, sent, downloaded intact on the other side.
  const itinerary = 'Day 1: the lake\nDay 2: the ridge\n'.repeat(300);
  const dropped = await alice.page.evaluateHandle((text) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], 'itinerary.txt', { type: 'text/plain' }));
    return transfer;
  }, itinerary);
  await alice.page.getByTestId('conversation').dispatchEvent('drop', { dataTransfer: dropped });
  await alice.page.getByTestId('file-preview').getByText('itinerary.txt').waitFor();
  await alice.page.getByTestId('send').click();
  const download = bob.page.getByRole('button', { name: 'Download itinerary.txt' });
  await download.waitFor();
  const [saved] = await Promise.all([bob.page.waitForEvent('download'), download.click()]);
  check(readFileSync(await saved.path(), 'utf8') === itinerary, 'the document arrives intact');

  // A reload keeps the session and the keys: history opens, new messages too.
  // Timed with the HTTP cache off, as a first visit loads it: navigation start
  // to the chat list rendered from the device kept in IndexedDB.
  const cdp = await bob.context.newCDPSession(bob.page);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await bob.page.reload();
  await bob.online();
  const firstLoad = await bob.page.evaluate(() => window.missive.ready);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: false });
  log(`first load to an interactive chat list (no HTTP cache): ${firstLoad.toFixed(0)} ms`);
  await bob.openChat('Alice');
  await bob.sees('Hello Bob! 👋');
  await bob.sees('queued 2');
  await alice.send('after your reload');
  await bob.sees('after your reload');
  await alice.ticks('after your reload', 'read');

  // Phone-sized screen: one pane at a time.
  await bob.page.setViewportSize({ width: 390, height: 780 });
  await bob.screenshot('06-phone-conversation');
  await bob.page.getByRole('button', { name: 'Back to chats' }).click();
  await bob.page.getByTestId('chat-list').waitFor();
  await bob.screenshot('07-phone-chat-list');

  // A gap in Bob's feed (the server cannot prove continuity: recovered false):
  // his client resyncs the list and the open chat without moving what he looks at.
  await bob.openChat('Alice');
  await bob.page.setViewportSize({ width: 390, height: 420 });
  await bob.page.getByTestId('messages').evaluate((el) => (el.scrollTop = Math.floor((el.scrollHeight - el.clientHeight) / 2)));
  await bob.page.waitForTimeout(100); // the scroll event
  const firstVisible = () =>
    bob.page.getByTestId('messages').evaluate((box) => {
      const row = [...box.querySelectorAll('[data-id]')].find((r) => r.offsetTop + r.offsetHeight > box.scrollTop);
      return `${row.dataset.id}@${row.offsetTop - box.scrollTop}`;
    });
  const looking = await firstVisible();
  const resyncs = await bob.page.evaluate(() => {
    const client = window.missive.client;
    client.resyncs = 0;
    const resync = client.resync.bind(client);
    client.resync = async () => (client.resyncs++, resync());
    client.epoch = '1'; // not the feed's epoch: the next welcome cannot recover
    client.drop();
    return client.resyncs;
  });
  check(resyncs === 0, 'no resync before reconnecting');
  await alice.send('sent across the gap');
  await bob.message('sent across the gap').waitFor({ state: 'attached' });
  check((await bob.page.evaluate(() => window.missive.client.resyncs)) === 1, 'the gap made the client resync');
  const after = await firstVisible();
  check(after === looking, `the reader's place is kept: ${looking}, now ${after}`);

  const base = (person) => person.page.evaluate(() => window.missive.client.api.base);
  console.log(JSON.stringify({ first_load_ms: Math.round(firstLoad), alice_base: await base(alice), bob_base: await base(bob), artifacts: ARTIFACTS }));
  await alice.close();
  await bob.close();
});
