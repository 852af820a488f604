//! A device's end-to-end encryption state, without I/O: its Olm account,
//! the Olm sessions it has with other devices, its outbound Megolm session
//! per conversation and the inbound sessions others shared with it.
//!
//! - A message is sealed once with the sender device's Megolm session for
//!   its conversation (one ciphertext however many devices read it).
//! - That session's key travels to each reading device in an Olm message
//!   (a `share_keys` entry), opened with a claimed one-time key.
//! - The outbound session is replaced after [`ROTATE_AFTER_MESSAGES`]
//!   messages, after [`ROTATE_AFTER_MS`], and whenever the set of devices
//!   it must reach changes, so a leaked session key opens a bounded window.
//!
//! Olm and Megolm run in their version-1 configuration, which the browser's
//! Olm library speaks too.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vodozemac::megolm::{
    GroupSession, GroupSessionPickle, InboundGroupSession, InboundGroupSessionPickle, MegolmMessage,
};
use vodozemac::olm::{Account, AccountPickle, OlmMessage, Session, SessionConfig, SessionPickle};
use vodozemac::{Curve25519PublicKey, megolm};

use crate::keys::DeviceKeys;

/// An outbound session seals at most this many messages.
pub const ROTATE_AFTER_MESSAGES: u32 = 100;
/// An outbound session lives at most this long (a week).
pub const ROTATE_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;

/// A device's public identity, as `GET /v1/users/{id}/devices` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub curve25519: String,
    pub ed25519: String,
}

/// The devices a message must reach: user id -> device id -> identity.
pub type DeviceSet = BTreeMap<String, BTreeMap<String, Identity>>;

/// The user and device ids of a [`DeviceSet`], as a send names them.
pub fn device_ids(devices: &DeviceSet) -> BTreeMap<String, BTreeSet<String>> {
    devices
        .iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(user, set)| (user.clone(), set.keys().cloned().collect()))
        .collect()
}

/// What is sealed in a to-device message: a Megolm session key.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RoomKey {
    conversation_id: String,
    session_id: String,
    session_key: String,
    /// Who sent it, which the receiving device checks against the Olm session's sender.
    sender: String,
    sender_device: String,
}

struct Outbound {
    session: GroupSession,
    /// The devices it is for: a change means a new session.
    target: BTreeMap<String, BTreeSet<String>>,
    /// The devices it was shared with so far.
    shared_with: BTreeMap<String, BTreeSet<String>>,
    created_at: i64,
    sealed: u32,
}

/// An inbound session and whose it is.
struct Inbound {
    session: InboundGroupSession,
    conversation_id: String,
    sender: String,
    sender_device: String,
}

/// A decrypted message body and the device that sealed it.
#[derive(Clone, Debug)]
pub struct Opened {
    pub payload: Value,
    pub sender: String,
    pub sender_device: String,
}

pub struct Crypto {
    pub user_id: String,
    pub device_id: String,
    keys: DeviceKeys,
    /// Olm sessions by the other device's Curve25519 key.
    olm: HashMap<String, Vec<Session>>,
    outbound: HashMap<String, Outbound>,
    inbound: HashMap<String, Inbound>,
}

/// The outcome of preparing a conversation's session for a send: the
/// session id and the devices still to be given its key.
pub struct Prepared {
    pub session_id: String,
    pub to_share: Vec<(String, String)>,
}

impl Crypto {
    pub fn new(user_id: &str, device_id: &str) -> Crypto {
        Crypto {
            user_id: user_id.to_string(),
            device_id: device_id.to_string(),
            keys: DeviceKeys::new(),
            olm: HashMap::new(),
            outbound: HashMap::new(),
            inbound: HashMap::new(),
        }
    }

    pub fn identity(&self) -> Identity {
        let keys = self.keys.account.identity_keys();
        Identity { curve25519: keys.curve25519.to_base64(), ed25519: keys.ed25519.to_base64() }
    }

