//! The users decider: accounts, devices, profile, privacy, blocks, contacts
//! and the registration PIN. Every change is a command on `commands.user`
//! decided here into events on `events.user`; the same `evolve` folds the
//! users processor's state and the gateways' directory read model.
//!
//! `model` holds the types, `decide` the decider and fold, `visibility`
//! what others may see.

mod decide;
mod model;
mod visibility;

pub use decide::*;
pub use model::*;
pub use visibility::*;

#[cfg(test)]
mod tests;
