//! The chats a `missive chat` profile has read: what a phone keeps in its
//! own database, since the server holds only ciphertext. One owner-only
//! JSON file beside the device's keys; at most 1,000 messages per chat.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const FILE: &str = "chats.json";
const KEPT_PER_CHAT: usize = 1_000;

#[derive(Default, Serialize, Deserialize)]
pub struct Chats {
    chats: BTreeMap<String, Chat>,
}

#[derive(Default, Serialize, Deserialize)]
struct Chat {
    /// How the chat is named on the command line (`user:<id>`, `group:<id>`).
    label: String,
    name: Option<String>,
    last_at: i64,
    messages: Vec<Message>,
}

#[derive(Serialize, Deserialize)]
struct Message {
    message_id: String,
    conv_seq: u64,
    from: String,
    text: String,
    attachment: Option<Value>,
    at: i64,
    mine: bool,
    /// Mine: sent, delivered or read.
    ticks: String,
    reactions: BTreeMap<String, String>,
}

impl Chats {
    pub fn load(dir: &Path) -> anyhow::Result<Chats> {
        match std::fs::read_to_string(dir.join(FILE)) {
            Ok(text) => Ok(serde_json::from_str(&text)?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Chats::default()),
            Err(error) => Err(error.into()),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        missive_client::secure::write_private(&dir.join(FILE), &serde_json::to_string(self)?)
    }

    fn chat(&mut self, conversation: &str, label: &str) -> &mut Chat {
        let chat = self.chats.entry(conversation.to_string()).or_default();
        if chat.label.is_empty() {
            chat.label = label.to_string();
        }
        chat
    }

    fn push(chat: &mut Chat, message: Message) {
        chat.last_at = chat.last_at.max(message.at);
        chat.messages.push(message);
        if chat.messages.len() > KEPT_PER_CHAT {
            chat.messages.remove(0);
        }
    }

    pub fn name(&mut self, conversation: &str, label: &str, name: &str) {
        self.chat(conversation, label).name = Some(name.to_string());
    }

    /// A message this device sent (`sent` is the server's answer).
    pub fn sent(&mut self, conversation: &str, sent: &Value, text: &str, label: &str) {
        let message = Message {
            message_id: sent["message_id"].as_str().unwrap_or_default().to_string(),
            conv_seq: sent["conv_seq"].as_u64().unwrap_or_default(),
            from: String::new(),
            text: text.to_string(),
            attachment: None,
            at: sent["at"].as_i64().unwrap_or_default(),
            mine: true,
            ticks: "sent".into(),
            reactions: BTreeMap::new(),
        };
        Chats::push(self.chat(conversation, label), message);
    }

    /// An opened message, edit or reaction; the line to show.
    pub fn received(&mut self, entry: &Value, payload: &Value, me: &str) -> Option<Value> {
        let conversation = entry["conversation_id"].as_str()?;
        let text = payload["text"].as_str().unwrap_or_default().to_string();
        match entry["kind"].as_str()? {
            "message" => {
                let from = entry["from"].as_str().unwrap_or_default().to_string();
                let label = if from == me { String::new() } else { format!("user:{from}") };
                let chat = self.chat(conversation, &label);
                let message = Message {
                    message_id: entry["message_id"].as_str().unwrap_or_default().to_string(),
                    conv_seq: entry["conv_seq"].as_u64().unwrap_or_default(),
                    from: from.clone(),
                    text: text.clone(),
                    attachment: payload.get("attachment").cloned(),
                    at: entry["sent_at"].as_i64().unwrap_or_default(),
                    mine: from == me,
                    ticks: String::new(),
                    reactions: BTreeMap::new(),
                };
                let shown = json!({"chat": chat.label, "conversation_id": conversation, "from": from, "text": text,
                                   "attachment": message.attachment.as_ref().map(|a| a["kind"].clone()), "at": message.at});
                Chats::push(chat, message);
                Some(shown)
            }
            "modified" => {
                let target = entry["message_id"].as_str()?;
                let by = entry["by"].as_str().unwrap_or_default().to_string();
                let chat = self.chats.get_mut(conversation)?;
                let message = chat.messages.iter_mut().find(|message| message.message_id == target)?;
                match entry["operation"].as_str()? {
                    "edit" => message.text = text.clone(),
                    _ => {
                        message.reactions.insert(by.clone(), text.clone());
                    }
                }
                Some(json!({"chat": chat.label, "message_id": target, entry["operation"].as_str()?: text, "by": by}))
            }
            _ => None,
        }
    }

    /// A receipt: my messages up to `up_to` reached `status`.
    pub fn receipt(&mut self, entry: &Value) -> Option<Value> {
        let chat = self.chats.get_mut(entry["conversation_id"].as_str()?)?;
        let (status, up_to) = (entry["status"].as_str()?, entry["up_to"].as_u64()?);
        for message in chat.messages.iter_mut().filter(|message| message.mine && message.conv_seq <= up_to) {
            if message.ticks != "read" {
                message.ticks = status.to_string();
            }
        }
        Some(json!({"chat": chat.label, "ticks": status, "up_to": up_to, "by": entry["by"]}))
    }

    /// One line per chat, the most recent first.
    pub fn list(&self) -> Vec<Value> {
        let mut chats: Vec<(&String, &Chat)> = self.chats.iter().collect();
        chats.sort_by_key(|(_, chat)| std::cmp::Reverse(chat.last_at));
        chats
            .into_iter()
            .map(|(conversation, chat)| {
                let last = chat.messages.last();
                json!({"chat": chat.label, "conversation_id": conversation, "name": chat.name,
                       "last": last.map(|message| message.text.clone()), "at": chat.last_at,
                       "messages": chat.messages.len()})
            })
            .collect()
    }

    /// A chat's messages in order, with their ticks and reactions.
    pub fn messages(&self, conversation: &str) -> Vec<Value> {
        let Some(chat) = self.chats.get(conversation) else { return Vec::new() };
        chat.messages
            .iter()
            .map(|message| {
                json!({"conv_seq": message.conv_seq, "from": if message.mine { "me" } else { message.from.as_str() },
                       "text": message.text, "at": message.at, "ticks": (message.mine).then_some(&message.ticks),
                       "attachment": message.attachment.as_ref().map(|a| a["kind"].clone()),
                       "reactions": message.reactions})
            })
            .collect()
    }
}
