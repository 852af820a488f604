// A device's end-to-end encryption state on libolm (the @towns-protocol/olm
// build): the same protocol as the reference client's crypto.rs (vodozemac,
// Olm and Megolm in their version-1 configuration).
//
// - A message is sealed once with this device's Megolm session for its
//   conversation; the session key reaches each reading device in an Olm
//   message (a `share_keys` entry) opened with a claimed one-time key.
// - The outbound session is replaced after 100 messages, after a week, and
//   whenever the set of devices it must reach changes.
// - Everything is pickled (with a random key kept beside it) so a reload
//   keeps the sessions.

export const ROTATE_AFTER_MESSAGES = 100;
export const ROTATE_AFTER_MS = 7 * 24 * 3600 * 1000;

/** What a device signs for each one-time and fallback key (docs/PROTOCOL.md "Keys"). */
export function signedMessage(userId, deviceId, keyId, key) {
  return `missive/key/v1\n${userId}\n${deviceId}\n${keyId}\n${key}`;
}

/** `{user: [device, ...]}` of a device set `{user: {device: identity}}`, sorted, empty users left out. */
export function deviceIds(devices) {
  const ids = {};
  for (const user of Object.keys(devices).sort()) {
    const set = Object.keys(devices[user]).sort();
    if (set.length) ids[user] = set;
  }
  return ids;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export class Crypto {
  constructor(Olm, userId, deviceId, pickleKey) {
    this.Olm = Olm;
    this.userId = userId;
    this.deviceId = deviceId;
    this.pickleKey = pickleKey;
    this.account = null;
    this.olm = new Map(); // their curve25519 -> [Session], newest first
    this.outbound = new Map(); // conversation -> {session, target, sharedWith, createdAt, sealed}
    this.inbound = new Map(); // session id -> {session, conversationId, sender, senderDevice}
  }

  static create(Olm, userId, deviceId) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const pickleKey = btoa(String.fromCharCode(...bytes));
    const state = new Crypto(Olm, userId, deviceId, pickleKey);
    state.account = new Olm.Account();
    state.account.create();
    return state;
  }

  identity() {
    return JSON.parse(this.account.identity_keys());
  }

  /** The body of `PUT /v1/keys`: `count` new one-time keys and a fallback key, each signed for this device. */
  uploadBody(count) {
    this.account.generate_one_time_keys(count);
    this.account.generate_fallback_key();
    const sign = (keyId, key) => ({
      key_id: keyId,
      key,
      signature: this.account.sign(signedMessage(this.userId, this.deviceId, keyId, key)),
    });
    const oneTime = Object.entries(JSON.parse(this.account.one_time_keys()).curve25519 || {})
      .sort()
      .map(([id, key]) => sign(id, key));
    const [fallback] = Object.entries(JSON.parse(this.account.unpublished_fallback_key()).curve25519 || {});
    this.account.mark_keys_as_published();
    return {
      identity_keys: this.identity(),
      one_time_keys: oneTime,
      fallback_key: fallback ? sign(fallback[0], fallback[1]) : undefined,
    };
  }

  verifySigned(ed25519, userId, deviceId, signed) {
    const utility = new this.Olm.Utility();
    try {
      utility.ed25519_verify(ed25519, signedMessage(userId, deviceId, signed.key_id, signed.key), signed.signature);
      return true;
    } catch {
      return false;
    } finally {
      utility.free();
    }
  }

  /**
   * Makes the conversation's outbound session fit `devices` now (a new one when
   * there is none, it is worn out or the device set changed); returns its id and
   * the `[user, device]` pairs still to be given its key.
   */
  prepare(conversationId, devices, now = Date.now()) {
    const wanted = deviceIds(devices);
    const current = this.outbound.get(conversationId);
    const fresh =
      !current ||
      !same(current.target, wanted) ||
      current.sealed >= ROTATE_AFTER_MESSAGES ||
      now - current.createdAt >= ROTATE_AFTER_MS;
    if (fresh) {
      current?.session.free();
      const session = new this.Olm.OutboundGroupSession();
      session.create();
      const inbound = new this.Olm.InboundGroupSession();
      inbound.create(session.session_key());
      this.inbound.set(session.session_id(), {
        session: inbound,
        conversationId,
        sender: this.userId,
        senderDevice: this.deviceId,
      });
      this.outbound.set(conversationId, { session, target: wanted, sharedWith: {}, createdAt: now, sealed: 0 });
    }
    const outbound = this.outbound.get(conversationId);
    const toShare = [];
    for (const [user, set] of Object.entries(wanted)) {
      for (const device of set) {
        if (!(outbound.sharedWith[user] || []).includes(device)) toShare.push([user, device]);
      }
    }
    return { sessionId: outbound.session.session_id(), toShare };
  }

  hasOlmSession(identity) {
    return (this.olm.get(identity.curve25519) || []).length > 0;
  }

  /** Opens an Olm session to a device from a claimed one-time key, after checking its signature. */
  openOlmSession(user, device, identity, claimed) {
    if (!this.verifySigned(identity.ed25519, user, device, claimed)) {
      throw new Error(`the one-time key of device ${device} is not signed by its identity key`);
    }
    const session = new this.Olm.Session();
    session.create_outbound(this.account, identity.curve25519, claimed.key);
    this.olm.set(identity.curve25519, [session, ...(this.olm.get(identity.curve25519) || [])]);
  }

  /** The `share_keys` message giving one device the conversation's current session key. */
  shareEntry(conversationId, user, device, identity) {
    const outbound = this.outbound.get(conversationId);
    if (!outbound) throw new Error('no outbound session: prepare first');
    const [session] = this.olm.get(identity.curve25519) || [];
    if (!session) throw new Error('no Olm session with that device: claim a one-time key first');
    const key = {
      conversation_id: conversationId,
      session_id: outbound.session.session_id(),
      session_key: outbound.session.session_key(),
      sender: this.userId,
      sender_device: this.deviceId,
    };
    const message = session.encrypt(JSON.stringify(key));
    (outbound.sharedWith[user] ||= []).push(device);
    outbound.sharedWith[user].sort();
    return { user, device, olm_type: message.type, body: message.body };
  }

  /** Seals a payload with the conversation's outbound session: a frame's `encrypted` object. */
  seal(conversationId, payload) {
    const outbound = this.outbound.get(conversationId);
    if (!outbound) throw new Error('no outbound session: prepare first');
    const ciphertext = outbound.session.encrypt(JSON.stringify(payload));
    outbound.sealed += 1;
    return { session_id: outbound.session.session_id(), ciphertext };
  }

  sharedWith(conversationId) {
    return structuredClone(this.outbound.get(conversationId)?.sharedWith || {});
  }

  /** Takes a `to_device` entry for this device and keeps the Megolm session key it carries. */
  receiveToDevice(entry, senderIdentity) {
    const curve = senderIdentity.curve25519;
    const sessions = this.olm.get(curve) || [];
    let plaintext = null;
    for (const session of sessions) {
      if (entry.olm_type === 0 && !session.matches_inbound_from(curve, entry.body)) continue;
      try {
        plaintext = session.decrypt(entry.olm_type, entry.body);
        break;
      } catch {
        // another session may open it
      }
    }
    if (plaintext === null) {
      if (entry.olm_type !== 0) throw new Error('an Olm message no session of this device opens');
      const session = new this.Olm.Session();
      session.create_inbound_from(this.account, curve, entry.body);
      this.account.remove_one_time_keys(session);
      plaintext = session.decrypt(0, entry.body);
      this.olm.set(curve, [session, ...sessions]);
    }
    const key = JSON.parse(plaintext);
    if (key.sender !== entry.from || key.sender_device !== entry.from_device) {
      throw new Error(`a room key claiming to be from ${key.sender}/${key.sender_device} came from ${entry.from}`);
    }
    if (this.inbound.has(key.session_id)) return key.conversation_id;
    const inbound = new this.Olm.InboundGroupSession();
    inbound.create(key.session_key);
    this.inbound.set(key.session_id, {
      session: inbound,
      conversationId: key.conversation_id,
      sender: key.sender,
      senderDevice: key.sender_device,
    });
    return key.conversation_id;
  }

  /** Opens an `encrypted` body of a message in `conversationId`. */
  open(conversationId, encrypted) {
    const inbound = this.inbound.get(encrypted.session_id);
    if (!inbound) throw new Error('no key for this message: the sender has not shared it with this device');
    if (inbound.conversationId !== conversationId) throw new Error('a session of another conversation');
    const { plaintext } = inbound.session.decrypt(encrypted.ciphertext);
    return { payload: JSON.parse(plaintext), sender: inbound.sender, senderDevice: inbound.senderDevice };
  }

  /** Everything as one JSON-able object, for IndexedDB. */
  toJSON() {
    const key = this.pickleKey;
    return {
      user_id: this.userId,
      device_id: this.deviceId,
      pickle_key: key,
      account: this.account.pickle(key),
      olm: Object.fromEntries([...this.olm].map(([curve, list]) => [curve, list.map((s) => s.pickle(key))])),
      outbound: Object.fromEntries(
        [...this.outbound].map(([id, o]) => [
          id,
          { session: o.session.pickle(key), target: o.target, shared_with: o.sharedWith, created_at: o.createdAt, sealed: o.sealed },
        ]),
      ),
      inbound: Object.fromEntries(
        [...this.inbound].map(([id, i]) => [
          id,
          { session: i.session.pickle(key), conversation_id: i.conversationId, sender: i.sender, sender_device: i.senderDevice },
        ]),
      ),
    };
  }

  static fromJSON(Olm, saved) {
    const key = saved.pickle_key;
    const state = new Crypto(Olm, saved.user_id, saved.device_id, key);
    const unpickle = (Kind, pickle) => {
      const value = new Kind();
      value.unpickle(key, pickle);
      return value;
    };
    state.account = unpickle(Olm.Account, saved.account);
    for (const [curve, list] of Object.entries(saved.olm || {})) {
      state.olm.set(curve, list.map((p) => unpickle(Olm.Session, p)));
    }
    for (const [id, o] of Object.entries(saved.outbound || {})) {
      state.outbound.set(id, {
        session: unpickle(Olm.OutboundGroupSession, o.session),
        target: o.target,
        sharedWith: o.shared_with,
        createdAt: o.created_at,
        sealed: o.sealed,
      });
    }
    for (const [id, i] of Object.entries(saved.inbound || {})) {
      state.inbound.set(id, {
        session: unpickle(Olm.InboundGroupSession, i.session),
        conversationId: i.conversation_id,
        sender: i.sender,
        senderDevice: i.sender_device,
      });
    }
    return state;
  }
}
