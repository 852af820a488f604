//! Group changes during the fault runs: the users share a group whose admin
//! (u0) makes one change per cycle over HTTP, racing the cycle's fault:
//! adds a fifth user, renames the group, promotes u1, removes the fifth
//! user, demotes u1, and round again. A change without a `200` answer (the
//! server died under it) is asked again, as a client would; asking again
//! for a change already made changes nothing and answers with the group as
//! it is. Every answered change is an entry the members must see once, in
//! their conversation's order.

use std::time::Duration;

use missive_client::history::{Op, Recorder, entry_id};
use missive_client::{Account, Api};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::common::{Server, WAIT};

/// The admin's changes, one at a time.
pub struct GroupChanges {
    group: String,
    admin: Account,
    /// Added and removed again and again; never connects.
    fifth: String,
    /// The other member made admin and not again.
    member: String,
    /// The change now asked for.
    step: usize,
    task: Option<JoinHandle<bool>>,
    pub answered: usize,
}

impl GroupChanges {
    /// Creates the group of `members` (the first is its admin) and records
    /// that all of them must get its entries.
    pub async fn create(server: &Server, members: &[Account], fifth: &Account, history: &Recorder) -> GroupChanges {
        let admin = members[0].clone();
        let others: Vec<&str> = members[1..].iter().map(|member| member.user_id.as_str()).collect();
        let body = json!({"name": name(0), "members": others});
        let (status, group) = server.api.post("/v1/groups", Some(&admin.access_token), &body).await.expect("create");
        assert_eq!(status, 200, "the group is created: {group}");
        let group_id = group["conversation_id"].as_str().expect("group id").to_string();
        let devices = (0..members.len()).map(|n| format!("u{n}")).collect();
        history.record(Op::Expect { conversation_id: group_id.clone(), devices });
        history.record(Op::Send { device: "u0".into(), req: "group".into(), content: name(0) });
        history.record(Op::Changed {
            device: "u0".into(),
            id: entry_id(&group_id, group["conv_seq"].as_u64().expect("conv_seq")),
            conversation_id: group_id.clone(),
        });
        GroupChanges {
            group: group_id,
            admin,
            fifth: fifth.user_id.clone(),
            member: members[1].user_id.clone(),
            step: 1,
            task: None,
            answered: 1,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Asks for the next change (or the last one again, if it went
    /// unanswered) unless the last is still waiting for its answer.
    pub async fn next(&mut self, server: &Server, history: &Recorder) {
        if let Some(task) = self.task.take_if(|task| task.is_finished())
            && task.await.expect("change task")
        {
            self.advance();
        }
        if self.task.is_none() {
            self.task = Some(self.ask(server.api.clone(), history.clone()));
        }
    }

    /// Waits for the change asked last, asking it again until it is answered.
    pub async fn settle(&mut self, server: &Server, history: &Recorder) {
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        while let Some(task) = self.task.take() {
            if task.await.expect("change task") {
                self.advance();
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                crate::stuck(&format!("group change {} never answered", self.step)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.task = Some(self.ask(server.api.clone(), history.clone()));
        }
    }

    /// The change asked last was answered: on to the next.
    fn advance(&mut self) {
        self.answered += 1;
        self.step += 1;
    }

    /// Sends change `step` over HTTP; true once answered `200` (recorded).
    fn ask(&self, api: Api, history: Recorder) -> JoinHandle<bool> {
        let (group, token) = (self.group.clone(), self.admin.access_token.clone());
        let path = format!("/v1/groups/{group}");
        let (method, path, body) = match self.step % 5 {
            0 => ("PUT", format!("{path}/admins/{}", self.member), None),
            1 => ("POST", format!("{path}/members"), Some(json!({"users": [self.fifth]}))),
            2 => ("PATCH", path, Some(json!({"name": name(self.step)}))),
            3 => ("DELETE", format!("{path}/members/{}", self.fifth), None),
            _ => ("DELETE", format!("{path}/admins/{}", self.member), None),
        };
        // The name the group has after this change (the renames are steps 2, 7, 12, ...).
        let named = match self.step {
            0 | 1 => name(0),
            step => name(step - (step - 2) % 5),
        };
        let req = format!("g{}", self.step);
        tokio::spawn(async move {
            history.record(Op::Send { device: "u0".into(), req, content: named });
            let answer: anyhow::Result<(u16, Value)> = api.request(method, &path, Some(&token), body.as_ref()).await;
            match answer {
                Ok((200, changed)) => {
                    let conv_seq = changed["conv_seq"].as_u64().expect("conv_seq");
                    history.record(Op::Changed {
                        device: "u0".into(),
                        id: entry_id(&group, conv_seq),
                        conversation_id: group,
                    });
                    true
                }
                Ok((status, body)) => {
                    eprintln!("group change {method} {path}: {status} {body}; asking again next cycle");
                    false
                }
                Err(_) => false, // the server went away under it
            }
        })
    }
}

fn name(step: usize) -> String {
    format!("group {step}")
}
