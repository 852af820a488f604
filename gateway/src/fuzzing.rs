//! Entry points for the coverage-guided fuzz targets in `fuzz/`, compiled
//! only with `--cfg fuzzing` (as `cargo fuzz` builds): each hands arbitrary
//! bytes to one of the gateway's parsers, which must answer with a value or
//! an error, never a panic, a hang or unbounded memory.

use std::sync::LazyLock;

use crate::auth::{Auth, AuthConfig, AuthLimits, SmsSink};

/// A client's WebSocket text frame.
pub fn client_frame(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = crate::protocol::parse_client_frame(text);
    }
}

/// The JSON body of every HTTP route that takes one.
pub fn http_bodies(bytes: &[u8]) {
    crate::account::fuzz_bodies(bytes);
    crate::media::fuzz_bodies(bytes);
    crate::groups::fuzz_bodies(bytes);
    crate::keys::fuzz_bodies(bytes);
}

/// An authenticator over a scratch store (one per fuzzing process), for checking tokens.
static AUTH: LazyLock<Auth> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("missive-fuzz-auth-{}", std::process::id()));
    let db = missive_infra::db::open_db(&dir).expect("scratch store");
    let config = AuthConfig {
        jwt_secret: vec![7; 32],
        previous_jwt_secrets: vec![vec![8; 32]],
        phone_secret: vec![9; 32],
        sms_sink: SmsSink::File(dir.join("sms.jsonl")),
        limits: AuthLimits::default(),
    };
    Auth::new(db, config, missive_infra::Clock::system())
});

/// A token as a client presents it: a refresh token's shape, and an access
/// token's signature, claims and algorithm checks.
pub fn tokens(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = Auth::refresh_token_user(text);
        let _ = AUTH.verify_access_until(text);
    }
}
