//! `missive stats`: figures folded from conversation events (the domain
//! types the processors use, decoded from the log), no I/O here.

use crate::scan::{Range, parse_time, plan, scan};
use crate::source::{Source, open};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use missive_core::conversation::{ConversationEvent, MessageSent, ReceiptStatus};
use missive_core::{ConversationId, MessageId, Millis, UserId};
use serde_json::{Value, json};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Most send times remembered for latencies; beyond it receipts of
/// forgotten messages are not counted (reported as `untracked`).
const MAX_TRACKED: usize = 5_000_000;

#[derive(Default)]
pub struct Figures {
    messages: u64,
    group_messages: u64,
    per_hour: BTreeMap<i64, u64>,
    active_per_day: BTreeMap<i64, BTreeSet<UserId>>,
    sent_at: HashMap<MessageId, Millis>,
    latencies: Vec<i64>,
    untracked: u64,
    per_conversation: HashMap<ConversationId, u64>,
    first: Option<Millis>,
    last: Option<Millis>,
}

/// A group message: any conversation that is not the 1:1 chat of its members.
fn is_group(message: &MessageSent) -> bool {
    match message.members.as_slice() {
        [only] => message.conversation_id != ConversationId::direct(*only, *only),
        [first, second] => message.conversation_id != ConversationId::direct(*first, *second),
        _ => true,
    }
}

fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

