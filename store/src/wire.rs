//! Serde adapter that carries a prost message as its protobuf bytes.
//!
//! Raft commands embed etcd request messages as they came off the wire; keeping them in
//! protobuf form means the replicated log holds exactly what the client sent, and we need no
//! parallel set of hand-written request structs.

use prost::Message;
use serde::{Deserialize, Deserializer, Serializer};

/// Serialize `msg` as its protobuf encoding.
pub fn serialize<M: Message, S: Serializer>(msg: &M, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(&msg.encode_to_vec())
}

/// Deserialize a protobuf-encoded message.
pub fn deserialize<'de, M: Message + Default, D: Deserializer<'de>>(d: D) -> Result<M, D::Error> {
    let bytes = serde_bytes::ByteBuf::deserialize(d)?;
    M::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
}
