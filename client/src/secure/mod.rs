//! An end-to-end encrypting device over a real server: what a mobile app's
//! networking layer does. It publishes its keys, keeps the devices of the
//! people it talks to, shares each conversation's Megolm session key with
//! exactly the devices the server lists (answering `device_mismatch` by
//! sharing with the missing devices and resending with the same
//! `client_msg_id`), seals what it sends and opens what it receives.
//! With a profile directory its state survives restarts (owner-only files).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::crypto::{Crypto, DeviceSet, Identity, device_ids};

mod attachments;
mod inbox;
use crate::{Account, Api, Connection};

/// One-time keys a device publishes at first, and again when told it runs low.
pub const KEY_BATCH: usize = 50;
/// Resends after `device_mismatch` before giving up (each shares with the missing devices).
const MISMATCH_RETRIES: usize = 3;

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum To {
    User(String),
    Group(String),
}

/// A feed entry as the device understood it.
#[derive(Clone, Debug)]
pub enum Received {
    /// A message it could open: the sealed payload (`{"text": ..}` and more).
    Message { entry: Value, payload: Value },
    /// A message it holds no key for (or that failed to open).
    Unreadable { entry: Value, error: String },
    /// Anything else (receipts, group changes, edits, ...), as sent.
    Other(Value),
}

pub struct SecureDevice {
    pub api: Api,
    pub account: Account,
    pub crypto: Crypto,
    pub connection: Connection,
    ws_url: String,
    profile: Option<PathBuf>,
    /// Identities of other devices, by (user, device).
    identities: HashMap<(String, String), Identity>,
    /// The end-to-end devices of each user talked to, as last fetched: a
    /// send uses these until the server says they changed.
    known: HashMap<String, BTreeMap<String, Identity>>,
    /// Every `device_mismatch` answer this device got (what it missed).
    pub mismatches: Vec<Value>,
    /// Every `devices_changed` entry (a contact's "security code changed").
    pub device_changes: Vec<Value>,
    /// The last feed seq handled (acked).
    seq: u64,
    /// Entries handled while waiting for an answer, not yet taken by [`SecureDevice::receive_until`].
    pending: Vec<Received>,
}

/// Writes `text` to `path` readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

impl SecureDevice {
    /// A registered device: publishes fresh keys and connects.
    pub async fn start(api: Api, ws_url: &str, account: Account) -> anyhow::Result<SecureDevice> {
        let mut crypto = Crypto::new(&account.user_id, &account.device_id);
        let body = crypto.upload_body(KEY_BATCH);
        let (status, answer) = api.put("/v1/keys", Some(&account.access_token), &body).await?;
        if status != 200 {
            bail!("key upload answered {status}: {answer}");
        }
        let connection = Connection::open(ws_url, &account.access_token, None).await?;
        Ok(SecureDevice::assemble((api, ws_url), account, crypto, connection, None, 0))
    }

    fn assemble(
        (api, ws_url): (Api, &str),
        account: Account,
        crypto: Crypto,
        connection: Connection,
        profile: Option<PathBuf>,
        seq: u64,
    ) -> SecureDevice {
        SecureDevice {
            api,
            account,
            crypto,
            connection,
            ws_url: ws_url.to_string(),
            profile,
            identities: HashMap::new(),
            known: HashMap::new(),
            mismatches: Vec::new(),
            device_changes: Vec::new(),
            seq,
            pending: Vec::new(),
        }
    }

