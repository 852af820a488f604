//! Gateway metrics, exported with the processors' at `GET /metrics`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct GatewayMetrics {
    pub connections: IntGauge,
    pub frames_in: IntCounterVec,
    pub frames_out: IntCounterVec,
    pub append_latency: Histogram,
    pub send_to_deliver: Histogram,
    /// Sends and forwards refused because the gateway was full (`unavailable`, `retry_after`).
    pub sends_shed: IntCounter,
    /// How many sends and forwards the gateway lets into the pipeline at once now (`session::room`).
    pub send_room: IntGauge,
}

impl GatewayMetrics {
    pub fn new(registry: &Registry) -> Result<GatewayMetrics, prometheus::Error> {
        let connections = IntGauge::new("missive_ws_connections", "Open authenticated WebSocket connections")?;
        let frames_in =
            IntCounterVec::new(Opts::new("missive_ws_frames_in_total", "Frames received, by type"), &["type"])?;
        let frames_out =
            IntCounterVec::new(Opts::new("missive_ws_frames_out_total", "Frames sent, by type"), &["type"])?;
        let append_latency = Histogram::with_opts(
            HistogramOpts::new("missive_log_append_seconds", "Latency of appending a command to the log")
                .buckets(vec![0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        )?;
        let send_to_deliver = Histogram::with_opts(
            HistogramOpts::new(
                "missive_send_to_deliver_seconds",
                "From a message's acceptance to its push to a recipient device",
            )
            .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0]),
        )?;
        let sends_shed = IntCounter::new(
            "missive_ws_sends_shed_total",
            "Sends and forwards refused unavailable because the gateway had --max-pending-sends in flight",
        )?;
        let send_room = IntGauge::new(
            "missive_ws_send_room",
            "Sends and forwards the gateway lets into the pipeline at once now (adapts up to --max-pending-sends)",
        )?;
        registry.register(Box::new(send_room.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(frames_in.clone()))?;
        registry.register(Box::new(frames_out.clone()))?;
        registry.register(Box::new(append_latency.clone()))?;
        registry.register(Box::new(send_to_deliver.clone()))?;
        registry.register(Box::new(sends_shed.clone()))?;
        Ok(GatewayMetrics {
            connections,
            frames_in,
            frames_out,
            append_latency,
            send_to_deliver,
            sends_shed,
            send_room,
        })
    }
}