    /// Makes sure the conversation's outbound session may seal for exactly
    /// `devices` now: a new one when there is none, it is worn out, or the
    /// device set changed (which includes a member leaving).
    pub fn prepare(&mut self, conversation_id: &str, devices: &DeviceSet, now: i64) -> Prepared {
        let wanted = device_ids(devices);
        let fresh = match self.outbound.get(conversation_id) {
            Some(current) => {
                current.target != wanted
                    || current.sealed >= ROTATE_AFTER_MESSAGES
                    || now - current.created_at >= ROTATE_AFTER_MS
            }
            None => true,
        };
        if fresh {
            let session = GroupSession::new(megolm::SessionConfig::version_1());
            // Our own devices read our messages too, this one included (history).
            let inbound = InboundGroupSession::new(&session.session_key(), megolm::SessionConfig::version_1());
            self.inbound.insert(
                session.session_id(),
                Inbound {
                    session: inbound,
                    conversation_id: conversation_id.to_string(),
                    sender: self.user_id.clone(),
                    sender_device: self.device_id.clone(),
                },
            );
            let outbound =
                Outbound { session, target: wanted.clone(), shared_with: BTreeMap::new(), created_at: now, sealed: 0 };
            self.outbound.insert(conversation_id.to_string(), outbound);
        }
        let outbound = self.outbound.get(conversation_id).expect("just made");
        let to_share = wanted
            .iter()
            .flat_map(|(user, set)| set.iter().map(move |device| (user.clone(), device.clone())))
            .filter(|(user, device)| !outbound.shared_with.get(user).is_some_and(|done| done.contains(device)))
            .collect();
        Prepared { session_id: outbound.session.session_id(), to_share }
    }

    /// Whether an Olm session with this device exists (otherwise claim a one-time key first).
    pub fn has_olm_session(&self, identity: &Identity) -> bool {
        self.olm.get(&identity.curve25519).is_some_and(|sessions| !sessions.is_empty())
    }

    /// Opens an Olm session to a device from a claimed one-time key, after
    /// checking the key's signature by that device's Ed25519 key.
    pub fn open_olm_session(
        &mut self,
        user: &str,
        device: &str,
        identity: &Identity,
        claimed: &Value,
    ) -> anyhow::Result<()> {
        if !DeviceKeys::verify_signed(&identity.ed25519, user, device, claimed) {
            bail!("the one-time key of device {device} is not signed by its identity key: refusing it");
        }
        let key = Curve25519PublicKey::from_base64(claimed["key"].as_str().unwrap_or_default())
            .context("a claimed key is not a Curve25519 key")?;
        let theirs = Curve25519PublicKey::from_base64(&identity.curve25519).context("a bad identity key")?;
        let session = self.keys.account.create_outbound_session(SessionConfig::version_1(), theirs, key);
        self.olm.entry(identity.curve25519.clone()).or_default().insert(0, session);
        Ok(())
    }

    /// The `share_keys` entry giving one device the conversation's current
    /// session key, Olm-encrypted for it; the device counts as shared with.
    pub fn share_entry(
        &mut self,
        conversation_id: &str,
        user: &str,
        device: &str,
        identity: &Identity,
    ) -> anyhow::Result<Value> {
        let outbound = self.outbound.get_mut(conversation_id).context("no outbound session: prepare first")?;
        let key = RoomKey {
            conversation_id: conversation_id.to_string(),
            session_id: outbound.session.session_id(),
            session_key: outbound.session.session_key().to_base64(),
            sender: self.user_id.clone(),
            sender_device: self.device_id.clone(),
        };
        let session = self
            .olm
            .get_mut(&identity.curve25519)
            .and_then(|sessions| sessions.first_mut())
            .context("no Olm session with that device: claim a one-time key first")?;
        let (olm_type, body) = session.encrypt(serde_json::to_vec(&key)?).to_parts();
        outbound.shared_with.entry(user.to_string()).or_default().insert(device.to_string());
        Ok(json!({"user": user, "device": device, "olm_type": olm_type, "body": vodozemac::base64_encode(body)}))
    }

    /// Seals a payload with the conversation's outbound session: the
    /// `encrypted` object of a frame (a send adds `devices`).
    pub fn seal(&mut self, conversation_id: &str, payload: &Value) -> anyhow::Result<Value> {
        let outbound = self.outbound.get_mut(conversation_id).context("no outbound session: prepare first")?;
        let message = outbound.session.encrypt(serde_json::to_vec(payload)?);
        outbound.sealed += 1;
        Ok(json!({"session_id": outbound.session.session_id(), "ciphertext": message.to_base64()}))
    }

    /// The devices the conversation's current session was shared with, as a send names them.
    pub fn shared_with(&self, conversation_id: &str) -> BTreeMap<String, BTreeSet<String>> {
        self.outbound.get(conversation_id).map(|outbound| outbound.shared_with.clone()).unwrap_or_default()
    }

