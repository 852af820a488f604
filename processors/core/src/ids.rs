//! Newtypes for every identifier and position. 64-bit ids travel as decimal
//! strings on the client protocol (JavaScript cannot hold them as numbers).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse::<u64>().map($name)
            }
        }

        impl $name {
            /// Big-endian bytes: keys built from them sort numerically.
            pub fn to_be_bytes(self) -> [u8; 8] {
                self.0.to_be_bytes()
            }
        }
    };
}

id_newtype!(
    /// A user (one account, one phone number).
    UserId
);
id_newtype!(
    /// One device of a user; each device has its own feed acknowledgement position.
    DeviceId
);
id_newtype!(
    /// A conversation; 1:1 conversations have an id derived from the two users.
    ConversationId
);
id_newtype!(
    /// A Snowflake message id: 41-bit milliseconds, 10-bit node, 12-bit sequence.
    MessageId
);
id_newtype!(
    /// Gap-free position of an event inside one conversation, starting at 1.
    ConvSeq
);
id_newtype!(
    /// Gap-free position of an entry inside one user's feed, starting at 1.
    FeedSeq
);
id_newtype!(
    /// Identity of one incarnation of a user's feed; a rebuilt feed gets a new epoch.
    Epoch
);

impl Epoch {
    /// The epoch of a user's first feed, derived from the user id alone
    /// (splitmix64): a gateway can name it before the inbox has created the
    /// feed, and a replay of the log gives the same one. Rebuilt feeds move
    /// to another epoch. Never 0, below 2^63.
    pub fn initial(user: UserId) -> Epoch {
        let mut z = user.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Epoch(((z ^ (z >> 31)) >> 1) | 1)
    }

    /// The epoch a rebuilt feed moves to: derived from the one it replaces
    /// and a salt (the rebuild's time), never equal to it.
    pub fn rebuilt(self, salt: u64) -> Epoch {
        let next = Epoch::initial(UserId(self.0 ^ salt.rotate_left(17)));
        if next == self { Epoch((self.0 ^ 2) | 1) } else { next }
    }
}

/// Milliseconds since the Unix epoch. Inside deciders and folds time always
/// comes from the input record's timestamp, never from a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

/// Custom epoch of Missive Snowflakes: 2024-01-01T00:00:00Z.
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
pub const MAX_SEQUENCE: u16 = (1 << SEQUENCE_BITS) - 1;

impl MessageId {
    /// Assembles a Snowflake. `sequence` and `node` are masked to their widths.
    pub fn from_parts(unix_ms: i64, node: u16, sequence: u16) -> MessageId {
        let since_epoch = (unix_ms - SNOWFLAKE_EPOCH_MS).max(0) as u64 & ((1u64 << 41) - 1);
        MessageId(
            (since_epoch << (NODE_BITS + SEQUENCE_BITS))
                | (u64::from(node & MAX_NODE) << SEQUENCE_BITS)
                | u64::from(sequence & MAX_SEQUENCE),
        )
    }

    /// The wall-clock millisecond the id was minted at.
    pub fn unix_ms(self) -> i64 {
        (self.0 >> (NODE_BITS + SEQUENCE_BITS)) as i64 + SNOWFLAKE_EPOCH_MS
    }
}

impl ConversationId {
    /// The 1:1 conversation between two users: the same for both orders.
    /// Derived by SHA-256 so that it is stable across builds and languages.
    pub fn direct(a: UserId, b: UserId) -> ConversationId {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let mut hasher = Sha256::new();
        hasher.update(b"missive/direct/v1");
        hasher.update(low.to_be_bytes());
        hasher.update(high.to_be_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // Ids stay below 2^63 so they fit Avro's signed long.
        ConversationId(u64::from_be_bytes(first) >> 1)
    }
}

impl ConvSeq {
    pub fn next(self) -> ConvSeq {
        ConvSeq(self.0 + 1)
    }
}

impl FeedSeq {
    pub fn next(self) -> FeedSeq {
        FeedSeq(self.0 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_conversation_id_is_symmetric_and_distinct() {
        let a = UserId(7);
        let b = UserId(9);
        assert_eq!(ConversationId::direct(a, b), ConversationId::direct(b, a));
        assert_ne!(ConversationId::direct(a, b), ConversationId::direct(a, UserId(10)));
        assert!(ConversationId::direct(a, b).0 < (1 << 63));
    }

    #[test]
    fn snowflake_round_trips_its_time_and_orders_by_time() {
        let early = MessageId::from_parts(1_800_000_000_000, 3, 4095);
        let late = MessageId::from_parts(1_800_000_000_001, 0, 0);
        assert_eq!(early.unix_ms(), 1_800_000_000_000);
        assert!(early < late);
        assert!(late.0 < (1 << 63));
    }

    #[test]
    fn ids_print_and_parse_as_decimal() {
        let id: MessageId = "123456789012345678".parse().expect("decimal id");
        assert_eq!(id.to_string(), "123456789012345678");
        assert!("12x".parse::<UserId>().is_err());
    }
}