fn percentile(sorted: &[i64], fraction: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

impl Figures {
    fn active(&mut self, user: UserId, at: Millis) {
        self.active_per_day.entry(at.0.div_euclid(DAY_MS)).or_default().insert(user);
    }

    pub fn add(&mut self, event: &ConversationEvent) {
        match event {
            ConversationEvent::MessageSent(message) => {
                self.messages += 1;
                if is_group(message) {
                    self.group_messages += 1;
                }
                *self.per_hour.entry(message.sent_at.0.div_euclid(HOUR_MS)).or_default() += 1;
                *self.per_conversation.entry(message.conversation_id).or_default() += 1;
                self.active(message.from, message.sent_at);
                if self.sent_at.len() < MAX_TRACKED {
                    self.sent_at.insert(message.message_id, message.sent_at);
                }
                self.first = Some(self.first.map_or(message.sent_at, |first| first.min(message.sent_at)));
                self.last = Some(self.last.map_or(message.sent_at, |last| last.max(message.sent_at)));
            }
            ConversationEvent::ReceiptsAdvanced(advanced) => {
                self.active(advanced.by, advanced.at);
                if advanced.status == ReceiptStatus::Delivered {
                    for reference in &advanced.messages {
                        match self.sent_at.get(&reference.message_id) {
                            Some(sent) => self.latencies.push(advanced.at.0 - sent.0),
                            None => self.untracked += 1,
                        }
                    }
                }
            }
            ConversationEvent::GroupChanged(changed) => self.active(changed.by, changed.at),
            ConversationEvent::MessageModified(modified) => self.active(modified.by, modified.at),
        }
    }

    pub fn report(mut self, top: usize) -> Value {
        self.latencies.sort_unstable();
        let share = |part: u64| if self.messages == 0 { 0.0 } else { part as f64 / self.messages as f64 };
        let mut busiest: Vec<(ConversationId, u64)> = self.per_conversation.into_iter().collect();
        busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        busiest.truncate(top);
        json!({
            "messages": self.messages,
            "from": self.first.map(|at| rfc3339(at.0)),
            "to": self.last.map(|at| rfc3339(at.0)),
            "messages_per_hour": self.per_hour.iter()
                .map(|(hour, count)| json!({"hour": rfc3339(hour * HOUR_MS), "messages": count}))
                .collect::<Vec<_>>(),
            "active_users_per_day": self.active_per_day.iter()
                .map(|(day, users)| json!({"day": rfc3339(day * DAY_MS)[..10], "users": users.len()}))
                .collect::<Vec<_>>(),
            "one_to_one_share": share(self.messages - self.group_messages),
            "group_share": share(self.group_messages),
            "delivery_latency_ms": {
                "deliveries": self.latencies.len(),
                "p50": percentile(&self.latencies, 0.50),
                "p90": percentile(&self.latencies, 0.90),
                "p99": percentile(&self.latencies, 0.99),
                "max": self.latencies.last().copied().unwrap_or(0),
                "untracked": self.untracked,
            },
            "top_conversations": busiest.iter()
                .map(|(conversation, count)| json!({"conversation_id": conversation.to_string(), "messages": count}))
                .collect::<Vec<_>>(),
        })
    }
}

#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub source: Source,
    /// From this time (RFC 3339 or epoch ms; default: the earliest kept).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Up to this time (default: now).
    #[arg(long)]
    pub to_time: Option<String>,
    /// How many of the busiest conversations to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// Figures computed from `events.conversation` over a time range, printed
/// as one JSON object: messages per hour, active users per day, group vs
/// 1:1 share, delivery latency percentiles (sent -> first delivered, per
/// recipient, from the receipts), the busiest conversations.
pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let opened = open(&args.source).await?;
    let range = Range {
        topic: missive_processors::topics::EVENTS_CONVERSATION,
        partition: None,
        from_offset: None,
        to_offset: None,
        from_time: args.from_time.as_deref().map(parse_time).transpose()?,
        to_time: args.to_time.as_deref().map(parse_time).transpose()?,
        follow: false,
    };
    let plan = plan(opened.log.as_ref(), &range).await?;
    let codec = missive_registry::codec_from_log(opened.log.clone()).await?;
    let mut figures = Figures::default();
    let mut undecodable = 0u64;
    scan(&opened, &plan, false, |record| {
        match codec.decode(&record.value).ok().and_then(|value| ConversationEvent::try_from(value).ok()) {
            Some(event) => figures.add(&event),
            None => undecodable += 1,
        }
        Ok(true)
    })
    .await?;
    let mut report = figures.report(args.top);
    report["undecodable_records"] = json!(undecodable);
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::conversation::{MessageRef, ReceiptsAdvanced};
    use missive_core::{ConvSeq, DeviceId};

    fn sent(conversation: ConversationId, id: u64, from: u64, members: &[u64], at: i64) -> ConversationEvent {
        ConversationEvent::MessageSent(MessageSent {
            conversation_id: conversation,
            conv_seq: ConvSeq(id),
            message_id: MessageId(id),
            from: UserId(from),
            from_device: DeviceId(from),
            members: members.iter().copied().map(UserId).collect(),
            client_msg_id: id.to_string(),
            content: String::new(),
            reply_to: None,
            sent_at: Millis(at),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
            session_id: None,
        })
    }

    #[test]
    fn figures_count_messages_users_shares_and_latencies() {
        let direct = ConversationId::direct(UserId(1), UserId(2));
        let group = ConversationId(777);
        let mut figures = Figures::default();
        figures.add(&sent(direct, 1, 1, &[1, 2], 0));
        figures.add(&sent(direct, 2, 2, &[1, 2], HOUR_MS + 5));
        figures.add(&sent(group, 3, 1, &[1, 2, 3], HOUR_MS + 10));
        let delivered = |by: u64, at: i64, ids: &[u64]| {
            ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
                conversation_id: direct,
                by: UserId(by),
                status: ReceiptStatus::Delivered,
                up_to: ConvSeq(9),
                at: Millis(at),
                messages: ids
                    .iter()
                    .map(|id| MessageRef {
                        message_id: MessageId(*id),
                        conv_seq: ConvSeq(*id),
                        from: UserId(1),
                        count: 1,
                        of: 1,
                    })
                    .collect(),
            })
        };
        figures.add(&delivered(2, 40, &[1]));
        figures.add(&delivered(3, HOUR_MS + 110, &[3, 99]));
        let report = figures.report(1);
        assert_eq!(report["messages"], 3);
        assert_eq!(
            report["messages_per_hour"],
            json!([
                {"hour": "1970-01-01T00:00:00Z", "messages": 1},
                {"hour": "1970-01-01T01:00:00Z", "messages": 2},
            ])
        );
        assert_eq!(report["active_users_per_day"], json!([{"day": "1970-01-01", "users": 3}]));
        assert!((report["group_share"].as_f64().expect("share") - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            report["delivery_latency_ms"],
            json!({"deliveries": 2, "p50": 40, "p90": 100, "p99": 100, "max": 100, "untracked": 1})
        );
        assert_eq!(report["top_conversations"], json!([{"conversation_id": direct.to_string(), "messages": 2}]));
    }
}
