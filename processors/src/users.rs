//! The users processor: accounts, devices, profile, privacy, blocks,
//! contacts, PIN, and each device's public keys (uploads and one-time key
//! claims). Input `commands.user`; outputs `events.user`, device changes on
//! `deliveries`, block changes on `commands.conversation`, replies.

use std::sync::Arc;

use missive_core::conversation::{ConversationCommand, SetBlock};
use missive_core::delivery::route_user_event;
use missive_core::keys::share::{ShareKeys, decide_share};
use missive_core::keys::{self as device_keys, DeviceKeys, KeysCommand, KeysEvent};
use missive_core::users::{self, UserCommand, UserEvent, UserState};
use missive_core::{ConversationId, Millis};
use missive_infra::{Header, Record};
use missive_schemas::wire::ClaimedKey;
use missive_schemas::{Codec, Outcome, RecordType, WireValue};

use crate::common::{Replier, decode, output};
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::topics::{COMMANDS_CONVERSATION, DELIVERIES, EVENTS_USER, headers};
use crate::tx::Tx;

pub const PROCESSOR: &str = "users";

pub struct UsersHandler {
    pub codec: Arc<Codec>,
    pub replies: Replier,
}

impl Handler for UsersHandler {
    fn after_commit(&mut self) {
        self.replies.deliver();
    }

    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let value = decode(&self.codec, record)?;
        if matches!(value.record_type(), RecordType::UploadKeys | RecordType::ClaimKey) {
            let command = KeysCommand::try_from(value).map_err(|error| HandleError::Poison(error.to_string()))?;
            return self.handle_keys(tx, record, &command);
        }
        if value.record_type() == RecordType::ShareKeys {
            let share = ShareKeys::try_from(value).map_err(|error| HandleError::Poison(error.to_string()))?;
            return self.handle_share(tx, record, &share);
        }
        let command = UserCommand::try_from(value).map_err(|error| HandleError::Poison(error.to_string()))?;
        let user_id = command.user_id();
        let state_key = keys::user(user_id);
        let mut state: UserState = tx.get_value(&state_key)?.unwrap_or_default();
        let events = match users::decide(&state, &command, Millis(tx.timestamp)) {
            Ok(events) => events,
            Err(rejection) => {
                return self.refuse(tx, record, user_id, Outcome::from(&rejection), rejection.to_string());
            }
        };
        // A block is answered by the conversation processor once it applies
        // it, so that a client told "blocked" is never sent another message.
        let mut answered_downstream = false;
        for event in &events {
            state = users::evolve(state, event);
            self.emit_event(tx, record, event)?;
            if let UserEvent::DeviceRemoved { device_id, .. } = event {
                tx.delete(keys::device_keys(user_id, *device_id));
            }
            if let UserEvent::BlockChanged { user_id, target, blocked, .. } = event {
                let conversation_id = ConversationId::direct(*user_id, *target);
                let command = ConversationCommand::Block(SetBlock {
                    conversation_id,
                    blocker: *user_id,
                    target: *target,
                    blocked: *blocked,
                });
                let mut out =
                    output(&self.codec, record, COMMANDS_CONVERSATION, conversation_id.0, &WireValue::from(&command))?;
                if let Some(address) = record.header(headers::REPLY_TO) {
                    out.headers.push(Header { key: headers::REPLY_TO.into(), value: address.to_vec() });
                    answered_downstream = true;
                }
                tx.emit(out);
            }
        }
        if !events.is_empty() {
            tx.put_value(state_key, &state)?;
        }
        if answered_downstream {
            return Ok(());
        }
        self.replies.answer(tx, record, |reply| {
            reply.set_outcome(if events.is_empty() { Outcome::Duplicate } else { Outcome::Accepted });
            reply.user_id = Some(user_id);
            if let UserCommand::RegisterDevice(register) = &command {
                reply.device_id = Some(register.device_id);
            }
        })?;
        Ok(())
    }
}

impl UsersHandler {
    /// Writes a decided event to `events.user` and its deliveries to the inboxes it reaches.
    fn emit_event(&self, tx: &mut Tx<'_>, record: &Record, event: &UserEvent) -> Result<(), HandleError> {
        tx.emit(output(&self.codec, record, EVENTS_USER, event.user_id().0, &WireValue::from(event))?);
        for delivery in route_user_event(event) {
            tx.emit(output(&self.codec, record, DELIVERIES, delivery.recipient.0, &WireValue::from(&delivery))?);
        }
        Ok(())
    }

    fn refuse(
        &mut self,
        tx: &mut Tx<'_>,
        record: &Record,
        user_id: missive_core::UserId,
        outcome: Outcome,
        detail: String,
    ) -> Result<(), HandleError> {
        self.replies.answer(tx, record, |reply| {
            reply.set_outcome(outcome);
            reply.detail = detail;
            reply.user_id = Some(user_id);
        })
    }

    /// Olm messages for some devices of one user: one delivery each to the
    /// devices the account has (none if it blocked the sender).
    fn handle_share(&mut self, tx: &mut Tx<'_>, record: &Record, share: &ShareKeys) -> Result<(), HandleError> {
        let account: UserState = tx.get_value(&keys::user(share.user_id))?.unwrap_or_default();
        let shared = decide_share(&account, share, Millis(tx.timestamp));
        for delivery in &shared.deliveries {
            tx.emit(output(&self.codec, record, DELIVERIES, delivery.recipient.0, &WireValue::from(delivery))?);
        }
        self.replies.answer(tx, record, |reply| {
            reply.set_outcome(Outcome::Accepted);
            reply.user_id = Some(share.user_id);
        })
    }

    /// An upload or a claim of one device's keys: decided against the
    /// device's key store, one command after another, so a one-time key is
    /// handed out once. A claim's reply carries the key.
    fn handle_keys(&mut self, tx: &mut Tx<'_>, record: &Record, command: &KeysCommand) -> Result<(), HandleError> {
        let (user_id, device_id) = (command.user_id(), command.device_id());
        let account: UserState = tx.get_value(&keys::user(user_id))?.unwrap_or_default();
        let store_key = keys::device_keys(user_id, device_id);
        let stored: DeviceKeys = tx.get_value(&store_key)?.unwrap_or_default();
        let decided = device_keys::decide(account.has_device(device_id), &stored, command, Millis(tx.timestamp));
        let event = match decided {
            Ok(event) => event,
            Err(rejection) => {
                return self.refuse(tx, record, user_id, Outcome::from(&rejection), rejection.to_string());
            }
        };
        let claimed = match &event {
            Some(KeysEvent::Claimed(key)) => Some(ClaimedKey::from(key)),
            _ => None,
        };
        if let Some(event) = &event {
            tx.put_value(store_key, &device_keys::evolve(stored, event))?;
            self.emit_event(tx, record, &UserEvent::from(event.clone()))?;
        }
        let decided = event.is_some();
        self.replies.answer(tx, record, |reply| {
            reply.set_outcome(if decided { Outcome::Accepted } else { Outcome::Duplicate });
            reply.user_id = Some(user_id);
            reply.device_id = Some(device_id);
            reply.claimed_key = claimed;
        })
    }
}
