//! `missive chat`, the terminal client, driven as a person would through
//! its scriptable commands, against a server that refuses plaintext: two
//! profiles register, compare security codes, chat with ticks, send a
//! sealed picture, make a group and talk in it. Both modes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Server, run_tool};
use serde_json::{Value, json};

struct Profile {
    dir: tempfile::TempDir,
    server: String,
}

impl Profile {
    fn new(server: &Server) -> Profile {
        Profile { dir: tempfile::tempdir().expect("profile dir"), server: server.api.base.clone() }
    }

    /// Runs `missive chat <args>` with this profile; its JSON lines.
    async fn chat(&self, args: &[&str]) -> Vec<Value> {
        let profile = self.dir.path().join("profile").display().to_string();
        let mut all = vec!["chat".to_string(), "--server".into(), self.server.clone(), "--profile".into(), profile];
        all.extend(args.iter().map(|arg| arg.to_string()));
        let output = run_tool(all).await;
        assert!(output.success, "missive chat {args:?} failed: {}", output.stderr);
        output.lines
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `read` until a printed line satisfies `wanted` (each `read` waits 1 s).
async fn read_until(profile: &Profile, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..20 {
        if let Some(line) = profile.chat(&["read", "--wait", "1"]).await.into_iter().find(|line| wanted(line)) {
            return line;
        }
    }
    panic!("`missive chat read` never showed {what}");
}

#[tokio::test]
async fn two_people_chat_with_missive_chat_sealed_with_ticks_pictures_groups_and_security_codes() {
    let server = Server::start_with_env(&[("MISSIVE_ALLOW_PLAINTEXT", "false".into())]).await;
    let sms = server.sms_file().display().to_string();
    let (alice, bob) = (Profile::new(&server), Profile::new(&server));
    let registered = alice.chat(&["register", "+14155556301", "--sms-file", &sms]).await;
    let alice_id = registered[0]["registered"].as_str().expect("user id").to_string();
    let registered = bob.chat(&["register", "+14155556302", "--sms-file", &sms]).await;
    let bob_id = registered[0]["registered"].as_str().expect("user id").to_string();
    // The same security code on both sides.
    let hers = alice.chat(&["verify", &bob_id]).await;
    let his = bob.chat(&["verify", &alice_id]).await;
    let code = hers[0]["security_code"].as_str().expect("a code");
    assert_eq!(code.len(), 71, "60 digits in 12 groups: {code}");
    assert_eq!(hers[0]["security_code"], his[0]["security_code"]);
    // The profile (keys, sessions, chats) is its owner's only.
    let profile = alice.path().join("profile");
    for path in [profile.clone(), profile.join("device.json"), profile.join("chats.json")] {
        let mode = std::fs::metadata(&path).expect("profile file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is open to others: {mode:o}", path.display());
    }

    // A message, read on the other side, and its ticks coming back.
    let sent = alice.chat(&["send", &bob_id, "hello bob, sealed"]).await;
    assert_eq!(sent[0]["ticks"], "sent", "{sent:?}");
    let line = read_until(&bob, "alice's message", |line| line["text"] == "hello bob, sealed").await;
    assert_eq!(line["from"], alice_id.as_str());
    read_until(&alice, "the delivered tick", |line| line["ticks"] == "delivered").await;
    let opened = alice.chat(&["open", &bob_id]).await;
    assert_eq!(opened[0]["text"], "hello bob, sealed");
    assert_eq!(opened[0]["ticks"], "delivered", "{opened:?}");
    let chats = bob.chat(&["chats"]).await;
    assert_eq!(chats[0]["chat"], format!("user:{alice_id}"), "{chats:?}");

    // A picture sealed on bob's device.
    let picture = bob.path().join("cat.jpg");
    std::fs::write(&picture, [0xff_u8, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5]).expect("picture");
    let picture = picture.display().to_string();
    bob.chat(&["send", &alice_id, "a cat", "--file", &picture]).await;
    let line = read_until(&alice, "bob's picture", |line| line["text"] == "a cat").await;
    assert_eq!(line["attachment"], "image", "{line}");

    // A group, and a message in it.
    let group = alice.chat(&["group", "plans", &bob_id]).await;
    let group_id = group[0]["group"].as_str().expect("group id").to_string();
    alice.chat(&["send", &format!("group:{group_id}"), "to the group"]).await;
    let line = read_until(&bob, "the group message", |line| line["text"] == "to the group").await;
    assert_eq!(line["conversation_id"], group_id.as_str());
    let listed = bob.chat(&["chats"]).await;
    assert!(listed.iter().any(|chat| chat["name"] == json!("plans")), "{listed:?}");
}
