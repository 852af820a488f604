//! Valid inputs to mutate: every client frame and the HTTP requests that
//! write, filled in with the ids of a small world the test builds first.

use serde_json::{Value, json};

/// What one attacking user can name: its own and a peer's messages in
/// their 1:1 chat and a shared group, and a chat it is not in.
pub struct View {
    pub me: String,
    pub device: String,
    pub token: String,
    pub refresh: String,
    pub peer: String,
    pub direct: String,
    pub my_message: String,
    pub peer_message: String,
    pub group: String,
    pub my_group_message: String,
    pub peer_group_message: String,
    pub foreign_conversation: String,
    pub foreign_message: String,
    pub foreign_user: String,
}

/// A request seed: method, path and JSON body.
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub body: Value,
}

fn encrypted(devices: Option<Value>) -> Value {
    let mut body = json!({"session_id": "c2Vzc2lvbg", "ciphertext": "Y2lwaGVydGV4dA"});
    if let Some(devices) = devices {
        body["devices"] = devices;
    }
    body
}

/// Valid frames (numbered `n` for unique `req`s and `client_msg_id`s).
pub fn frames(view: &View, n: u64) -> Vec<Value> {
    let req = format!("r{n}");
    let client = format!("bad-input-{n}");
    vec![
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client, "content": "hi"}),
        json!({"type": "send", "req": req, "to": {"group": view.group}, "client_msg_id": client, "content": "hi all",
               "reply_to": view.peer_group_message}),
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client, "content": "",
               "location": {"latitude": 52.5, "longitude": 13.4, "name": "Berlin"}}),
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client,
               "contact": {"vcard": "BEGIN:VCARD\nFN:Ann\nEND:VCARD"}}),
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client,
               "encrypted": encrypted(Some(json!({view.peer.clone(): ["1"]})))}),
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client,
               "media": {"media_id": "123", "kind": "image", "size": 10, "content_type": "image/png", "caption": "c"}}),
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client, "content": "fwd",
               "forward_of": {"conversation_id": view.direct, "message_id": view.peer_message}}),
        // The same client_msg_id again: a replayed send.
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": "bad-input-replayed", "content": "again"}),
        json!({"type": "forward", "req": req, "of": {"conversation_id": view.direct, "message_id": view.peer_message},
               "to": [{"user": view.peer}, {"group": view.group}], "client_msg_id": client}),
        json!({"type": "send", "req": req, "to": {"user": view.peer}, "client_msg_id": client, "content": "fwd",
               "forward_of": {"conversation_id": view.foreign_conversation, "message_id": view.foreign_message}}),
        json!({"type": "edit", "req": req, "conversation_id": view.direct, "message_id": view.my_message, "content": "edited"}),
        json!({"type": "edit", "req": req, "conversation_id": view.group, "message_id": view.my_group_message,
               "encrypted": encrypted(None)}),
        json!({"type": "delete", "req": req, "conversation_id": view.direct, "message_id": view.my_message, "scope": "me"}),
        json!({"type": "delete", "req": req, "conversation_id": view.group, "message_id": view.peer_group_message,
               "scope": "everyone"}),
        json!({"type": "react", "req": req, "conversation_id": view.direct, "message_id": view.peer_message, "emoji": "👍"}),
        json!({"type": "react", "req": req, "conversation_id": view.group, "message_id": view.peer_group_message,
               "encrypted": encrypted(None)}),
        json!({"type": "share_keys", "req": req, "conversation_id": view.group,
               "messages": [{"user": view.peer, "device": "1", "olm_type": 0, "body": "b2xt"}]}),
        json!({"type": "subscribe_presence", "req": req, "users": [view.peer, view.foreign_user]}),
        json!({"type": "typing", "conversation_id": view.direct, "state": "typing"}),
        json!({"type": "read", "conversation_id": view.direct, "up_to": 1}),
        json!({"type": "ack", "seq": 1}),
        json!({"type": "reauth", "req": req, "token": view.token}),
        json!({"type": "hello", "token": view.token, "resume": {"epoch": "e", "seq": 0}}),
        json!({"type": "ping"}),
    ]
}

/// Valid HTTP requests that write (none that would log the attacker out).
pub fn requests(view: &View, n: u64) -> Vec<Request> {
    let request = |method, path: String, body| Request { method, path, body };
    let group = &view.group;
    vec![
        request("PUT", "/v1/profile".into(), json!({"display_name": "Ann", "about": "hey"})),
        request("PUT", "/v1/privacy".into(), json!({"last_seen": "contacts", "read_receipts": true})),
        request("PUT", format!("/v1/blocks/{}", view.foreign_user), json!({})),
        request("DELETE", format!("/v1/blocks/{}", view.foreign_user), json!({})),
        request("POST", "/v1/contacts/sync".into(), json!({"hashes": ["a".repeat(64)]})),
        request("POST", "/v1/groups".into(), json!({"name": format!("g{n}"), "members": [view.peer]})),
        request("PATCH", format!("/v1/groups/{group}"), json!({"name": "renamed", "description": "d"})),
        request("PUT", format!("/v1/groups/{group}/settings"), json!({"only_admins_send": false})),
        request("POST", format!("/v1/groups/{group}/members"), json!({"users": [view.foreign_user]})),
        request("PUT", format!("/v1/groups/{group}/admins/{}", view.peer), json!({})),
        request("POST", format!("/v1/groups/{}/invite/accept", view.foreign_conversation), json!({})),
        request("POST", "/v1/keys/claim".into(), json!({"user_id": view.peer, "device_id": "1"})),
        request("POST", "/v1/keys/claim".into(), json!({"user_id": view.me, "device_id": view.device})),
        request(
            "PUT",
            "/v1/keys".into(),
            json!({"identity_keys": {"curve25519": "A".repeat(43), "ed25519": "B".repeat(43)},
                   "one_time_keys": [{"key_id": "k1", "key": "C".repeat(43), "signature": "D".repeat(86)}]}),
        ),
        request(
            "POST",
            "/v1/media/uploads".into(),
            json!({"kind": "image", "content_type": "image/png", "size": 10, "sha256": "0".repeat(64)}),
        ),
        request("POST", "/v1/auth/refresh".into(), json!({"refresh_token": view.refresh})),
        request("POST", "/v1/auth/otp".into(), json!({"phone": "+14155550199"})),
        request("POST", "/v1/auth/verify".into(), json!({"phone": "+14155550199", "code": "123456"})),
        request("PUT", "/v1/account/pin".into(), json!({"pin": "12x456"})),
        request("GET", format!("/v1/conversations/{}/messages?limit=5", view.direct), Value::Null),
        request("GET", format!("/v1/conversations/{}/messages/{}/receipts", view.direct, view.my_message), Value::Null),
    ]
}
