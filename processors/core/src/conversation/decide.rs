//! The decider and the fold: sends, receipts and blocks decided against
//! the conversation's state; events folded into it.

use crate::ids::{ConvSeq, ConversationId, Millis, UserId};

use super::model::*;
use crate::delivery::{Delivery, DeliveryItem};

/// Decides a send. `prior` is the earlier send with the same
/// `(from_device, client_msg_id)` if the shell found one.
pub fn decide_send(
    state: &ConversationState,
    send: &SendMessage,
    prior: Option<PriorSend>,
    now: Millis,
) -> Result<(SendOutcome, Vec<ConversationEvent>), Rejection> {
    if send.content.len() > body_limit(send.session_id.is_some()) {
        return Err(Rejection::TooLarge);
    }
    if send.client_msg_id.is_empty() || send.client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(Rejection::BadClientMsgId);
    }
    if let Some(group) = &state.group {
        if state.members.binary_search(&send.from).is_err() {
            return Err(Rejection::NotMember);
        }
        if group.settings.only_admins_send && !group.admins.contains(&send.from) {
            return Err(Rejection::Forbidden);
        }
    } else if ConversationId::direct(send.from, send.to) != send.conversation_id {
        return Err(Rejection::WrongConversation);
    }
    if !state.members.is_empty() && state.members.binary_search(&send.from).is_err() {
        return Err(Rejection::NotMember);
    }
    if let Some(prior) = prior
        && now.0 - prior.at.0 <= DEDUPE_WINDOW_MS
    {
        let outcome = SendOutcome::Duplicate { message_id: prior.message_id, conv_seq: prior.conv_seq };
        return Ok((outcome, Vec::new()));
    }
    let members = if state.members.is_empty() {
        let mut members = vec![send.from, send.to];
        members.sort();
        members.dedup();
        members
    } else {
        state.members.clone()
    };
    let conv_seq = state.last_seq.next();
    let withheld_from =
        if state.blocked_by.contains(&send.to) && send.to != send.from { vec![send.to] } else { Vec::new() };
    let event = MessageSent {
        conversation_id: send.conversation_id,
        conv_seq,
        message_id: send.message_id,
        from: send.from,
        from_device: send.from_device,
        members,
        client_msg_id: send.client_msg_id.clone(),
        content: send.content.clone(),
        reply_to: send.reply_to,
        sent_at: now,
        withheld_from,
        forward_count: send.forward_count,
        attachment: send.attachment.clone(),
        session_id: send.session_id.clone(),
    };
    let outcome = SendOutcome::Accepted { message_id: send.message_id, conv_seq };
    Ok((outcome, vec![ConversationEvent::MessageSent(event)]))
}

/// A member's watermarks: the stored ones (kept beside the conversation
/// state, one small record per member, so a receipt never rewrites the
/// whole group's state), never below where the member joined — a member
/// added at N received nothing before N, and one re-added starts afresh.
pub fn member_marks(state: &ConversationState, member: UserId, stored: Option<Watermarks>) -> Watermarks {
    let joined = state.joined.get(&member).copied().unwrap_or_default();
    let stored = stored.unwrap_or_default();
    Watermarks { delivered: stored.delivered.max(joined), read: stored.read.max(joined) }
}

/// Folds a receipt event into the watermarks of the member who moved them.
pub fn evolve_marks(marks: Watermarks, advanced: &ReceiptsAdvanced) -> Watermarks {
    match advanced.status {
        ReceiptStatus::Delivered => Watermarks { delivered: marks.delivered.max(advanced.up_to), ..marks },
        ReceiptStatus::Read => Watermarks { read: marks.read.max(advanced.up_to), ..marks },
    }
}

/// The range of `conv_seq` a receipt would newly cover, clamped to what exists;
/// `None` when the watermark would not move. `marks` are the marking
/// member's ([`member_marks`]). The shell loads the messages in this range
/// and hands them to [`decide_receipt`].
pub fn receipt_range(state: &ConversationState, marks: Watermarks, mark: &MarkReceipt) -> Option<(ConvSeq, ConvSeq)> {
    let current = match mark.status {
        ReceiptStatus::Delivered => marks.delivered,
        ReceiptStatus::Read => marks.read,
    };
    let up_to = ConvSeq(mark.up_to.0.min(state.last_seq.0));
    (up_to > current).then_some((current.next(), up_to))
}

