// Two people chat in two browser contexts: both ways, with ticks going
// sent -> delivered -> read, a reply, typing and presence; one goes offline
// and comes back to its backlog; a send made offline goes out once on
// reconnect; a picture is sent and shown; a reload keeps the session and the
// keys. Saves screenshots of each main screen and reports the first-load
// time of the chat list.
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
  const picture = await alice.page.screenshot({ type: 'png', clip: { x: 0, y: 0, width: 320, height: 200 } });
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

  // A reload keeps the session and the keys: history opens, new messages too.
  await bob.page.reload();
  await bob.online();
  const firstLoad = await bob.page.evaluate(() => window.missive.ready);
  log(`first load to an interactive chat list: ${firstLoad.toFixed(0)} ms`);
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

  const base = (person) => person.page.evaluate(() => window.missive.client.api.base);
  console.log(JSON.stringify({ first_load_ms: Math.round(firstLoad), alice_base: await base(alice), bob_base: await base(bob), artifacts: ARTIFACTS }));
  await alice.close();
  await bob.close();
});