    /// Keeps the device's state in `dir` (created owner-only), written after every change.
    pub fn with_profile(mut self, dir: &Path) -> anyhow::Result<SecureDevice> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        self.profile = Some(dir.to_path_buf());
        self.save()?;
        Ok(self)
    }

    /// A device from its profile directory, connected again and resuming its feed.
    pub async fn resume(api: Api, ws_url: &str, dir: &Path) -> anyhow::Result<SecureDevice> {
        let text = std::fs::read_to_string(dir.join("device.json")).context("no device profile there")?;
        let saved: Value = serde_json::from_str(&text)?;
        let field = |name: &str| saved["account"][name].as_str().map(str::to_string).context("a profile field");
        let account = Account {
            phone: field("phone")?,
            user_id: field("user_id")?,
            device_id: field("device_id")?,
            access_token: field("access_token")?,
            refresh_token: field("refresh_token")?,
        };
        let crypto = Crypto::from_json(saved["crypto"].clone())?;
        let seq = saved["seq"].as_u64().unwrap_or_default();
        let epoch = saved["epoch"].as_str().unwrap_or_default().to_string();
        let resume = (!epoch.is_empty()).then_some((epoch.as_str(), seq));
        let mut account = account;
        let connection = match Connection::open(ws_url, &account.access_token, resume).await {
            Ok(connection) => connection,
            // The access token expired while the device was away: a fresh pair.
            Err(_) => {
                let (status, body) =
                    api.post("/v1/auth/refresh", None, &json!({"refresh_token": account.refresh_token})).await?;
                if status != 200 {
                    bail!("this device's session ended ({status}: {body}); register again");
                }
                let token = |name: &str| body[name].as_str().map(str::to_string).context("a token");
                account.access_token = token("access_token")?;
                account.refresh_token = token("refresh_token")?;
                Connection::open(ws_url, &account.access_token, resume).await?
            }
        };
        let device = SecureDevice::assemble((api, ws_url), account, crypto, connection, Some(dir.to_path_buf()), seq);
        device.save()?;
        Ok(device)
    }

    /// Writes the device's state to its profile directory, if it has one.
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.profile else { return Ok(()) };
        let account = &self.account;
        let saved = json!({
            "account": {
                "phone": account.phone, "user_id": account.user_id, "device_id": account.device_id,
                "access_token": account.access_token, "refresh_token": account.refresh_token,
            },
            "crypto": self.crypto.to_json(),
            "epoch": self.connection.welcome["epoch"],
            "seq": self.seq,
        });
        write_private(&dir.join("device.json"), &saved.to_string())
    }

    /// Opens a new connection (after the server closed the old one).
    pub async fn reconnect(&mut self) -> anyhow::Result<()> {
        let epoch = self.connection.welcome["epoch"].as_str().unwrap_or_default().to_string();
        let resume = (!epoch.is_empty()).then_some((epoch.as_str(), self.seq));
        self.connection = Connection::open(&self.ws_url, &self.account.access_token, resume).await?;
        Ok(())
    }

    /// The end-to-end devices of `user` (those with published identity keys).
    pub async fn devices_of(&mut self, user: &str) -> anyhow::Result<BTreeMap<String, Identity>> {
        let path = format!("/v1/users/{user}/devices");
        let (status, body) = self.api.get(&path, Some(&self.account.access_token)).await?;
        if status != 200 {
            bail!("devices of {user} answered {status}: {body}");
        }
        let mut devices = BTreeMap::new();
        for device in body["devices"].as_array().into_iter().flatten() {
            let (Some(id), Some(curve25519), Some(ed25519)) = (
                device["device_id"].as_str(),
                device["identity_keys"]["curve25519"].as_str(),
                device["identity_keys"]["ed25519"].as_str(),
            ) else {
                continue;
            };
            let identity = Identity { curve25519: curve25519.into(), ed25519: ed25519.into() };
            self.identities.insert((user.to_string(), id.to_string()), identity.clone());
            devices.insert(id.to_string(), identity);
        }
        Ok(devices)
    }

    /// A device's identity, from the cache or the server.
    async fn identity_of(&mut self, user: &str, device: &str) -> anyhow::Result<Identity> {
        if let Some(identity) = self.identities.get(&(user.to_string(), device.to_string())) {
            return Ok(identity.clone());
        }
        self.devices_of(user).await?.remove(device).ok_or_else(|| anyhow!("device {device} of {user} has no keys"))
    }

    /// Every end-to-end device of `members` but this one, as known.
    async fn device_set(&mut self, members: &[String]) -> anyhow::Result<DeviceSet> {
        let mut set = DeviceSet::new();
        for member in members {
            let mut devices = match self.known.get(member) {
                Some(devices) => devices.clone(),
                None => {
                    let devices = self.devices_of(member).await?;
                    self.known.insert(member.clone(), devices.clone());
                    devices
                }
            };
            if *member == self.account.user_id {
                devices.remove(&self.account.device_id);
            }
            set.insert(member.clone(), devices);
        }
        Ok(set)
    }

    /// The members of a conversation: both sides of a chat, or the group's.
    async fn members(&self, to: &To) -> anyhow::Result<Vec<String>> {
        match to {
            To::User(user) => Ok(vec![self.account.user_id.clone(), user.clone()]),
            To::Group(group) => {
                let (status, body) =
                    self.api.get(&format!("/v1/groups/{group}"), Some(&self.account.access_token)).await?;
                if status != 200 {
                    bail!("group {group} answered {status}: {body}");
                }
                Ok(body["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect())
            }
        }
    }

    /// The conversation a target names (a chat's id is derived from the two users).
    pub fn conversation_of(&self, to: &To) -> anyhow::Result<String> {
        match to {
            To::User(user) => {
                let me = missive_core::UserId(self.account.user_id.parse()?);
                let them = missive_core::UserId(user.parse()?);
                Ok(missive_core::ConversationId::direct(me, them).to_string())
            }
            To::Group(group) => Ok(group.clone()),
        }
    }

    /// Gives the conversation's session key to the devices not given it yet.
    async fn share(&mut self, conversation: &str, devices: &DeviceSet) -> anyhow::Result<()> {
        let prepared = self.crypto.prepare(conversation, devices, crate::now_ms());
        if prepared.to_share.is_empty() {
            return Ok(());
        }
        let mut messages = Vec::new();
        for (user, device) in prepared.to_share {
            let identity = devices[&user][&device].clone();
            if !self.crypto.has_olm_session(&identity) {
                let claim = json!({"user_id": user, "device_id": device});
                let (status, body) = self.api.post("/v1/keys/claim", Some(&self.account.access_token), &claim).await?;
                if status != 200 {
                    bail!("claiming a key of {user}/{device} answered {status}: {body}");
                }
                self.crypto.open_olm_session(&user, &device, &identity, &body["one_time_key"])?;
            }
            messages.push(self.crypto.share_entry(conversation, &user, &device, &identity)?);
        }
        let req = format!("share-{}", crate::now_ms());
        // Naming the conversation lets keys for a group reach members who blocked this user.
        let frame = json!({"type": "share_keys", "req": req, "messages": messages, "conversation_id": conversation});
        self.connection.send_json(&frame).await?;
        let answer = self.answer(&req).await?;
        if answer["type"] != "shared" {
            bail!("share_keys answered {answer}");
        }
        self.save()
    }

    /// Sends `payload` (`{"text": ..}`, plus whatever else the message
    /// carries) sealed; `extra` are further fields of the send frame
    /// (`media`, `reply_to`, `forward_of`). Returns the `sent` answer.
    pub async fn send(&mut self, to: &To, client_msg_id: &str, payload: &Value, extra: Value) -> anyhow::Result<Value> {
        let conversation = self.conversation_of(to)?;
        let members = self.members(to).await?;
        let mut devices = self.device_set(&members).await?;
        for _attempt in 0..=MISMATCH_RETRIES {
            self.share(&conversation, &devices).await?;
            let mut encrypted = self.crypto.seal(&conversation, payload)?;
            encrypted["devices"] = json!(self.crypto.shared_with(&conversation));
            let req = format!("send-{client_msg_id}");
            let mut frame = json!({"type": "send", "req": req, "client_msg_id": client_msg_id, "encrypted": encrypted});
            frame["to"] = match to {
                To::User(user) => json!({"user": user}),
                To::Group(group) => json!({"group": group}),
            };
            for (field, value) in extra.as_object().into_iter().flatten() {
                frame[field] = value.clone();
            }
            self.connection.send_json(&frame).await?;
            let answer = self.answer(&req).await?;
            self.save()?;
            if answer["code"] != "device_mismatch" {
                return Ok(answer);
            }
            self.mismatches.push(answer.clone());
            // The server knows better: take its lists (fresh identities for
            // the missing devices) and share a new session with exactly them.
            for user in answer["missing"].as_object().into_iter().flatten().map(|(user, _)| user.clone()) {
                let mut current = self.devices_of(&user).await?;
                self.known.insert(user.clone(), current.clone());
                if user == self.account.user_id {
                    current.remove(&self.account.device_id);
                }
                devices.insert(user, current);
            }
            for (user, stale) in answer["stale"].as_object().into_iter().flatten() {
                for device in stale.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    for set in [devices.get_mut(user), self.known.get_mut(user)].into_iter().flatten() {
                        set.remove(device);
                    }
                }
            }
            devices.retain(|user, _| members.contains(user) || answer["missing"].get(user).is_some());
        }
        bail!("the device set kept changing while sending {client_msg_id}; last known: {:?}", device_ids(&devices))
    }

    /// An edit or reaction sealed for the conversation: the `encrypted`
    /// object of an `edit` or `react` frame.
    pub async fn seal_for(&mut self, to: &To, payload: &Value) -> anyhow::Result<Value> {
        let conversation = self.conversation_of(to)?;
        let members = self.members(to).await?;
        let devices = self.device_set(&members).await?;
        self.share(&conversation, &devices).await?;
        self.crypto.seal(&conversation, payload)
    }
}
