//! Ids in wire structs: the domain's newtypes, written as Avro `long`s.
//!
//! Domain ids are unsigned and minted below 2^63; Avro has only signed
//! longs, and apache-avro writes a `u64` as an 8-byte fixed. These serde
//! helpers (`#[serde(with = "ids::one")]`, `ids::many`, `ids::maybe`)
//! carry a newtype as a long and refuse a negative long when reading, so a
//! decoded wire struct holds only valid ids and the conversions in
//! `convert/` never check them again.

use missive_core::{ConvSeq, ConversationId, DeviceId, Epoch, FeedSeq, MessageId, UserId};
use serde::de::{Deserialize, Deserializer, Error as _, Unexpected};
use serde::ser::Serializer;

/// An id newtype that travels as an Avro long.
pub trait LongId: Copy {
    fn to_long(self) -> i64;
    fn from_long(value: i64) -> Option<Self>;
}

macro_rules! long_ids {
    ($($id:ident),*) => {$(
        impl LongId for $id {
            fn to_long(self) -> i64 {
                // Ids are minted below 2^63; saturate rather than wrap if one is not.
                i64::try_from(self.0).unwrap_or(i64::MAX)
            }
            fn from_long(value: i64) -> Option<Self> {
                u64::try_from(value).ok().map($id)
            }
        }
    )*};
}

long_ids!(UserId, DeviceId, ConversationId, MessageId, ConvSeq, FeedSeq, Epoch);

fn from_long<'de, D: Deserializer<'de>, T: LongId>(value: i64) -> Result<T, D::Error> {
    T::from_long(value).ok_or_else(|| D::Error::invalid_value(Unexpected::Signed(value), &"an id (a long >= 0)"))
}

/// One id.
pub mod one {
    use super::*;

    pub fn serialize<S: Serializer, T: LongId>(id: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(id.to_long())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: LongId>(deserializer: D) -> Result<T, D::Error> {
        from_long::<D, T>(i64::deserialize(deserializer)?)
    }
}

/// An array of ids.
pub mod many {
    use super::*;

    pub fn serialize<S: Serializer, T: LongId>(ids: &[T], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(ids.iter().map(|id| id.to_long()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: LongId>(deserializer: D) -> Result<Vec<T>, D::Error> {
        Vec::<i64>::deserialize(deserializer)?.into_iter().map(from_long::<D, T>).collect()
    }
}

/// An optional id (a `["null", "long"]` union).
pub mod maybe {
    use super::*;

    pub fn serialize<S: Serializer, T: LongId>(id: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => serializer.serialize_some(&id.to_long()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: LongId>(deserializer: D) -> Result<Option<T>, D::Error> {
        Option::<i64>::deserialize(deserializer)?.map(from_long::<D, T>).transpose()
    }
}
