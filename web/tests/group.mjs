// A browser and `missive chat` (the terminal client) converse both ways and
// agree on the security code; then a group of three, two browsers and one
// terminal: messages every way, "delivered 2/2" and "read by", an edit, a
// reaction and a delete for everyone, group info. Screenshots of each.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { check, log, missiveChat, Person, scenario, SMS } from './harness.mjs';

const carolPhone = process.env.CAROL_PHONE || '+14155557103';
const carol = join(mkdtempSync(join(tmpdir(), 'carol-')), 'profile');
const carolId = missiveChat(carol, ['register', carolPhone, '--sms-file', SMS])[0].registered;

/** `missive chat read` until a line satisfies `wanted`. */
function carolReads(what, wanted) {
  for (let i = 0; i < 20; i++) {
    const line = missiveChat(carol, ['read', '--wait', '1']).find(wanted);
    if (line) return line;
  }
  throw new Error(`missive chat never showed ${what}`);
}

await scenario(async (browser) => {
  const alice = await new Person(browser, 'alice', process.env.ALICE_PHONE || '+14155557101').open();
  const bob = await new Person(browser, 'bob', process.env.BOB_PHONE || '+14155557102').open();
  await alice.register();
  await bob.register();
  await alice.setName('Alice');
  await bob.setName('Bob');

  // Browser -> terminal and back, sealed both ways.
  await alice.startChat(carolPhone);
  await alice.send('hi Carol, from a browser');
  carolReads("alice's message", (line) => line.text === 'hi Carol, from a browser' && line.from === alice.user);
  await alice.ticks('hi Carol, from a browser', 'delivered');
  missiveChat(carol, ['send', alice.user, 'hi Alice, from a terminal']);
  await alice.sees('hi Alice, from a terminal');
  // The same security code on both sides.
  await alice.page.getByTestId('security-code').click();
  const code = (await alice.page.getByTestId('code').textContent()).trim();
  const theirs = missiveChat(carol, ['verify', alice.user])[0].security_code;
  check(code === theirs, `security codes match: ${code} / ${theirs}`);
  await alice.screenshot('11-security-code');
  await alice.page.getByRole('button', { name: 'Close' }).click();

  // A group of three: Alice finds Bob (and Carol) by number, creates it.
  await alice.page.getByTestId('new-chat').click();
  await alice.page.getByTestId('new-chat-form').locator('textarea').fill(`${bob.phone}\n${carolPhone}\n+19999999999`);
  await alice.page.getByRole('button', { name: 'Find on Missive' }).click();
  await alice.page.getByText('2 of 3 numbers are on Missive.').waitFor();
  await alice.page.getByRole('button', { name: 'Close' }).click();
  await alice.page.getByTestId('new-group').click();
  await alice.page.getByLabel('Group name').fill('Weekend trip');
  await alice.page.locator(`[data-user="${bob.user}"]`).check();
  await alice.page.locator(`[data-user="${carolId}"]`).check();
  await alice.page.getByRole('button', { name: 'Create' }).click();
  await alice.page.getByTestId('chat-title').getByText('Weekend trip').waitFor();
  await alice.send('hello group');
  await bob.openChat('Weekend trip');
  await bob.sees('hello group');
  const line = carolReads('the group message', (l) => l.text === 'hello group');
  const group = line.conversation_id;
  log('group', group);
  missiveChat(carol, ['send', `group:${group}`, 'Carol here, from the terminal']);
  await alice.sees('Carol here, from the terminal');
  await bob.sees('Carol here, from the terminal');
  await bob.send('Bob here');
  await alice.sees('Bob here');
  carolReads("bob's group message", (l) => l.text === 'Bob here');

  // Delivered to both, read by both: the message's info.
  await alice.ticks('hello group', 'delivered');
  await alice.message('hello group').hover();
  await alice.message('hello group').getByTestId('message-menu').click();
  await alice.page.getByRole('menuitem', { name: 'Info' }).click();
  await alice.page.getByTestId('delivered-count').getByText('Delivered 2/2').waitFor();
  await alice.page.getByTestId('read-by').getByText('Bob').waitFor();
  await alice.screenshot('12-message-info');
  await alice.page.getByRole('button', { name: 'Close' }).click();

  // Edit, react, delete for everyone.
  await alice.message('hello group').getByTestId('message-menu').click();
  await alice.page.getByRole('menuitem', { name: 'Edit' }).click();
  await alice.page.waitForFunction(() => document.querySelector('[data-testid=composer]').value === 'hello group');
  await alice.page.getByTestId('composer').fill('hello group (edited)');
  await alice.page.getByTestId('composer').press('Enter');
  await bob.sees('hello group (edited)');
  await bob.message('hello group (edited)').hover();
  await bob.message('hello group (edited)').getByTestId('message-menu').click();
  await bob.page.getByRole('menuitem', { name: 'React 👍' }).click();
  await alice.message('hello group (edited)').getByTestId('reactions').getByText('👍').waitFor();
  carolReads('the edit', (l) => l.edit === 'hello group (edited)' || l.text === 'hello group (edited)');
  await alice.page.getByTestId('group-info').click();
  await alice.page.getByTestId('members').getByText('Bob').waitFor();
  // An icon (the server makes its thumbnails; members see it), an admin, a member removed and added back.
  const icon = Buffer.from(await alice.page.evaluate(() => {
    const canvas = Object.assign(document.createElement('canvas'), { width: 64, height: 64 });
    const g = canvas.getContext('2d');
    g.fillStyle = '#2f9e8f';
    g.fillRect(0, 0, 64, 64);
    g.fillStyle = '#fff3c4';
    g.fillRect(16, 16, 32, 32);
    return canvas.toDataURL('image/png').split(',')[1];
  }), 'base64');
  await alice.page.getByTestId('dialog-group-info').getByLabel('Icon').setInputFiles({ name: 'icon.png', mimeType: 'image/png', buffer: icon });
  await bob.page.locator('.conversation-bar .avatar img').waitFor();
  const member = (name) => alice.page.getByTestId('members').locator('li').filter({ hasText: name });
  await member('Bob').getByRole('button', { name: 'Make admin' }).click();
  await member('Bob').getByText('admin', { exact: true }).waitFor();
  await member(carolPhone).getByRole('button', { name: 'Remove' }).click();
  carolReads('her removal', (l) => l.change === 'member_removed');
  await alice.page.getByTestId('dialog-group-info').getByRole('listitem').filter({ hasText: carolPhone }).getByRole('button', { name: 'Add', exact: true }).click();
  await member(carolPhone).waitFor();
  carolReads('her return', (l) => l.change === 'members_added');
  await alice.screenshot('13-group-info');
  await alice.page.getByRole('button', { name: 'Close' }).click();
  await alice.message('Bob here').hover();
  await alice.send('a message to take back');
  await bob.sees('a message to take back');
  await alice.message('a message to take back').getByTestId('message-menu').click();
  await alice.page.getByTestId('delete-everyone').click();
  await bob.page.getByTestId('messages').getByText('This message was deleted').waitFor();
  check((await bob.message('a message to take back').count()) === 0, 'the deleted text is gone from Bob\'s screen');
  await bob.screenshot('14-group-bob');

  // Forward Carol's 1:1 message into the group: re-sealed for it, labelled.
  await alice.openChat(carolPhone);
  await alice.message('hi Alice, from a terminal').hover();
  await alice.message('hi Alice, from a terminal').getByTestId('message-menu').click();
  await alice.page.getByRole('menuitem', { name: 'Forward' }).click();
  await alice.page.getByTestId('dialog-forward').getByLabel('Weekend trip').check();
  await alice.page.getByRole('button', { name: 'Forward (1)' }).click();
  const forwarded = bob.message('hi Alice, from a terminal');
  await forwarded.getByText('Forwarded').waitFor();

  // Rename the group; Bob sees the new name, then leaves; Alice sees him go.
  await alice.openChat('Weekend trip');
  await alice.page.getByTestId('group-info').click();
  await alice.page.getByTestId('dialog-group-info').getByLabel('Name').fill('Weekend trip 🏕');
  await alice.page.getByRole('button', { name: 'Rename' }).click();
  await alice.page.getByRole('button', { name: 'Close' }).click();
  await bob.page.getByTestId('chat-title').getByText('Weekend trip 🏕').waitFor();
  await bob.page.getByTestId('group-info').click();
  await bob.page.getByRole('button', { name: 'Leave group' }).click();
  await bob.page.getByText("You can't send messages to this group").waitFor();
  await alice.page.getByTestId('messages').getByText('Bob left').waitFor();

  // Block Carol: her next message never shows; unblock in settings.
  await alice.openChat(carolPhone);
  await alice.page.getByTestId('security-code').click();
  await alice.page.getByTestId('block').click();
  await alice.page.getByText('Blocked: their messages').waitFor();
  await alice.page.getByRole('button', { name: 'Close' }).click();
  missiveChat(carol, ['send', alice.user, 'you should not see this']);
  missiveChat(carol, ['send', `group:${group}`, 'but this, in the group']);
  await alice.openChat('Weekend trip 🏕');
  await alice.sees('but this, in the group');
  await alice.openChat(carolPhone);
  await alice.sees('hi Alice, from a terminal');
  check((await alice.message('you should not see this').count()) === 0, 'a blocked user\'s message is not delivered');
  await alice.page.getByRole('button', { name: 'Settings' }).click();
  await alice.page.getByTestId('devices').getByText('(this browser)').waitFor();
  await alice.screenshot('15-settings');
  await alice.page.getByRole('button', { name: 'Unblock' }).click();
  await alice.page.getByText('Nobody.').waitFor();

  // Log out: the device is gone, the page is back at registration.
  await alice.page.getByTestId('logout').click();
  await alice.page.getByLabel('Your phone number').waitFor();
  const devices = await bob.page.evaluate((user) => window.missive.client.api.get(`/v1/users/${user}/devices`), alice.user);
  check(devices.devices.length === 0, `alice's browser device is removed: ${JSON.stringify(devices)}`);

  await alice.close();
  await bob.close();
  console.log(JSON.stringify({ group, security_code: code }));
});
