//! The users processor: accounts and devices. Input `commands.user`;
//! outputs `events.user`, device announcements on `deliveries`, replies.

use std::sync::Arc;

use missive_core::Millis;
use missive_core::delivery::route_user_event;
use missive_core::users::{self, UserCommand, UserEvent, UserState};
use missive_infra::Record;
use missive_schemas::Codec;
use missive_schemas::convert::{delivery_to_wire, user_event_to_wire};

use crate::common::{decode, long, output, reply};
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::topics::{DELIVERIES, EVENTS_USER};
use crate::tx::Tx;

pub const PROCESSOR: &str = "users";

pub struct UsersHandler {
    pub codec: Arc<Codec>,
}

impl Handler for UsersHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let command = UserCommand::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        let UserCommand::RegisterDevice(register) = &command;
        let state_key = keys::user(register.user_id);
        let mut state: UserState = tx.get_json(&state_key)?.unwrap_or_default();
        let events = users::decide(&state, &command, Millis(tx.timestamp));
        for event in &events {
            state = users::evolve(state, event);
            let UserEvent::DeviceRegistered(registered) = event;
            tx.emit(output(&self.codec, record, EVENTS_USER, registered.user_id.0, &user_event_to_wire(event))?);
            for delivery in route_user_event(event) {
                tx.emit(output(&self.codec, record, DELIVERIES, delivery.recipient.0, &delivery_to_wire(&delivery))?);
            }
        }
        if !events.is_empty() {
            tx.put_json(state_key, &state)?;
        }
        if let Some(reply) = reply(&self.codec, record, |reply| {
            reply.outcome = if events.is_empty() { "duplicate" } else { "accepted" }.into();
            reply.user_id = Some(long(register.user_id.0));
            reply.device_id = Some(long(register.device_id.0));
        })? {
            tx.emit(reply);
        }
        Ok(())
    }
}
