//! The gateway: HTTP (warp) and WebSocket endpoints for clients. It
//! authenticates devices, turns client frames into commands on the log,
//! and pushes each connected user's feed. It writes no domain state itself.
//!
//! One folder per feature (`account`, `messaging`, `groups`, `media`,
//! `presence`, `push`), each exposing its routes or frame handlers; the
//! layers they share below them (`protocol`, `auth`, `reads`, `commands`,
//! `rest`, `routing`, `session`), and `server` wiring it all together on
//! top. ARCHITECTURE.md has the map.

pub mod account;
pub mod auth;
pub mod commands;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod groups;
pub mod keys;
pub mod media;
pub mod messaging;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod push;
pub mod reads;
pub mod rest;
pub mod routing;
pub mod server;
pub mod session;
pub mod worker;

pub use media::MediaSettings;
pub use server::{Backend, ConnectionLimits, GatewayConfig, serve, serve_connections, tls};
