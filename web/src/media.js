// Attachments sealed in the browser, as the reference client seals them
// (client/src/media.rs): AES-256-CBC with a random key and IV, then
// HMAC-SHA256 over IV and ciphertext. The key, MAC key and hashes travel
// inside the Megolm-sealed message; the server stores opaque bytes.

import { hex, sha256Hex, unhex } from './util.js';

const IV_BYTES = 16;
const MAC_BYTES = 32;

export async function sealMedia(plain) {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const macKey = crypto.getRandomValues(new Uint8Array(32));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const aes = await crypto.subtle.importKey('raw', key, 'AES-CBC', false, ['encrypt']);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, aes, plain));
  const body = new Uint8Array(IV_BYTES + ciphertext.length);
  body.set(iv);
  body.set(ciphertext, IV_BYTES);
  const hmac = await crypto.subtle.importKey('raw', macKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const tag = new Uint8Array(await crypto.subtle.sign('HMAC', hmac, body));
  const bytes = new Uint8Array(body.length + MAC_BYTES);
  bytes.set(body);
  bytes.set(tag, body.length);
  return {
    bytes,
    secret: { key: hex(key), mac_key: hex(macKey), sha256: await sha256Hex(bytes), plain_sha256: await sha256Hex(plain) },
  };
}

export async function openMedia(bytes, secret) {
  if ((await sha256Hex(bytes)) !== secret.sha256) throw new Error('the downloaded bytes are not the ones the sender uploaded');
  if (bytes.length < IV_BYTES + MAC_BYTES) throw new Error('too short to be sealed media');
  const body = bytes.slice(0, bytes.length - MAC_BYTES);
  const tag = bytes.slice(bytes.length - MAC_BYTES);
  const hmac = await crypto.subtle.importKey('raw', unhex(secret.mac_key), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  if (!(await crypto.subtle.verify('HMAC', hmac, tag, body))) throw new Error('the media MAC does not match');
  const aes = await crypto.subtle.importKey('raw', unhex(secret.key), 'AES-CBC', false, ['decrypt']);
  const plain = new Uint8Array(
    await crypto.subtle.decrypt({ name: 'AES-CBC', iv: body.slice(0, IV_BYTES) }, aes, body.slice(IV_BYTES)),
  );
  if ((await sha256Hex(plain)) !== secret.plain_sha256) throw new Error('the opened media is not what the sender sealed');
  return plain;
}

/** A small JPEG preview of an image file (base64, no prefix), or null. */
export async function thumbnail(file, size = 96) {
  if (!file.type.startsWith('image/')) return null;
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, size / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL('image/jpeg', 0.7).split(',')[1];
  } catch {
    return null;
  }
}

/** The message kind of a file, as WhatsApp shows it. */
export function kindOf(type) {
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('video/')) return 'video';
  if (type.startsWith('audio/')) return 'voice';
  return 'document';
}
