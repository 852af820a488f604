//! What `missive bench` is asked to do.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A running server (`http://host:port`, started with `--sms-sink file:PATH`);
    /// without it the bench starts its own embedded server in a temporary directory.
    #[arg(long)]
    pub server: Option<String>,
    /// The SMS sink file of `--server`, to read one-time codes from.
    #[arg(long)]
    pub sms_file: Option<PathBuf>,
    /// Connected users, each sending to the next one.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Messages each user sends.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Total send rate in messages per second (0: as fast as the window allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Sends a user may have awaiting `sent` at once.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// After the message run, open this many idle connections and report RSS per connection.
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// Group fan-out instead of 1:1: one group of `--users` members, all
    /// connected; the first member sends `--messages` at `--rate` per second;
    /// reports the time from a send to its delivery at the last member.
    #[arg(long, default_value_t = false, conflicts_with = "profiles")]
    pub group: bool,
    /// Account changes instead of messages: every user changes its profile
    /// `--messages` times over HTTP, one request at a time (each answered
    /// once the change is in the directory); reports changes per second and
    /// request latency percentiles.
    #[arg(long, default_value_t = false)]
    pub profiles: bool,
    /// Media uploads instead of messages: every user uploads `--messages`
    /// objects of `--media-bytes` one after another (start, PUT to the
    /// URL given, complete); reports latency percentiles of each step and
    /// upload throughput. The server stores them where it is configured to
    /// (`MISSIVE_S3_*` in the environment: presigned S3 URLs).
    #[arg(long, default_value_t = false, conflicts_with_all = ["profiles", "group"])]
    pub media: bool,
    /// Reconnect with a backlog: the first user sends `--messages` to the
    /// second while the second is offline; then the second connects and the
    /// bench reports the time from its hello to the last backlog entry.
    #[arg(long, default_value_t = false, conflicts_with_all = ["profiles", "group", "media"])]
    pub backlog: bool,
    /// 1:1 sends carry an end-to-end encrypted body (`encrypted` with a
    /// session id and the partner's device) instead of `content`: the
    /// server's cost of a sealed message. The bench does not encrypt (the
    /// server cannot tell); every user publishes identity keys first.
    #[arg(long, default_value_t = false, conflicts_with_all = ["profiles", "group", "media", "backlog"])]
    pub sealed: bool,
    /// Pad each 1:1 body (content or ciphertext) to this many bytes, to
    /// compare plaintext and sealed sends of one size.
    #[arg(long, default_value_t = 0)]
    pub body_bytes: usize,
    /// Size of each `--media` upload.
    #[arg(long, default_value_t = 5_000_000)]
    pub media_bytes: usize,
    /// Abuse: this many seconds of one address requesting codes for fresh
    /// numbers at `--flood-rate`, against a server with its default limits,
    /// while a connected user's WebSocket ping and `GET /healthz` are timed
    /// (10 s idle baseline first); prints their percentiles and the
    /// server's RSS.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["profiles", "group", "media", "backlog"])]
    pub flood: u64,
    /// Overload: this many seconds of 1:1 sends offered at 3x the server's
    /// capacity (measured first, or `--rate`), between 10 s at a third of it
    /// and 20 s after; probe users time what a normal user sees. Prints
    /// each second and a JSON summary (refusals, p99 before, during and
    /// after, recovery time, RSS, exactly-once delivery). Use enough
    /// `--users` (532: 500 flood users and 32 probes) that no account
    /// passes its own allowance.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["profiles", "group", "media", "backlog", "flood"])]
    pub overload: u64,
    /// Code requests per second during `--flood`.
    #[arg(long, default_value_t = 500)]
    pub flood_rate: u64,
}
