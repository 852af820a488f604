//! Missive's pure folds: how delivery items and conversation events change
//! the per-user views (feed, conversation list) and the per-conversation
//! history. No I/O: the inbox and history processors in `missive-processors`
//! load the affected keys, call these functions and persist the result.

pub mod conversations;
pub mod feed;
pub mod history;

pub use conversations::ConversationSummary;
pub use feed::{AckEffects, FeedEntry, FeedState, MessageMark, ResumePlan};
pub use history::HistoryMessage;
