//! A refused command as the client error it becomes: one table for every
//! command, read by what the command was about.

use missive_schemas::Outcome;
use missive_schemas::wire::CommandReply;
use warp::http::StatusCode;

use crate::protocol::ApiError;

/// What a command was about: a refusal reads differently for each (an
/// unknown group and an unknown message are both `not_found`, each named).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A send or forward, answered in a WebSocket frame.
    Send,
    /// An operation on a message (edit, delete, react).
    Message,
    /// A group change.
    Group,
    /// A change to the caller's account.
    Account,
}

/// The reply, if the command was carried out; otherwise the client error.
pub fn carried_out(reply: CommandReply, subject: Subject) -> Result<CommandReply, ApiError> {
    let outcome = reply.outcome();
    if outcome.succeeded() { Ok(reply) } else { Err(refusal(outcome, reply.detail, subject)) }
}

/// The client error for a refused command.
pub fn refusal(outcome: Outcome, detail: String, subject: Subject) -> ApiError {
    if subject == Subject::Send {
        // A frame's error names the refusal; anything else is the frame's fault.
        let code = match outcome {
            Outcome::TooLarge | Outcome::NotMember | Outcome::Forbidden | Outcome::WrongConversation => outcome.code(),
            _ => "bad_frame",
        };
        return ApiError::bad_request(code, detail);
    }
    match outcome {
        Outcome::Forbidden => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
        // Another's message or group and an unknown one look the same.
        Outcome::NotMember | Outcome::NotFound => match subject {
            Subject::Message => ApiError::not_found("not_found", "no such message among yours"),
            Subject::Group => ApiError::not_found("not_found", "no such group among yours"),
            _ => ApiError::not_found("not_found", detail),
        },
        Outcome::NoInvite => ApiError::not_found("no_invite", detail),
        Outcome::TooLate
        | Outcome::Conflict
        | Outcome::TooManyMembers
        | Outcome::LimitReached
        | Outcome::TooManyDevices => ApiError::new(StatusCode::CONFLICT, outcome.code(), detail),
        Outcome::MessageDeleted | Outcome::InviteExpired => ApiError::new(StatusCode::GONE, outcome.code(), detail),
        Outcome::TooLarge => ApiError::bad_request("too_large", detail),
        Outcome::InvalidKey => ApiError::bad_request("invalid_key", detail),
        Outcome::Accepted
        | Outcome::Duplicate
        | Outcome::WrongConversation
        | Outcome::BadFrame
        | Outcome::BadRequest => ApiError::bad_request("bad_request", detail),
    }
}
