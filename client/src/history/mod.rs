//! A record of everything test clients did and saw, and a checker over it
//! (issue 20, in the manner of Jepsen's histories): sends and their `sent`
//! answers, every feed entry each device saw with its `seq`, acks,
//! receipts, and every `welcome` with its `recovered` answer. The recorder
//! is shared by many connections; [`check`] reads the whole history after
//! the run and reports what was lost, duplicated, reordered or invented.

use std::sync::{Arc, Mutex};

use serde_json::Value;

mod check;
mod ops;
pub use check::{Report, Rule, Violation, check};
pub use ops::{Delivered, Device, Op, entry_id};

/// The shared record: clone it into each test client.
#[derive(Clone, Default)]
pub struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(op);
    }

    /// Records what a frame from the server says, for `device`.
    pub fn saw(&self, device: &str, frame: &Value) {
        let device = device.to_string();
        let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
        match frame["type"].as_str() {
            Some("welcome") => self.record(Op::Welcome { device, recovered: frame["recovered"] == true }),
            Some("sent") => self.record(Op::Sent {
                device,
                req: text(&frame["req"]),
                message_id: text(&frame["message_id"]),
                conversation_id: text(&frame["conversation_id"]),
                conv_seq: frame["conv_seq"].as_u64().unwrap_or_default(),
            }),
            Some("event") => {
                let entry = &frame["event"];
                let seq = frame["seq"].as_u64().unwrap_or_default();
                if entry["kind"] == "receipt" {
                    self.record(Op::Receipt {
                        device: device.clone(),
                        conversation_id: text(&entry["conversation_id"]),
                        by: text(&entry["by"]),
                        status: text(&entry["status"]),
                        up_to: entry["up_to"].as_u64().unwrap_or_default(),
                    });
                }
                let conversation_id = text(&entry["conversation_id"]);
                let conv_seq = entry["conv_seq"].as_u64().unwrap_or_default();
                let message = match entry["kind"].as_str() {
                    Some("message") => Some((text(&entry["message_id"]), text(&entry["content"]))),
                    Some("modified") => Some((entry_id(&conversation_id, conv_seq), text(&entry["content"]))),
                    Some("group") => Some((entry_id(&conversation_id, conv_seq), text(&entry["name"]))),
                    _ => None,
                }
                .map(|(message_id, content)| Delivered {
                    message_id,
                    conversation_id,
                    conv_seq,
                    content,
                });
                self.record(Op::Entry { device, seq, message });
            }
            _ => {}
        }
    }

    /// Everything recorded so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
