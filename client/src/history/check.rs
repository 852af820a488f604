//! The checker: reads a whole history and says which promises it breaks.
//!
//! Edits and group changes are conversation entries like messages
//! ([`Op::Changed`], ids from [`super::entry_id`]): lost, duplicated,
//! reordered and phantom apply to them too.
//!
//! - **lost**: an acknowledged message (`sent`) that a device expected to
//!   get it (an [`Op::Expect`] of its conversation that connected during
//!   the run; the sending device itself excepted) never saw;
//! - **duplicated**: a device saw a message id twice, or a feed `seq` again
//!   after acking it;
//! - **reordered**: a device saw a conversation's `conv_seq` go down;
//! - **phantom**: a device saw a message no one sent;
//! - **gap**: a device's feed skipped a `seq` without a `recovered: false`
//!   welcome before it;
//! - **receipt backwards**: a receipt watermark went down;
//! - **read before delivered**: a device saw one of its own messages read
//!   by someone before it saw it delivered to them (the server advances
//!   delivered first whenever a read passes it). Not asked of a device
//!   whose feed may have skipped entries (a `recovered: false` welcome).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use super::ops::{Device, Op};

/// A promise the checker holds the history to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    Lost,
    Duplicated,
    Reordered,
    Phantom,
    Gap,
    ReceiptBackwards,
    ReadBeforeDelivered,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::Lost,
        Rule::Duplicated,
        Rule::Reordered,
        Rule::Phantom,
        Rule::Gap,
        Rule::ReceiptBackwards,
        Rule::ReadBeforeDelivered,
    ];
}

/// One broken promise: which, where in the history, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// Index of the operation that shows it (the send, for a lost message).
    pub at: usize,
    pub what: String,
}

/// What the checker found.
#[derive(Debug)]
pub struct Report {
    pub ops: usize,
    pub acknowledged: usize,
    pub deliveries: usize,
    pub violations: Vec<Violation>,
    /// The history, for showing a violation's neighbourhood.
    history: Vec<Op>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn count(&self, rule: Rule) -> usize {
        self.violations.iter().filter(|violation| violation.rule == rule).count()
    }
}

impl fmt::Display for Report {
    /// A summary table, then the first violations with the operations around them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} operations, {} acknowledged sends, {} deliveries, {} receipts",
            self.ops,
            self.acknowledged,
            self.deliveries,
            self.history.iter().filter(|op| matches!(op, Op::Receipt { .. })).count()
        )?;
        writeln!(f, "| rule | violations |\n|---|---|")?;
        for rule in Rule::ALL {
            writeln!(f, "| {rule:?} | {} |", self.count(rule))?;
        }
        for violation in self.violations.iter().take(5) {
            writeln!(f, "\n{:?} at op {}: {}", violation.rule, violation.at, violation.what)?;
            let from = violation.at.saturating_sub(3);
            for (index, op) in self.history.iter().enumerate().skip(from).take(7) {
                writeln!(f, "  {}{index}: {op:?}", if index == violation.at { "> " } else { "  " })?;
            }
        }
        Ok(())
    }
}

/// Per device: what it has seen so far.
#[derive(Default)]
struct Seen {
    last_seq: Option<u64>,
    acked: u64,
    may_jump: bool,
    messages: HashSet<String>,
    conv_seq: HashMap<String, u64>,
    /// Connected during the run (welcomed at least once).
    connected: bool,
    /// Welcomed with `recovered: false` at some point: entries may be missing.
    ever_jumped: bool,
    /// Its own messages' `conv_seq`s, by conversation (from `sent`).
    own: HashMap<String, BTreeSet<u64>>,
}

