//! Named waits: time that must pass, quiet periods, and polling with a deadline.

use super::*;

/// Lets `duration` pass because passing time is what is tested (a TTL
/// running out, a window closing, distinct timestamps); `why` says which.
/// Waiting for something to happen polls with a deadline instead.
pub async fn let_time_pass(duration: Duration, why: &str) {
    assert!(!why.is_empty(), "say why the time must pass");
    tokio::time::sleep(duration).await;
}

/// Checks that `holds` stays true for `duration` (asked every 50 ms): a
/// "nothing more happens" assertion that fails as soon as something does.
pub async fn assert_quiet_for(duration: Duration, what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        assert!(holds(), "{what}: it changed before {duration:?} had passed");
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` until it answers `Ok`, and returns that answer; fails
/// after `within` with `what` and the last `Err` it gave (what was seen
/// instead). The named wait for "until this happens": it asks again after
/// 20 ms, then less often, up to every 200 ms.
pub async fn eventually<T, Seen: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, Seen>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        match probe().await {
            Ok(answer) => return answer,
            Err(seen) => {
                assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}; last seen {seen:?}")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
