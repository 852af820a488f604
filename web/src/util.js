// Small pure helpers shared by the client: ids, hashes, formatting.

const encoder = new TextEncoder();

export async function sha256Hex(data) {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function u64be(decimal) {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(decimal));
  return bytes;
}

/** The 1:1 conversation id of two users, as the server derives it (ConversationId::direct). */
export async function directConversation(a, b) {
  const [low, high] = BigInt(a) <= BigInt(b) ? [a, b] : [b, a];
  const prefix = encoder.encode('missive/direct/v1');
  const input = new Uint8Array(prefix.length + 16);
  input.set(prefix);
  input.set(u64be(low), prefix.length);
  input.set(u64be(high), prefix.length + 8);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', input));
  return (new DataView(digest.buffer).getBigUint64(0) >> 1n).toString();
}

/**
 * The 60-digit security code of the chat between two users (the same as
 * `missive chat verify`): SHA-512 over both users' Ed25519 device keys.
 */
export async function securityCode(me, meKeys, them, themKeys) {
  const users = [
    [me, meKeys],
    [them, themKeys],
  ].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  let text = 'missive/security-code/v1\n';
  for (const [user, keys] of users) text += `${user}\n${[...keys].sort().join(',')}\n`;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-512', encoder.encode(text)));
  const groups = [];
  for (let i = 0; i < 60; i += 5) {
    let number = 0;
    for (const byte of digest.slice(i, i + 5)) number = number * 256 + byte;
    groups.push(String(number % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}

export function uuid() {
  return crypto.randomUUID();
}

export function hex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(text) {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.substr(i * 2, 2), 16);
  return bytes;
}

export function timeOfDay(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function dayLabel(ms) {
  const day = new Date(ms);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (day.toDateString() === today.toDateString()) return 'Today';
  if (day.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return day.toLocaleDateString([], { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

export function lastSeenLabel(presence) {
  if (!presence) return '';
  if (presence.online) return 'online';
  if (!presence.last_seen) return '';
  const at = new Date(presence.last_seen);
  const today = new Date().toDateString() === at.toDateString();
  return `last seen ${today ? 'today' : at.toLocaleDateString()} at ${timeOfDay(presence.last_seen)}`;
}

export function bytesLabel(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
