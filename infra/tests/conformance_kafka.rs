//! The `Log` conformance suite on the Kafka backend: against a real
//! Kafka-protocol broker (the Tansu binary, started here) and against
//! librdkafka's in-process mock cluster.

use std::time::Duration;

use missive_infra::broker::LocalBroker;
use missive_infra::{KafkaConfig, KafkaLog, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_passes_the_conformance_suite_on_a_real_broker() {
    let broker = LocalBroker::start().expect("start the test broker");
    let log = KafkaLog::connect(KafkaConfig::new(broker.bootstrap())).expect("client");
    log.wait_ready(Duration::from_secs(30)).await.expect("broker answers");
    conformance::run_all(&log, "conformance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_readers_of_a_real_broker_miss_nothing_concurrent_producers_appended() {
    let broker = LocalBroker::start().expect("start the test broker");
    for shared_consumer in [false, true] {
        let clients: Vec<KafkaLog> = (0..8)
            .map(|_| {
                let mut config = KafkaConfig::new(broker.bootstrap());
                config.shared_consumer = shared_consumer;
                KafkaLog::connect(config).expect("client")
            })
            .collect();
        clients[0].wait_ready(Duration::from_secs(30)).await.expect("broker answers");
        let logs: Vec<&dyn missive_infra::Log> =
            clients.iter().map(|client| client as &dyn missive_infra::Log).collect();
        let prefix = if shared_consumer { "shared" } else { "dedicated" };
        conformance::tailing_readers_see_every_record_of_concurrent_producers(&logs, prefix).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_with_a_shared_consumer_passes_the_conformance_suite() {
    let broker = LocalBroker::start().expect("start the test broker");
    let mut config = KafkaConfig::new(broker.bootstrap());
    config.shared_consumer = true;
    let log = KafkaLog::connect(config).expect("client");
    log.wait_ready(Duration::from_secs(30)).await.expect("broker answers");
    conformance::run_all(&log, "conformance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_passes_the_conformance_suite_on_the_mock_cluster() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    // The mock serves no admin requests: topics are made on the cluster itself.
    let topics =
        [("create", 3), ("readback", 1), ("keys", 6), ("tail", 2), ("time", 1), ("groups", 2), ("concurrent", 1)];
    for (name, partitions) in topics {
        cluster.create_topic(&format!("conformance.{name}"), partitions, 1).expect("mock topic");
    }
    let log = KafkaLog::connect(KafkaConfig::new(cluster.bootstrap_servers())).expect("client");
    log.wait_ready(Duration::from_secs(30)).await.expect("mock cluster answers");
    conformance::run_all(&log, "conformance").await;
}
