//! The history projection: every message of a conversation by `conv_seq`,
//! and its members, for paged history and membership checks. Input
//! `events.conversation`. Also the directory projection of `events.user`:
//! which users exist and their devices.

use std::sync::Arc;

use missive_core::conversation::ConversationEvent;
use missive_core::users::UserEvent;
use missive_core::{DeviceId, UserId};
use missive_infra::Record;
use missive_schemas::Codec;

use crate::common::decode;
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::tx::Tx;

pub const HISTORY: &str = "history";
pub const DIRECTORY: &str = "directory";

pub struct HistoryHandler {
    pub codec: Arc<Codec>,
}

impl Handler for HistoryHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let event = ConversationEvent::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        if let ConversationEvent::MessageSent(message) = event {
            let members_key = keys::history_members(message.conversation_id);
            if tx.get(&members_key)?.is_none() {
                tx.put_json(members_key, &message.members)?;
            }
            tx.put_json(keys::history_message(message.conversation_id, message.conv_seq), &message)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DirectoryEntry {
    pub user_id: UserId,
    pub devices: Vec<DeviceId>,
}

pub struct DirectoryHandler {
    pub codec: Arc<Codec>,
}

impl Handler for DirectoryHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let event = UserEvent::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        let UserEvent::DeviceRegistered(registered) = event;
        let key = keys::directory(registered.user_id);
        let mut entry: DirectoryEntry =
            tx.get_json(&key)?.unwrap_or(DirectoryEntry { user_id: registered.user_id, devices: Vec::new() });
        if !entry.devices.contains(&registered.device_id) {
            entry.devices.push(registered.device_id);
        }
        tx.put_json(key, &entry)
    }
}
