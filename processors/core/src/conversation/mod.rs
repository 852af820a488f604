//! The conversation decider: 1:1 conversations, gap-free `conv_seq`,
//! idempotent sends and delivered/read watermarks.
//!
//! `decide` is a pure function of the conversation's state, the command and
//! the few facts the shell looked up for it (a prior send with the same
//! client id, the messages a receipt covers). `evolve` folds an event into the
//! state. The processor runtime owns storage; nothing here does I/O.

//! `model` holds the types, `decide` the decider and the fold.

mod decide;
mod model;

pub use decide::*;
pub use model::*;

#[cfg(test)]
mod tests;