    /// Takes a `to_device` entry for this device: decrypts it with the
    /// sender device's Olm session (opening one from a pre-key message)
    /// and stores the Megolm session key it carries.
    pub fn receive_to_device(&mut self, entry: &Value, sender_identity: &Identity) -> anyhow::Result<()> {
        let olm_type = entry["olm_type"].as_u64().context("olm_type")? as usize;
        let body = vodozemac::base64_decode(entry["body"].as_str().context("body")?)?;
        let message = OlmMessage::from_parts(olm_type, &body)?;
        let sessions = self.olm.entry(sender_identity.curve25519.clone()).or_default();
        let mut plaintext = None;
        for session in sessions.iter_mut() {
            if let Ok(opened) = session.decrypt(&message) {
                plaintext = Some(opened);
                break;
            }
        }
        let plaintext = match (plaintext, &message) {
            (Some(plaintext), _) => plaintext,
            (None, OlmMessage::PreKey(prekey)) => {
                let theirs = Curve25519PublicKey::from_base64(&sender_identity.curve25519)?;
                let created = self.keys.account.create_inbound_session(theirs, prekey)?;
                self.olm.entry(sender_identity.curve25519.clone()).or_default().insert(0, created.session);
                created.plaintext
            }
            (None, OlmMessage::Normal(_)) => bail!("an Olm message no session of this device opens"),
        };
        let key: RoomKey = serde_json::from_slice(&plaintext).context("a to-device message that is no room key")?;
        let sender = entry["from"].as_str().unwrap_or_default();
        let sender_device = entry["from_device"].as_str().unwrap_or_default();
        if key.sender != sender || key.sender_device != sender_device {
            bail!(
                "a room key claiming to be from {}/{} came from {sender}/{sender_device}",
                key.sender,
                key.sender_device
            );
        }
        let session_key = megolm::SessionKey::from_base64(&key.session_key)?;
        let session = InboundGroupSession::new(&session_key, megolm::SessionConfig::version_1());
        let inbound = Inbound {
            session,
            conversation_id: key.conversation_id,
            sender: key.sender,
            sender_device: key.sender_device,
        };
        self.inbound.insert(key.session_id, inbound);
        Ok(())
    }

    /// Opens an `encrypted` body of a message in `conversation_id`.
    pub fn open(&mut self, conversation_id: &str, encrypted: &Value) -> anyhow::Result<Opened> {
        let session_id = encrypted["session_id"].as_str().context("session_id")?;
        let inbound = self
            .inbound
            .get_mut(session_id)
            .ok_or_else(|| anyhow!("no key for session {session_id}: this device was not given it"))?;
        if inbound.conversation_id != conversation_id {
            bail!("session {session_id} belongs to another conversation");
        }
        let message = MegolmMessage::from_base64(encrypted["ciphertext"].as_str().context("ciphertext")?)?;
        let decrypted = inbound.session.decrypt(&message)?;
        Ok(Opened {
            payload: serde_json::from_slice(&decrypted.plaintext)?,
            sender: inbound.sender.clone(),
            sender_device: inbound.sender_device.clone(),
        })
    }

    /// Everything as one JSON document (vodozemac pickles), for the profile directory.
    pub fn to_json(&self) -> Value {
        let olm: HashMap<&String, Vec<SessionPickle>> =
            self.olm.iter().map(|(key, sessions)| (key, sessions.iter().map(Session::pickle).collect())).collect();
        let outbound: HashMap<&String, Value> = self
            .outbound
            .iter()
            .map(|(conversation, outbound)| {
                (
                    conversation,
                    json!({
                        "session": outbound.session.pickle(),
                        "target": outbound.target,
                        "shared_with": outbound.shared_with,
                        "created_at": outbound.created_at,
                        "sealed": outbound.sealed,
                    }),
                )
            })
            .collect();
        let inbound: HashMap<&String, Value> = self
            .inbound
            .iter()
            .map(|(id, inbound)| {
                (
                    id,
                    json!({
                        "session": inbound.session.pickle(),
                        "conversation_id": inbound.conversation_id,
                        "sender": inbound.sender,
                        "sender_device": inbound.sender_device,
                    }),
                )
            })
            .collect();
        json!({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "account": self.keys.account.pickle(),
            "olm": olm,
            "outbound": outbound,
            "inbound": inbound,
        })
    }

