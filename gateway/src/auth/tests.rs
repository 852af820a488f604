use std::net::IpAddr;
use std::time::Duration;

use governor::RateLimiter;
use missive_core::UserId;
use missive_infra::Clock;

use super::config::*;
use super::identity::*;
use super::service::*;

#[test]
fn ipv6_clients_are_keyed_by_their_64_prefix() {
    let key = |text: &str| address_key(text.parse().expect("address"));
    assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"), "one /64, one bucket");
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
}

fn test_auth(dir: &std::path::Path, limits: AuthLimits, phone_secret: u8) -> Auth {
    test_auth_at(dir, limits, phone_secret, Clock::system())
}

fn test_auth_at(dir: &std::path::Path, limits: AuthLimits, phone_secret: u8, clock: Clock) -> Auth {
    let db = missive_infra::db::open_db(dir).expect("db");
    let config = AuthConfig {
        jwt_secret: vec![7; 32],
        previous_jwt_secrets: Vec::new(),
        phone_secret: vec![phone_secret; 32],
        sms_sink: SmsSink::File(dir.join("sms.jsonl")),
        limits,
    };
    Auth::new(db, config, clock)
}

/// Tokens expire on the authenticator's clock: a token is good until its
/// lifetime has passed on that clock, then refused as expired.
#[tokio::test]
async fn access_tokens_expire_on_the_authenticators_clock() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = Clock::manual(1_900_000_000_000);
    let auth = test_auth_at(dir.path(), AuthLimits::default(), 9, clock.clone());
    let principal = Principal { user: UserId(41), device: missive_core::DeviceId(7) };
    let (access, _refresh, lifetime) = auth.issue(principal).await.expect("tokens");
    let (verified, expires_at) = auth.verify_access_until(&access).expect("a fresh token is good");
    assert_eq!((verified, expires_at), (principal, 1_900_000_000 + lifetime));
    clock.advance(Duration::from_secs(u64::try_from(lifetime).expect("positive") - 1));
    assert!(auth.verify_access(&access).is_ok(), "good until its lifetime has passed");
    clock.advance(Duration::from_secs(2));
    let refused = auth.verify_access(&access).expect_err("expired");
    assert!(refused.message.contains("ExpiredSignature"), "{}", refused.message);
}

#[tokio::test]
async fn pins_are_stored_as_salted_peppered_argon2id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = test_auth(dir.path(), AuthLimits::default(), 8);
    let (user, other) = (UserId(41), UserId(42));
    let first = auth.pin_hash(user, "246810").await.expect("hash");
    let second = auth.pin_hash(user, "246810").await.expect("hash");
    assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{first}");
    assert_ne!(first, second, "each hash has its own salt");
    assert_eq!(auth.pin_matches(user, "246810", &first).await.ok(), Some(true));
    assert_eq!(auth.pin_matches(user, "246811", &first).await.ok(), Some(false));
    assert_eq!(auth.pin_matches(other, "246810", &first).await.ok(), Some(false), "bound to the account");
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other_server = test_auth(other_dir.path(), AuthLimits::default(), 9);
    assert_eq!(other_server.pin_matches(user, "246810", &first).await.ok(), Some(false), "keyed by the secret");
    // PINs set before argon2id (a keyed SHA-256) still verify.
    let legacy = hex::encode(auth.keyed_hash(&[b"pin", &user.to_be_bytes(), b"135790"]));
    assert_eq!(auth.pin_matches(user, "135790", &legacy).await.ok(), Some(true));
    assert_eq!(auth.pin_matches(user, "135791", &legacy).await.ok(), Some(false));
}

#[tokio::test]
async fn a_flood_of_fresh_numbers_from_one_address_stores_nothing_once_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = AuthLimits { otp_per_address_per_hour: 3, ..AuthLimits::default() };
    let auth = test_auth(dir.path(), limits, 8);
    let address: IpAddr = "2001:db8::1".parse().expect("address");
    for n in 0..3 {
        auth.start_otp(&format!("+1415555{n:04}"), Some(address)).await.expect("within the allowance");
    }
    for n in 3..1_000 {
        let other_in_prefix: IpAddr = format!("2001:db8::{n:x}").parse().expect("address");
        let refused = auth.start_otp(&format!("+1415555{n:04}"), Some(other_in_prefix)).await;
        assert_eq!(refused.map_err(|error| error.code), Err("rate_limited"));
    }
    assert_eq!(auth.limiters.otp_phone.len(), 3, "refused requests left no bucket per number");
}

#[test]
fn e164_numbers_are_recognised() {
    assert!(is_e164("+14155550100"));
    assert!(!is_e164("14155550100"));
    assert!(!is_e164("+0123456789"));
    assert!(!is_e164("+1415555010012345"));
    assert!(!is_e164("+1415-555"));
    assert!(!is_e164("+123"));
}

#[test]
fn contact_hashes_are_sha256_of_the_e164_text() {
    let hash = contact_hash("+14155550100");
    assert_eq!(hash, "40d3f4e02db27d66cf4cfdda506c2c945f115a7955cc8491dda98ce5beabcda0");
    assert!(is_contact_hash(&hash));
    assert!(!is_contact_hash(&hash.to_uppercase()));
    assert!(!is_contact_hash("+14155550100"));
}

#[test]
fn refresh_tokens_name_their_user_and_pins_are_six_digits() {
    let secret = "ab".repeat(32);
    assert_eq!(Auth::refresh_token_user(&format!("rt1.42.{secret}")), Some(UserId(42)));
    assert_eq!(Auth::refresh_token_user(&format!("rt2.42.{secret}")), None);
    assert_eq!(Auth::refresh_token_user("rt1.42.short"), None);
    assert_eq!(Auth::refresh_token_user(&format!("rt1.x.{secret}")), None);
    assert_eq!(Auth::refresh_token_user(&format!("rt1.42.{secret}.extra")), None);
    assert!(is_pin("012345"));
    assert!(!is_pin("12345") && !is_pin("1234567") && !is_pin("12a456"));
}

#[test]
fn quotas_allow_the_full_count_at_once_then_refill_evenly() {
    let limiter: Limiter<u8> = RateLimiter::keyed(per(Duration::from_secs(3600), 5));
    for _ in 0..5 {
        assert!(check(&limiter, &1, "tries").is_ok());
    }
    let refused = check(&limiter, &1, "tries").expect_err("the sixth is refused");
    assert_eq!(refused.status.as_u16(), 429);
    let wait = refused.retry_after.expect("retry_after");
    assert!((700..=720).contains(&wait), "one try comes back every 12 minutes: {wait}");
    assert!(check(&limiter, &2, "tries").is_ok(), "keys are independent");
}

#[test]
fn sms_sinks_parse() {
    assert_eq!("log".parse::<SmsSink>(), Ok(SmsSink::Log));
    assert_eq!("file:/tmp/x".parse::<SmsSink>(), Ok(SmsSink::File("/tmp/x".into())));
    assert_eq!("webhook:http://h/p".parse::<SmsSink>(), Ok(SmsSink::Webhook("http://h/p".into())));
    assert!("smtp:x".parse::<SmsSink>().is_err());
}