/// Checks a whole history.
pub fn check(history: &[Op]) -> Report {
    let mut violations = Vec::new();
    let mut seen: BTreeMap<Device, Seen> = BTreeMap::new();
    // message id -> (op, conversation, sending device)
    let mut sent_ids: HashMap<String, (usize, String, Device)> = HashMap::new();
    let mut contents: HashSet<String> = HashSet::new();
    let mut expected: HashMap<String, BTreeSet<Device>> = HashMap::new();
    let mut watermarks: HashMap<(Device, String, String, String), u64> = HashMap::new();
    let mut deliveries = 0;
    let mut flag = |rule: Rule, at: usize, what: String| violations.push(Violation { rule, at, what });
    for (at, op) in history.iter().enumerate() {
        match op {
            Op::Send { content, .. } => {
                contents.insert(content.clone());
            }
            Op::Sent { device, message_id, conversation_id, conv_seq, .. } => {
                sent_ids.entry(message_id.clone()).or_insert((at, conversation_id.clone(), device.clone()));
                seen.entry(device.clone())
                    .or_default()
                    .own
                    .entry(conversation_id.clone())
                    .or_default()
                    .insert(*conv_seq);
            }
            Op::Changed { device, id, conversation_id } => {
                sent_ids.entry(id.clone()).or_insert((at, conversation_id.clone(), device.clone()));
            }
            Op::Expect { conversation_id, devices } => {
                expected.entry(conversation_id.clone()).or_default().extend(devices.iter().cloned());
            }
            Op::Welcome { device, recovered } => {
                let state = seen.entry(device.clone()).or_default();
                state.may_jump |= !recovered;
                state.ever_jumped |= !recovered;
                state.connected = true;
            }
            Op::Ack { device, seq } => {
                let state = seen.entry(device.clone()).or_default();
                state.acked = state.acked.max(*seq);
            }
            Op::Receipt { device, conversation_id, by, status, up_to } => {
                let key = (device.clone(), conversation_id.clone(), by.clone(), status.clone());
                let mark = watermarks.entry(key).or_default();
                if *up_to < *mark {
                    flag(Rule::ReceiptBackwards, at, format!("{device}: {status} by {by} went from {mark} to {up_to}"));
                }
                *mark = (*mark).max(*up_to);
                if status == "read" {
                    let delivered = watermarks
                        .get(&(device.clone(), conversation_id.clone(), by.clone(), "delivered".to_string()))
                        .copied()
                        .unwrap_or_default();
                    let state = seen.entry(device.clone()).or_default();
                    let own_read = state.own.get(conversation_id).and_then(|own| own.range(..=*up_to).next_back());
                    if let Some(own_read) = own_read.filter(|own_read| **own_read > delivered && !state.ever_jumped) {
                        flag(
                            Rule::ReadBeforeDelivered,
                            at,
                            format!(
                                "{device} saw its conv_seq {own_read} read by {by} with delivered only up to {delivered}"
                            ),
                        );
                    }
                }
            }
            Op::Entry { device, seq, message } => {
                let state = seen.entry(device.clone()).or_default();
                if *seq <= state.acked {
                    flag(Rule::Duplicated, at, format!("{device} saw seq {seq} again after acking {}", state.acked));
                }
                match state.last_seq {
                    Some(last) if *seq != last + 1 && *seq > last && !state.may_jump => {
                        flag(Rule::Gap, at, format!("{device}'s feed went from seq {last} to {seq}"));
                    }
                    _ => {}
                }
                state.may_jump = false;
                state.last_seq = Some(state.last_seq.map_or(*seq, |last| last.max(*seq)));
                let Some(message) = message else { continue };
                deliveries += 1;
                if !state.messages.insert(message.message_id.clone()) {
                    flag(Rule::Duplicated, at, format!("{device} saw message {} twice", message.message_id));
                }
                let last = state.conv_seq.entry(message.conversation_id.clone()).or_default();
                if message.conv_seq <= *last {
                    flag(
                        Rule::Reordered,
                        at,
                        format!(
                            "{device} saw conv_seq {} of {} after {last}",
                            message.conv_seq, message.conversation_id
                        ),
                    );
                }
                *last = (*last).max(message.conv_seq);
                if !sent_ids.contains_key(&message.message_id) && !contents.contains(&message.content) {
                    flag(Rule::Phantom, at, format!("{device} saw message {} that no one sent", message.message_id));
                }
            }
        }
    }
    // Lost: every acknowledged message reaches every expected device that
    // connected during the run (a device that never came back is not asked).
    let mut lost = Vec::new();
    for (message_id, (at, conversation, sender)) in &sent_ids {
        for device in expected.get(conversation).into_iter().flatten().filter(|device| *device != sender) {
            let Some(state) = seen.get(device) else { continue };
            if state.connected && !state.messages.contains(message_id) {
                lost.push(Violation { rule: Rule::Lost, at: *at, what: format!("{device} never got {message_id}") });
            }
        }
    }
    lost.sort_by_key(|violation| violation.at);
    violations.extend(lost);
    Report { ops: history.len(), acknowledged: sent_ids.len(), deliveries, violations, history: history.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ops::Delivered;

    fn send(device: &str, id: &str) -> Op {
        Op::Send { device: device.into(), req: id.into(), content: id.into() }
    }
    fn sent(device: &str, id: &str, message: &str, conv_seq: u64) -> Op {
        Op::Sent {
            device: device.into(),
            req: id.into(),
            message_id: message.into(),
            conversation_id: "c".into(),
            conv_seq,
        }
    }
    fn entry(device: &str, seq: u64, message: &str, conv_seq: u64, content: &str) -> Op {
        let message =
            Delivered { message_id: message.into(), conversation_id: "c".into(), conv_seq, content: content.into() };
        Op::Entry { device: device.into(), seq, message: Some(message) }
    }
    fn welcome(device: &str, recovered: bool) -> Op {
        Op::Welcome { device: device.into(), recovered }
    }
    fn expect(devices: &[&str]) -> Op {
        Op::Expect { conversation_id: "c".into(), devices: devices.iter().map(|d| d.to_string()).collect() }
    }

    /// Alice sends two messages Bob gets in order, acking them.
    fn clean() -> Vec<Op> {
        vec![
            expect(&["bob/1"]),
            welcome("alice/1", true),
            welcome("bob/1", true),
            send("alice/1", "a"),
            sent("alice/1", "a", "m1", 1),
            entry("bob/1", 1, "m1", 1, "a"),
            Op::Ack { device: "bob/1".into(), seq: 1 },
            send("alice/1", "b"),
            sent("alice/1", "b", "m2", 2),
            entry("bob/1", 2, "m2", 2, "b"),
        ]
    }

    #[test]
    fn a_clean_history_passes_and_the_report_says_so() {
        let report = check(&clean());
        assert!(report.ok(), "{report}");
        assert_eq!((report.acknowledged, report.deliveries), (2, 2));
        assert!(report.to_string().contains("| Lost | 0 |"));
    }

    #[test]
    fn each_broken_promise_is_named_with_its_place() {
        // Lost: the second message never reaches Bob.
        let mut history = clean();
        history.pop();
        let report = check(&history);
        assert_eq!(report.count(Rule::Lost), 1, "{report}");
        assert_eq!(report.violations[0].at, 8, "the send that was lost");
        // Duplicated: Bob sees seq 1 again after acking it.
        let mut history = clean();
        history.push(entry("bob/1", 1, "m1", 1, "a"));
        let report = check(&history);
        assert!(report.count(Rule::Duplicated) >= 1, "{report}");
        // Reordered: conv_seq goes down.
        let mut history = clean();
        history.push(entry("bob/1", 3, "m0", 1, "a"));
        assert_eq!(check(&history).count(Rule::Reordered), 1);
        // Phantom: a message no one sent.
        let mut history = clean();
        history.push(entry("bob/1", 3, "m9", 3, "nobody"));
        assert_eq!(check(&history).count(Rule::Phantom), 1);
        // Gap: seq 2 to 4 without a recovered:false welcome; allowed after one.
        let mut history = clean();
        history.push(Op::Entry { device: "bob/1".into(), seq: 4, message: None });
        assert_eq!(check(&history).count(Rule::Gap), 1);
        let mut history = clean();
        history.push(welcome("bob/1", false));
        history.push(Op::Entry { device: "bob/1".into(), seq: 4, message: None });
        assert_eq!(check(&history).count(Rule::Gap), 0);
        // A receipt watermark going back.
        let receipt = |up_to| Op::Receipt {
            device: "alice/1".into(),
            conversation_id: "c".into(),
            by: "bob".into(),
            status: "read".into(),
            up_to,
        };
        let mut history = clean();
        history.extend([receipt(2), receipt(1)]);
        let report = check(&history);
        assert_eq!(report.count(Rule::ReceiptBackwards), 1);
        // Alice's message 1 read by Bob before she saw it delivered; fine
        // once delivered came first, or when the read covers none of hers.
        let delivered = Op::Receipt {
            device: "alice/1".into(),
            conversation_id: "c".into(),
            by: "bob".into(),
            status: "delivered".into(),
            up_to: 1,
        };
        let mut read_first = clean();
        read_first.extend([receipt(1), delivered.clone()]);
        assert_eq!(check(&read_first).count(Rule::ReadBeforeDelivered), 1, "{}", check(&read_first));
        let mut delivered_first = clean();
        delivered_first.extend([delivered, receipt(1)]);
        assert!(check(&delivered_first).ok(), "{}", check(&delivered_first));
        let mut jumped = clean();
        jumped.extend([welcome("alice/1", false), receipt(1)]);
        assert_eq!(check(&jumped).count(Rule::ReadBeforeDelivered), 0);
        assert!(report.to_string().contains("> 11:"), "the neighbourhood marks the op: {report}");
    }

    #[test]
    fn edits_and_group_changes_are_held_to_the_same_promises() {
        use crate::history::entry_id;
        let edit = |seq: u64, content: &str| {
            let message = Delivered {
                message_id: entry_id("c", 3),
                conversation_id: "c".into(),
                conv_seq: 3,
                content: content.into(),
            };
            Op::Entry { device: "bob/1".into(), seq, message: Some(message) }
        };
        let mut history = clean();
        history.push(Op::Send { device: "alice/1".into(), req: "e".into(), content: "a, edited".into() });
        history.push(Op::Changed { device: "alice/1".into(), id: entry_id("c", 3), conversation_id: "c".into() });
        assert_eq!(check(&history).count(Rule::Lost), 1, "an acknowledged edit Bob never saw");
        history.push(edit(3, "a, edited"));
        assert!(check(&history).ok(), "{}", check(&history));
        let mut twice = history.clone();
        twice.push(edit(4, "a, edited"));
        assert_eq!(check(&twice).count(Rule::Duplicated), 1);
        let mut invented = clean();
        invented.push(edit(3, "no one wrote this"));
        assert_eq!(check(&invented).count(Rule::Phantom), 1);
        // An entry before the message it follows in the conversation.
        let mut reordered = clean();
        reordered.insert(5, edit(1, "a, edited"));
        reordered.insert(3, Op::Send { device: "alice/1".into(), req: "e".into(), content: "a, edited".into() });
        assert!(check(&reordered).count(Rule::Reordered) >= 1, "{}", check(&reordered));
    }

    #[test]
    fn a_message_whose_sent_answer_was_lost_is_no_phantom() {
        // A crash between append and answer: the send is known, its `sent` is not.
        let history = vec![expect(&["bob/1"]), send("alice/1", "a"), entry("bob/1", 1, "m1", 1, "a")];
        assert!(check(&history).ok());
    }
}
