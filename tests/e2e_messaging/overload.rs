//! Overload: a gateway with no room for more pending sends refuses them
//! `unavailable` with `retry_after`, keeps the connection, lets no later
//! send overtake a refused one, and loses or repeats nothing once the
//! clients send again as the protocol asks. (The full-size run is
//! `missive bench --overload`, figures in BENCHMARKS.md.)

use super::*;

const SENDERS: usize = 8;
const MESSAGES: usize = 30;

/// One sender's run: pipelines everything unconfirmed, in order; after a
/// refusal waits its `retry_after` and sends again from the first
/// unconfirmed. Returns (refusals, rounds). Checks that once a send of a
/// round is refused, every later one of that round is refused too.
async fn send_all(connection: &mut missive_client::Connection, to: &str, tag: &str) -> (usize, usize) {
    let mut unconfirmed: Vec<usize> = (0..MESSAGES).collect();
    let (mut refusals, mut rounds) = (0, 0);
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    while !unconfirmed.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "{tag}: {} never confirmed", unconfirmed.len());
        rounds += 1;
        for &index in &unconfirmed {
            let frame = json!({"type": "send", "req": format!("{index}"), "to": {"user": to},
                "client_msg_id": format!("{tag}-{index}"), "content": format!("{index}")});
            connection.send_json(&frame).await.expect("send");
        }
        let mut answers: Vec<(usize, Value)> = Vec::new();
        let wanted = unconfirmed.len();
        let frames = connection
            .collect_until(WAIT, |frames| {
                frames.iter().filter(|frame| frame["type"] == "sent" || frame["type"] == "error").count() >= wanted
            })
            .await
            .expect("every send is answered and the connection stays open");
        for frame in frames.into_iter().filter(|frame| frame["type"] == "sent" || frame["type"] == "error") {
            let index = frame["req"].as_str().and_then(|req| req.parse().ok()).expect("answers carry the req");
            answers.push((index, frame));
        }
        answers.sort_by_key(|(index, _)| *index);
        let mut retry_after = None;
        for (index, answer) in &answers {
            if answer["type"] == "sent" {
                assert!(
                    retry_after.is_none(),
                    "{tag}: {index} was taken after an earlier send was refused: {answers:?}"
                );
                unconfirmed.retain(|other| other != index);
            } else {
                assert_eq!(answer["code"], "unavailable", "{answer}");
                let hint = answer["retry_after"].as_u64();
                assert!(
                    hint.is_some_and(|seconds| (1..=3).contains(&seconds)),
                    "a refusal says when to send again: {answer}"
                );
                refusals += 1;
                retry_after = answer["retry_after"].as_u64();
            }
        }
        if let Some(seconds) = retry_after {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
    }
    (refusals, rounds)
}

#[tokio::test]
async fn an_overloaded_gateway_refuses_sends_with_a_retry_hint_and_loses_or_repeats_nothing() {
    // Room for two pending sends, and no waiting for it: with eight
    // connections pipelining thirty each, most sends find no room.
    let server = Server::start_with_env(&[
        ("MISSIVE_MAX_PENDING_SENDS", "2".to_string()),
        ("MISSIVE_ADMISSION_WAIT_MS", "0".to_string()),
    ])
    .await;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for n in 0..SENDERS {
        let sender = server.register(&format!("+1415555760{n}"), "s").await;
        let receiver = server.register(&format!("+1415555761{n}"), "r").await;
        senders.push((server.connect(&sender).await, receiver.user_id.clone(), format!("s{n}")));
        receivers.push((server.connect(&receiver).await, sender.user_id.clone()));
    }
    let runs = senders.iter_mut().map(|(connection, to, tag)| send_all(connection, to, tag));
    let results = futures::future::join_all(runs).await;
    let refusals: usize = results.iter().map(|(refusals, _)| refusals).sum();
    assert!(refusals > 0, "eight connections pipelining into room for two were never refused: {results:?}");
    // Every message arrives once, in the order it was sent.
    for (connection, from) in &mut receivers {
        let frames = connection
            .collect_until(WAIT, |frames| count_messages_from(frames, from) >= MESSAGES)
            .await
            .expect("all messages arrive");
        let order: Vec<usize> = messages_from(&frames, from)
            .iter()
            .map(|event| event["content"].as_str().and_then(|text| text.parse().ok()).expect("index"))
            .collect();
        assert_eq!(order, (0..MESSAGES).collect::<Vec<_>>(), "each message once, in order");
    }
    // Counted on every gateway (two in Kafka mode).
    let gateways = server.cluster().map_or_else(|| vec![server.api.base.clone()], |cluster| cluster.gateways.clone());
    let mut shed = 0.0;
    for base in gateways {
        let metrics = missive_client::Api::new(&base).get_text("/metrics").await.expect("metrics");
        shed += metrics
            .lines()
            .find_map(|line| line.strip_prefix("missive_ws_sends_shed_total ")?.trim().parse::<f64>().ok())
            .expect("the shed counter is exported");
    }
    assert!(shed >= 1.0, "refusals are counted: {shed}");
    eprintln!("{refusals} refusals over {SENDERS} senders; rounds {results:?}");
}