/// Decides a delivered/read mark. `covered` are the messages in
/// [`receipt_range`], in order. Reading implies delivery, so a read mark
/// that passes the delivered watermark advances both.
pub fn decide_receipt(
    state: &ConversationState,
    marks: Watermarks,
    mark: &MarkReceipt,
    covered: &[StoredMessage],
    now: Millis,
) -> Result<Vec<ConversationEvent>, Rejection> {
    if state.members.binary_search(&mark.by).is_err() {
        return Err(Rejection::NotMember);
    }
    let Some((_, up_to)) = receipt_range(state, marks, mark) else {
        return Ok(Vec::new());
    };
    // The other members' messages the mark newly covers, each with how many
    // of its recipients have now reached `status` (this member included).
    let others = |after: ConvSeq, status: ReceiptStatus| -> Vec<MessageRef> {
        covered
            .iter()
            // A message withheld from the reader was never delivered to it.
            .filter(|stored| !stored.withheld_from.contains(&mark.by))
            .filter(|stored| stored.from != mark.by && stored.conv_seq > after && stored.conv_seq <= up_to)
            .map(|stored| {
                let before = match status {
                    ReceiptStatus::Delivered => stored.delivered,
                    ReceiptStatus::Read => stored.read,
                };
                MessageRef {
                    message_id: stored.message_id,
                    conv_seq: stored.conv_seq,
                    from: stored.from,
                    count: (before + 1).min(stored.recipients.max(1)),
                    of: stored.recipients,
                }
            })
            .collect()
    };
    let mut events = Vec::new();
    if mark.status == ReceiptStatus::Read && up_to > marks.delivered {
        events.push(ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
            conversation_id: mark.conversation_id,
            by: mark.by,
            status: ReceiptStatus::Delivered,
            up_to,
            at: now,
            messages: others(marks.delivered, ReceiptStatus::Delivered),
        }));
    }
    let after = match mark.status {
        ReceiptStatus::Delivered => marks.delivered,
        ReceiptStatus::Read => marks.read,
    };
    events.push(ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
        conversation_id: mark.conversation_id,
        by: mark.by,
        status: mark.status,
        up_to,
        at: now,
        messages: if mark.status == ReceiptStatus::Read && !mark.notify {
            Vec::new()
        } else {
            others(after, mark.status)
        },
    }));
    Ok(events)
}

/// Records a block in a 1:1 conversation's state; `None` when nothing changes.
pub fn decide_block(state: &ConversationState, block: &SetBlock) -> Result<Option<ConversationState>, Rejection> {
    if ConversationId::direct(block.blocker, block.target) != block.conversation_id {
        return Err(Rejection::WrongConversation);
    }
    if state.blocked_by.contains(&block.blocker) == block.blocked {
        return Ok(None);
    }
    let mut next = state.clone();
    if block.blocked {
        next.blocked_by.push(block.blocker);
        next.blocked_by.sort();
    } else {
        next.blocked_by.retain(|user| *user != block.blocker);
    }
    Ok(Some(next))
}

/// A member's devices changed: one entry for each other member. Nothing
/// for a user who is no member (any more).
pub fn announce_devices(state: &ConversationState, announce: &AnnounceDevices) -> Vec<Delivery> {
    if state.members.binary_search(&announce.user).is_err() {
        return Vec::new();
    }
    let (conversation_id, user) = (announce.conversation_id, announce.user);
    state
        .members
        .iter()
        .filter(|member| **member != user)
        .map(|member| Delivery { recipient: *member, item: DeliveryItem::DevicesChanged { conversation_id, user } })
        .collect()
}

/// Folds one event into the conversation state.
pub fn evolve(mut state: ConversationState, event: &ConversationEvent) -> ConversationState {
    match event {
        ConversationEvent::MessageSent(sent) => {
            if state.members.is_empty() {
                state.members = sent.members.clone();
            }
            // Watermarks stay put: sending does not mark the other side's
            // messages read; only an explicit mark (which sends receipts) does.
            state.last_seq = sent.conv_seq;
        }
        ConversationEvent::GroupChanged(changed) => return crate::groups::evolve_group(state, changed),
        ConversationEvent::MessageModified(modified) => state.last_seq = modified.conv_seq,
        // Watermarks live beside the state: see `evolve_marks`.
        ConversationEvent::ReceiptsAdvanced(_) => {}
    }
    state
}
