//! Presence: who is online, folded from what gateways write to the
//! `presence` topic. Each gateway instance says when a user's first session
//! on it opens and its last one closes, and every 15 s sends a heartbeat
//! with the full list of users it serves. An instance that has not been
//! heard from for 45 s (three heartbeats) is dead: its users are offline (unless another
//! instance serves them). Every gateway folds the same records, so all of
//! them agree on who is online; expiry is evaluated against a clock the
//! caller passes in.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::ids::{Millis, UserId};

/// How often a gateway instance sends a heartbeat.
pub const HEARTBEAT_INTERVAL_MS: i64 = 15_000;
/// An instance silent this long (three missed heartbeats) is dead. With
/// sweeps every 2 s its users show offline at most ~47 s after it died,
/// well inside the 70 s promise.
pub const INSTANCE_TIMEOUT_MS: i64 = 45_000;
/// Most remembered "went offline at" times before the memory starts over
/// (the durable last seen lives in the directory).
const LAST_OFFLINE_CAP: usize = 1_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresenceEvent {
    /// An instance is alive and serves exactly these users.
    Heartbeat { instance: String, online: Vec<UserId>, at: Millis },
    /// A user's first session on an instance opened, or its last one closed.
    Changed { instance: String, user: UserId, online: bool, at: Millis },
}

/// A user came online or went offline (anywhere, not per instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub user: UserId,
    pub online: bool,
    pub at: Millis,
}

#[derive(Default)]
struct Instance {
    last_heard: Millis,
    users: HashSet<UserId>,
}

#[derive(Default)]
pub struct PresenceTable {
    instances: HashMap<String, Instance>,
    /// The instances serving each online user.
    online: HashMap<UserId, BTreeSet<String>>,
    last_offline: HashMap<UserId, Millis>,
}

impl PresenceTable {
    pub fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user)
    }

    /// When `user` last went offline, if this table saw it.
    pub fn last_offline(&self, user: UserId) -> Option<Millis> {
        self.last_offline.get(&user).copied()
    }

    /// Users served by `instance` (for an instance's own heartbeat after a restart of the fold).
    pub fn instances(&self) -> impl Iterator<Item = (&str, Millis, usize)> {
        self.instances.iter().map(|(name, instance)| (name.as_str(), instance.last_heard, instance.users.len()))
    }

    fn join(&mut self, instance: &str, user: UserId, at: Millis, transitions: &mut Vec<Transition>) {
        let serving = self.online.entry(user).or_default();
        if serving.is_empty() {
            transitions.push(Transition { user, online: true, at });
        }
        serving.insert(instance.to_string());
    }

    fn part(&mut self, instance: &str, user: UserId, at: Millis, transitions: &mut Vec<Transition>) {
        let Some(serving) = self.online.get_mut(&user) else { return };
        serving.remove(instance);
        if serving.is_empty() {
            self.online.remove(&user);
            if self.last_offline.len() >= LAST_OFFLINE_CAP {
                self.last_offline.clear();
            }
            self.last_offline.insert(user, at);
            transitions.push(Transition { user, online: false, at });
        }
    }

    /// Folds one record; returns who came online or went offline.
    pub fn apply(&mut self, event: &PresenceEvent) -> Vec<Transition> {
        let mut transitions = Vec::new();
        match event {
            PresenceEvent::Heartbeat { instance, online, at } => {
                let now: HashSet<UserId> = online.iter().copied().collect();
                let entry = self.instances.entry(instance.clone()).or_default();
                entry.last_heard = entry.last_heard.max(*at);
                let gone: Vec<UserId> = entry.users.difference(&now).copied().collect();
                let new: Vec<UserId> = now.difference(&entry.users).copied().collect();
                entry.users = now;
                for user in gone {
                    self.part(instance, user, *at, &mut transitions);
                }
                for user in new {
                    self.join(instance, user, *at, &mut transitions);
                }
            }
            PresenceEvent::Changed { instance, user, online, at } => {
                let entry = self.instances.entry(instance.clone()).or_default();
                entry.last_heard = entry.last_heard.max(*at);
                if *online {
                    entry.users.insert(*user);
                    self.join(instance, *user, *at, &mut transitions);
                } else {
                    entry.users.remove(user);
                    self.part(instance, *user, *at, &mut transitions);
                }
            }
        }
        transitions
    }

    /// Drops instances not heard from within the timeout: their users go
    /// offline as of the last time the instance was heard from.
    pub fn expire(&mut self, now: Millis) -> Vec<Transition> {
        let dead: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, instance)| now.0 - instance.last_heard.0 > INSTANCE_TIMEOUT_MS)
            .map(|(name, _)| name.clone())
            .collect();
        let mut transitions = Vec::new();
        for name in dead {
            if let Some(instance) = self.instances.remove(&name) {
                for user in instance.users {
                    self.part(&name, user, instance.last_heard, &mut transitions);
                }
            }
        }
        transitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);

    fn changed(instance: &str, user: UserId, online: bool, at: i64) -> PresenceEvent {
        PresenceEvent::Changed { instance: instance.into(), user, online, at: Millis(at) }
    }

    #[test]
    fn a_user_is_online_while_any_instance_serves_them() {
        let mut table = PresenceTable::default();
        assert_eq!(
            table.apply(&changed("g0", ALICE, true, 10)),
            vec![Transition { user: ALICE, online: true, at: Millis(10) }]
        );
        assert!(table.apply(&changed("g1", ALICE, true, 11)).is_empty(), "already online");
        assert!(table.apply(&changed("g0", ALICE, false, 12)).is_empty(), "still on g1");
        assert_eq!(
            table.apply(&changed("g1", ALICE, false, 13)),
            vec![Transition { user: ALICE, online: false, at: Millis(13) }]
        );
        assert_eq!(table.last_offline(ALICE), Some(Millis(13)));
        assert!(!table.is_online(ALICE));
    }

    #[test]
    fn heartbeats_carry_the_full_list_and_a_silent_instance_expires() {
        let mut table = PresenceTable::default();
        let heartbeat =
            |online: Vec<UserId>, at| PresenceEvent::Heartbeat { instance: "g0".into(), online, at: Millis(at) };
        assert_eq!(table.apply(&heartbeat(vec![ALICE, BOB], 0)).len(), 2);
        let transitions = table.apply(&heartbeat(vec![BOB], 20_000));
        assert_eq!(transitions, vec![Transition { user: ALICE, online: false, at: Millis(20_000) }]);
        assert!(table.expire(Millis(20_000 + INSTANCE_TIMEOUT_MS)).is_empty(), "not silent long enough");
        let expired = table.expire(Millis(20_001 + INSTANCE_TIMEOUT_MS));
        assert_eq!(
            expired,
            vec![Transition { user: BOB, online: false, at: Millis(20_000) }],
            "offline as of the last heartbeat"
        );
        assert_eq!(table.instances().count(), 0);
    }
}
