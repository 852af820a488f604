//! A decider's answer to a command, as a `CommandReply` carries it (by its
//! code, an Avro string, so a newer decider's refusal still reads).

use crate::wire::CommandReply;

/// What a decider answered a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Decided and recorded.
    Accepted,
    /// Already decided earlier (a retry): the original answer stands.
    Duplicate,
    NotFound,
    NotMember,
    Forbidden,
    WrongConversation,
    TooLarge,
    TooLate,
    MessageDeleted,
    Conflict,
    TooManyMembers,
    NoInvite,
    InviteExpired,
    LimitReached,
    TooManyDevices,
    /// A public key or its signature that is malformed or does not verify.
    InvalidKey,
    /// A send whose client message id is malformed.
    BadFrame,
    /// Any other refusal: the command itself is invalid.
    BadRequest,
}

impl Outcome {
    pub const ALL: [Outcome; 18] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::NotFound,
        Outcome::NotMember,
        Outcome::Forbidden,
        Outcome::WrongConversation,
        Outcome::TooLarge,
        Outcome::TooLate,
        Outcome::MessageDeleted,
        Outcome::Conflict,
        Outcome::TooManyMembers,
        Outcome::NoInvite,
        Outcome::InviteExpired,
        Outcome::LimitReached,
        Outcome::TooManyDevices,
        Outcome::InvalidKey,
        Outcome::BadFrame,
        Outcome::BadRequest,
    ];

    /// The stable code the record carries (and clients see for refusals).
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::NotFound => "not_found",
            Outcome::NotMember => "not_member",
            Outcome::Forbidden => "forbidden",
            Outcome::WrongConversation => "wrong_conversation",
            Outcome::TooLarge => "too_large",
            Outcome::TooLate => "too_late",
            Outcome::MessageDeleted => "message_deleted",
            Outcome::Conflict => "conflict",
            Outcome::TooManyMembers => "too_many_members",
            Outcome::NoInvite => "no_invite",
            Outcome::InviteExpired => "invite_expired",
            Outcome::LimitReached => "limit_reached",
            Outcome::TooManyDevices => "too_many_devices",
            Outcome::InvalidKey => "invalid_key",
            Outcome::BadFrame => "bad_frame",
            Outcome::BadRequest => "bad_request",
        }
    }

    /// The outcome a code names; one this build does not know (written by
    /// a newer decider) reads as `BadRequest`: refused, for a reason this
    /// build cannot name.
    pub fn parse(code: &str) -> Outcome {
        Outcome::ALL.into_iter().find(|outcome| outcome.code() == code).unwrap_or(Outcome::BadRequest)
    }

    /// Whether the command was carried out (now or by an earlier try).
    pub fn succeeded(self) -> bool {
        matches!(self, Outcome::Accepted | Outcome::Duplicate)
    }
}

impl CommandReply {
    /// The decider's answer.
    pub fn outcome(&self) -> Outcome {
        Outcome::parse(&self.outcome)
    }

    /// Records the decider's answer.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome.code().to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn every_outcome_reads_back_from_its_code() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.code()), outcome);
        }
        assert_eq!(Outcome::parse("a_refusal_from_a_newer_decider"), Outcome::BadRequest);
    }
}
