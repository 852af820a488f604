//! Groups: membership, admins, info and settings, decided in the group's own
//! conversation log. A membership change takes a `conv_seq` like a message,
//! so "who receives message N" is the member list after every change before
//! N — decided by the log order, never by a racing cache.

//! `model` holds the types, `decide` the decider and the fold.

mod decide;
mod model;

pub use decide::*;
pub use model::*;

#[cfg(test)]
mod tests;