    pub fn from_json(value: Value) -> anyhow::Result<Crypto> {
        let text = |value: &Value, field: &str| value[field].as_str().map(str::to_string).context("a profile field");
        let account: AccountPickle = serde_json::from_value(value["account"].clone())?;
        let olm: HashMap<String, Vec<SessionPickle>> = serde_json::from_value(value["olm"].clone())?;
        let mut outbound = HashMap::new();
        for (conversation, entry) in value["outbound"].as_object().into_iter().flatten() {
            let session: GroupSessionPickle = serde_json::from_value(entry["session"].clone())?;
            outbound.insert(
                conversation.clone(),
                Outbound {
                    session: GroupSession::from_pickle(session),
                    target: serde_json::from_value(entry["target"].clone())?,
                    shared_with: serde_json::from_value(entry["shared_with"].clone())?,
                    created_at: entry["created_at"].as_i64().unwrap_or_default(),
                    sealed: entry["sealed"].as_u64().unwrap_or_default() as u32,
                },
            );
        }
        let mut inbound = HashMap::new();
        for (id, entry) in value["inbound"].as_object().into_iter().flatten() {
            let session: InboundGroupSessionPickle = serde_json::from_value(entry["session"].clone())?;
            inbound.insert(
                id.clone(),
                Inbound {
                    session: InboundGroupSession::from_pickle(session),
                    conversation_id: text(entry, "conversation_id")?,
                    sender: text(entry, "sender")?,
                    sender_device: text(entry, "sender_device")?,
                },
            );
        }
        Ok(Crypto {
            user_id: text(&value, "user_id")?,
            device_id: text(&value, "device_id")?,
            keys: DeviceKeys { account: Account::from_pickle(account) },
            olm: olm
                .into_iter()
                .map(|(key, sessions)| (key, sessions.into_iter().map(Session::from_pickle).collect()))
                .collect(),
            outbound,
            inbound,
        })
    }

    /// The signed upload body for `PUT /v1/keys`: `count` new one-time
    /// keys and a new fallback key (see [`DeviceKeys::upload_body`]).
    pub fn upload_body(&mut self, count: usize) -> Value {
        self.keys.upload_body(&self.user_id, &self.device_id, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(devices: &[(&str, &str)]) -> DeviceSet {
        let identity = Crypto::new("9", "9").identity();
        let mut set = DeviceSet::new();
        for (user, device) in devices {
            set.entry(user.to_string()).or_default().insert(device.to_string(), identity.clone());
        }
        set
    }

    #[test]
    fn a_session_rotates_after_100_messages_a_week_or_a_device_change() {
        let mut alice = Crypto::new("1", "10");
        let bob = set(&[("2", "20")]);
        let first = alice.prepare("c", &bob, 0).session_id;
        assert_eq!(alice.prepare("c", &bob, 1).session_id, first, "nothing changed: the same session");
        for _ in 0..ROTATE_AFTER_MESSAGES {
            alice.seal("c", &json!({"text": "x"})).expect("seal");
        }
        let second = alice.prepare("c", &bob, 2).session_id;
        assert_ne!(second, first, "after 100 messages");
        let third = alice.prepare("c", &bob, 2 + ROTATE_AFTER_MS).session_id;
        assert_ne!(third, second, "after a week");
        // Shared with bob's device, then bob adds one: a new session for both.
        let prepared = alice.prepare("c", &bob, 3 + ROTATE_AFTER_MS);
        assert_eq!(prepared.to_share, vec![("2".to_string(), "20".to_string())]);
        let both = set(&[("2", "20"), ("2", "21")]);
        let fourth = alice.prepare("c", &both, 4 + ROTATE_AFTER_MS);
        assert_ne!(fourth.session_id, third, "a device came");
        assert_eq!(fourth.to_share.len(), 2, "every device gets the new key");
    }

    #[test]
    fn only_the_devices_given_the_key_open_the_message_and_a_profile_round_trips() {
        let mut alice = Crypto::new("1", "10");
        let mut bob = Crypto::new("2", "20");
        let mut eve = Crypto::new("3", "30");
        let body = bob.upload_body(1);
        let identity = bob.identity();
        let devices: DeviceSet = [("2".to_string(), [("20".to_string(), identity.clone())].into())].into();
        alice.prepare("c", &devices, 0);
        alice.open_olm_session("2", "20", &identity, &body["one_time_keys"][0]).expect("a signed key");
        let entry = alice.share_entry("c", "2", "20", &identity).expect("share");
        let mut delivered = entry.clone();
        delivered["from"] = json!("1");
        delivered["from_device"] = json!("10");
        let mut bob = Crypto::from_json(bob.to_json()).expect("the profile loads");
        bob.receive_to_device(&delivered, &alice.identity()).expect("bob takes the key");
        let sealed = alice.seal("c", &json!({"text": "for bob"})).expect("seal");
        assert_eq!(bob.open("c", &sealed).expect("bob opens").payload["text"], "for bob");
        assert!(eve.open("c", &sealed).is_err(), "no key, no plaintext");
        assert!(bob.open("other", &sealed).is_err(), "a session is bound to its conversation");
        let forged = json!({"key_id": "x", "key": body["one_time_keys"][0]["key"], "signature": body["fallback_key"]["signature"]});
        assert!(alice.open_olm_session("2", "20", &identity, &forged).is_err(), "a badly signed key is refused");
    }
}
