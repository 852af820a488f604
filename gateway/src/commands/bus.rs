//! Turning client intents into commands on the log. The gateway validates
//! what it can cheaply (shape, sizes, recipient exists, membership), mints
//! the message id, appends, and for sends waits for the conversation
//! processor's outcome so that `sent` carries the final message id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_core::conversation::{ConversationCommand, MarkReceipt, ReceiptStatus, SendMessage};
use missive_core::delivery::{Delivery, DeliveryItem};
use missive_core::groups::GroupCommand;
use missive_core::keys::KeysCommand;
use missive_core::keys::share::ShareKeys;
use missive_core::operations::ModifyMessage;
use missive_core::users::{RegisterDevice, UserCommand};
use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};
use missive_infra::{Clock, Header, Log, OutRecord};
use missive_processors::topics::{COMMANDS_CONVERSATION, COMMANDS_USER, DELIVERIES, headers};
use missive_schemas::wire::CommandReply;
use missive_schemas::{Codec, WireValue};

use super::outcomes::{Subject, carried_out};
use super::replies::{PendingReply, ReplyRouter};
use super::snowflake::Snowflakes;
use crate::auth::Principal;
use crate::metrics::GatewayMetrics;
use crate::protocol::ApiError;

/// Whom a message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    User(UserId),
    Group(ConversationId),
}

/// What a send carries besides its target.
pub struct Outgoing {
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<MessageId>,
    pub forward_count: u32,
    pub attachment: Option<missive_core::media::Attachment>,
    /// The Megolm session of an encrypted `content`.
    pub session_id: Option<String>,
}

/// How long a client waits for a command's outcome before being told to retry.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for a submitted command's outcome.
pub async fn wait_reply(pending: PendingReply) -> Result<CommandReply, ApiError> {
    pending
        .wait(REPLY_TIMEOUT)
        .await
        .ok_or_else(|| ApiError::unavailable("no outcome yet; retry with the same client_msg_id"))
}

pub struct CommandBus {
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    replies: Arc<ReplyRouter>,
    snowflakes: Snowflakes,
    metrics: GatewayMetrics,
    clock: Clock,
}

impl CommandBus {
    pub fn new(
        log: Arc<dyn Log>,
        codec: Arc<Codec>,
        replies: Arc<ReplyRouter>,
        node: u16,
        metrics: GatewayMetrics,
        clock: Clock,
    ) -> CommandBus {
        CommandBus { log, codec, replies, snowflakes: Snowflakes::new(node, clock.clone()), metrics, clock }
    }

