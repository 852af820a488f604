//! Reading conversations over HTTP: the conversation list, a page of
//! history, and a message's receipts ("message info").

use std::convert::Infallible;

use missive_core::conversation::ReceiptStatus;
use missive_core::{ConvSeq, ConversationId, MessageId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use crate::auth::Principal;
use crate::protocol::{ApiError, history_json, summary_json};
use crate::reads::{Projection, require_member};
use crate::rest::{Context, ok, parse_id, reply_json, respond, with};

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<String>,
}

async fn list_conversations(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(context.reads.conversations(principal.user, 500).await.map(|summaries| {
        reply_json(StatusCode::OK, json!({"conversations": summaries.iter().map(summary_json).collect::<Vec<_>>()}))
    }))
}

async fn history(
    conversation: String,
    principal: Principal,
    query: HistoryQuery,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation: ConversationId = parse_id(&conversation, "conversation id")?;
            let limit = match query.limit.as_deref() {
                None => 50,
                Some(text) => match text.parse::<usize>() {
                    Ok(limit) if (1..=100).contains(&limit) => limit,
                    _ => return Err(ApiError::bad_request("bad_request", "limit must be 1..100")),
                },
            };
            let before = match query.before.as_deref() {
                None => None,
                Some(text) => Some(ConvSeq(
                    text.parse()
                        .map_err(|_| ApiError::bad_request("bad_request", "before must be a conv_seq number"))?,
                )),
            };
            // A page shows everything the log held when it was asked for,
            // whichever gateway folded it first (a read barrier).
            context.reads.barrier(Projection::History, [conversation.0]).await?;
            require_member(&context.reads, principal.user, conversation).await?;
            let messages = context.reads.history(conversation, principal.user, before, limit).await?;
            // A group's history before the caller joined is shown only if the group allows it.
            let earlier_history = match context.reads.group(conversation).await? {
                Some(group) => group.group.settings.history_for_new_members,
                None => true,
            };
            let caller = principal.user;
            let visible = messages.iter().filter(|entry| {
                let message = &entry.message;
                // Messages from someone the caller blocked were never delivered to it.
                !message.withheld_from.contains(&caller) && (earlier_history || message.members.contains(&caller))
            });
            // Reactions and edits withheld from the caller (a chat member it blocked) stay hidden.
            ok(json!({"messages": visible.map(|entry| history_json(&entry.seen_by(caller))).collect::<Vec<_>>()}))
        }
        .await,
    )
}

/// Who got and who read one of the caller's messages, and when (WhatsApp's
/// "message info"): from the members' watermark advances, not a row per
/// member and message. Only the sender may ask.
async fn receipts(
    conversation: String,
    message: String,
    principal: Principal,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation: ConversationId = parse_id(&conversation, "conversation id")?;
            let message_id: MessageId = parse_id(&message, "message id")?;
            // Every receipt the log held when asked for is listed (a read barrier).
            context.reads.barrier(Projection::History, [conversation.0]).await?;
            require_member(&context.reads, principal.user, conversation).await?;
            let missing = || ApiError::not_found("not_found", "no such message among yours");
            let found = context.reads.message_fresh(conversation, message_id).await?.ok_or_else(missing)?;
            let message = &found.message;
            if message.from != principal.user {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "only the sender sees a message's receipts",
                ));
            }
            let recipients: Vec<UserId> = message.recipients().collect();
            // With read receipts off on either side of a 1:1 chat, no read time is shown.
            let statuses: &[ReceiptStatus] = if context.reads.read_receipts_on(conversation).await? {
                &[ReceiptStatus::Delivered, ReceiptStatus::Read]
            } else {
                &[ReceiptStatus::Delivered]
            };
            let mut lists = Vec::new();
            for &status in statuses {
                let reached = context.reads.reached(conversation, recipients.clone(), status, message.conv_seq).await?;
                let list: Vec<Value> = reached
                    .into_iter()
                    .filter_map(|(user, at)| at.map(|at| json!({"user": user.to_string(), "at": at.0})))
                    .collect();
                lists.push(list);
            }
            let mut lists = lists.into_iter();
            let (delivered, read) = (lists.next().unwrap_or_default(), lists.next().unwrap_or_default());
            ok(json!({
                "conversation_id": conversation.to_string(),
                "message_id": message_id.to_string(),
                "recipients": recipients.len(),
                "delivered": delivered,
                "read": read,
            }))
        }
        .await,
    )
}

/// `/v1/conversations`, a conversation's messages, and a message's receipts.
pub fn routes(context: Context) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = crate::rest::served(context.clone());
    let ctx = move || with(context.clone());
    let conversations = warp::path!("v1" / "conversations")
        .and(warp::get())
        .and(served.clone())
        .and(ctx())
        .and_then(list_conversations)
        .boxed();
    let receipts = warp::path!("v1" / "conversations" / String / "messages" / String / "receipts")
        .and(warp::get())
        .and(served.clone())
        .and(ctx())
        .and_then(receipts)
        .boxed();
    let messages = warp::path!("v1" / "conversations" / String / "messages")
        .and(warp::get())
        .and(served)
        .and(warp::query::<HistoryQuery>())
        .and(ctx())
        .and_then(history)
        .boxed();
    vec![receipts, conversations, messages]
}
