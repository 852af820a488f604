//! `missive bench`: a load generator speaking the real protocol over real
//! sockets. It registers users, connects one WebSocket each, has every user
//! send 1:1 messages to a partner, and prints send->deliver latency
//! percentiles and delivered messages per second. With `--idle N` it also
//! opens N idle connections and reports the server's RSS per connection.
//!
//! `args` is what it is asked, `support` what every scenario uses,
//! `one_to_one` the default run, `scenarios` and `fan_out` the others,
//! `flood` the OTP flood, `overload` load past capacity, `samples` latency
//! samples.

mod args;
mod fan_out;
mod flood;
mod one_to_one;
mod open_loop;
mod overload;
mod samples;
mod scenarios;
mod support;

pub use args::BenchArgs;
pub use one_to_one::run;