    /// The gateway's clock: what its commands and ids are stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    async fn append(
        &self,
        topic: &str,
        key: u64,
        value: &WireValue,
        reply: Option<&PendingReply>,
    ) -> Result<(), ApiError> {
        let value = self.codec.encode_value(value).map_err(|error| ApiError::internal(error.to_string()))?;
        let mut record_headers = Vec::new();
        if let Some(reply) = reply {
            record_headers.push(Header { key: headers::REPLY_TO.into(), value: reply.address() });
        }
        let record = OutRecord {
            topic: topic.to_string(),
            partition: None,
            key: key.to_string().into_bytes(),
            value,
            headers: record_headers,
            timestamp: None,
        };
        let started = Instant::now();
        let result = self.log.append(vec![record]).await;
        self.metrics.append_latency.observe(started.elapsed().as_secs_f64());
        result
            .map(|_| ())
            .map_err(|error| ApiError::unavailable(format!("the log refused the command ({error}); retry")))
    }

    /// Appends a command whose outcome someone waits for.
    async fn submit(&self, topic: &str, key: u64, value: &WireValue) -> Result<PendingReply, ApiError> {
        let pending = self.replies.register();
        self.append(topic, key, value, Some(&pending)).await?;
        Ok(pending)
    }

    async fn command_with_reply(&self, topic: &str, key: u64, value: &WireValue) -> Result<CommandReply, ApiError> {
        wait_reply(self.submit(topic, key, value).await?).await
    }

    pub async fn register_device(
        &self,
        user: UserId,
        device: DeviceId,
        device_name: String,
    ) -> Result<CommandReply, ApiError> {
        self.user_command(UserCommand::RegisterDevice(RegisterDevice { user_id: user, device_id: device, device_name }))
            .await
    }

    /// Appends a users command and waits for its outcome; a refusal becomes
    /// the matching client error.
    pub async fn user_command(&self, command: UserCommand) -> Result<CommandReply, ApiError> {
        let key = command.user_id().0;
        let reply = self.command_with_reply(COMMANDS_USER, key, &WireValue::from(&command)).await?;
        carried_out(reply, Subject::Account)
    }

    /// Appends a key upload or claim (keyed by the keys' owner) and waits
    /// for its outcome; a claim's reply carries the key.
    pub async fn keys_command(&self, command: &KeysCommand) -> Result<CommandReply, ApiError> {
        let reply = self.command_with_reply(COMMANDS_USER, command.user_id().0, &WireValue::from(command)).await?;
        carried_out(reply, Subject::Account)
    }

    /// Appends Olm messages for some devices of one user (keyed by that
    /// user); the reply says they are in the recipient's inbox.
    pub async fn submit_share(&self, share: &ShareKeys) -> Result<PendingReply, ApiError> {
        self.submit(COMMANDS_USER, share.user_id.0, &WireValue::from(share)).await
    }

    /// Appends a users command nobody waits for (last seen).
    pub async fn record_user_command(&self, command: UserCommand) -> Result<(), ApiError> {
        let key = command.user_id().0;
        self.append(COMMANDS_USER, key, &WireValue::from(&command), None).await
    }

    /// A fresh device id (Snowflake, like message ids).
    pub fn mint_device_id(&self) -> DeviceId {
        DeviceId(self.snowflakes.next().0)
    }

    /// A fresh group conversation id (Snowflake).
    pub fn mint_conversation_id(&self) -> ConversationId {
        ConversationId(self.snowflakes.next().0)
    }

    /// Appends a group change and waits for the conversation processor's decision.
    pub async fn group_command(&self, command: GroupCommand) -> Result<CommandReply, ApiError> {
        let key = command.conversation_id.0;
        let wire = WireValue::from(&ConversationCommand::Group(command));
        let reply = self.command_with_reply(COMMANDS_CONVERSATION, key, &wire).await?;
        carried_out(reply, Subject::Group)
    }

    /// Appends a send; the returned reply says `accepted` or `duplicate`
    /// (with the message id) or why it was refused. Appending before
    /// returning keeps a connection's sends in the order it sent them.
    pub async fn submit_send(&self, from: Principal, to: Target, outgoing: Outgoing) -> Result<PendingReply, ApiError> {
        let (conversation_id, to) = match to {
            Target::User(user) => (ConversationId::direct(from.user, user), user),
            // Groups have no single recipient: 0 on the wire; the decider checks membership.
            Target::Group(group) => (group, UserId(0)),
        };
        let command = ConversationCommand::Send(SendMessage {
            conversation_id,
            message_id: self.snowflakes.next(),
            from: from.user,
            from_device: from.device,
            to,
            client_msg_id: outgoing.client_msg_id,
            content: outgoing.content,
            reply_to: outgoing.reply_to,
            forward_count: outgoing.forward_count,
            attachment: outgoing.attachment,
            session_id: outgoing.session_id,
        });
        self.submit(COMMANDS_CONVERSATION, conversation_id.0, &WireValue::from(&command)).await
    }

    /// Appends an operation on a message; [`carried_out`] reads its reply.
    pub async fn submit_modify(&self, command: ModifyMessage) -> Result<PendingReply, ApiError> {
        let key = command.conversation_id.0;
        self.submit(COMMANDS_CONVERSATION, key, &WireValue::from(&ConversationCommand::Modify(command))).await
    }

    /// Appends a live typing signal for the other members (not awaited by anyone).
    pub async fn typing(
        &self,
        by: Principal,
        conversation_id: ConversationId,
        state: missive_schemas::wire::TypingState,
        recipients: &[UserId],
        expires_at: Millis,
    ) -> Result<(), ApiError> {
        let typing = missive_schemas::wire::Typing {
            conversation_id,
            from: by.user,
            from_device: by.device,
            state,
            recipients: recipients.to_vec(),
            expires_at,
        };
        self.append(missive_processors::topics::EPHEMERAL, conversation_id.0, &WireValue::Typing(typing), None).await
    }

    pub async fn ack(&self, by: Principal, seq: FeedSeq) -> Result<(), ApiError> {
        let delivery = Delivery { recipient: by.user, item: DeliveryItem::DeviceAcked { device_id: by.device, seq } };
        self.append(DELIVERIES, by.user.0, &WireValue::from(&delivery), None).await
    }

    /// A read mark; `notify` false when read receipts are off for the chat.
    pub async fn read(
        &self,
        by: Principal,
        conversation_id: ConversationId,
        up_to: ConvSeq,
        notify: bool,
    ) -> Result<(), ApiError> {
        let command = ConversationCommand::Receipt(MarkReceipt {
            conversation_id,
            by: by.user,
            status: ReceiptStatus::Read,
            up_to,
            notify,
        });
        self.append(COMMANDS_CONVERSATION, conversation_id.0, &WireValue::from(&command), None).await
    }
}
