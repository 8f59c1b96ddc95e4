//! Reading frames from a newer relay: a push of a kind this code does not know is skipped, not
//! a broken session (PROTOCOL.md §13.5).
//!
//! [`Push`] is an externally tagged enum (`{ "push": { "<kind>": … } }`, or
//! `{ "push": "<kind>" }` for a kind without fields), so a relay that adds a kind would make
//! [`decode`] fail on the whole frame. A client reads with [`decode_received`] instead: a frame
//! that [`decode`] refuses only because its push names a kind serde does not know comes back as
//! [`Received::UnknownPush`], naming the kind; everything else (a bad field of a known push, a
//! bad response, an unknown version) is refused exactly as [`decode`] refuses it.

use super::{Frame, decode};
use crate::{Error, Result};

/// A frame as a client reads it.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Received {
    /// A frame this code knows.
    Frame(Frame),
    /// A push of a kind this code does not know (sent by a newer relay): to be skipped.
    UnknownPush {
        /// The push's kind, as the relay named it (at most 64 characters).
        kind: String,
    },
}

/// Decodes a frame like [`decode`], but a push of an unknown kind is [`Received::UnknownPush`]
/// rather than an error.
///
/// # Errors
/// As [`decode`], for everything but a push of an unknown kind.
pub fn decode_received(bytes: &[u8]) -> Result<Received> {
    let reason = match decode(bytes) {
        Ok(frame) => return Ok(Received::Frame(frame)),
        Err(Error::Decode { what, reason }) => (what, reason),
        Err(e) => return Err(e),
    };
    let refused = || Error::Decode {
        what: reason.0,
        reason: reason.1.clone(),
    };
    // `decode` checked the size, the version byte and that the frame is not empty.
    let mut rest = bytes.get(1..).unwrap_or_default();
    let Ok(value) = ciborium::from_reader::<ciborium::Value, _>(&mut rest) else {
        return Err(refused());
    };
    if !rest.is_empty() {
        return Err(refused());
    }
    match push_kind(&value) {
        // Serde names the tag it does not know; any other failure (a known kind with a bad
        // field, say) is not this.
        Some(kind) if reason.1.starts_with(&format!("unknown variant `{kind}`")) => {
            Ok(Received::UnknownPush {
                kind: kind.chars().take(64).collect(),
            })
        }
        _ => Err(refused()),
    }
}

/// The kind of `{ "push": "<kind>" }` or `{ "push": { "<kind>": … } }`, if `value` is that.
fn push_kind(value: &ciborium::Value) -> Option<&str> {
    let [(key, push)] = value.as_map()?.as_slice() else {
        return None;
    };
    if key.as_text()? != "push" {
        return None;
    }
    if let Some(kind) = push.as_text() {
        return Some(kind);
    }
    match push.as_map()?.as_slice() {
        [(kind, _)] => kind.as_text(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use ciborium::Value;

    use super::*;
    use crate::wire::{Push, WIRE_VERSION, encode};

    fn frame(value: &Value) -> Vec<u8> {
        let mut out = vec![WIRE_VERSION];
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn push(body: Value) -> Value {
        Value::Map(vec![(Value::Text("push".into()), body)])
    }

    #[test]
    fn a_push_of_an_unknown_kind_is_named_not_refused() {
        let with_fields = frame(&push(Value::Map(vec![(
            Value::Text("queue_moved".into()),
            Value::Map(vec![(
                Value::Text("position".into()),
                Value::Integer(3.into()),
            )]),
        )])));
        assert!(decode(&with_fields).is_err(), "decode itself refuses it");
        assert_eq!(
            decode_received(&with_fields).unwrap(),
            Received::UnknownPush {
                kind: "queue_moved".into()
            }
        );
        let unit = frame(&push(Value::Text("ping_later".into())));
        assert_eq!(
            decode_received(&unit).unwrap(),
            Received::UnknownPush {
                kind: "ping_later".into()
            }
        );
    }

    #[test]
    fn known_frames_decode_and_bad_ones_are_still_refused() {
        let known = encode(&Frame::Push(Push::AuditGrew { size: 3 })).unwrap();
        assert_eq!(
            decode_received(&known).unwrap(),
            Received::Frame(Frame::Push(Push::AuditGrew { size: 3 }))
        );
        // A known kind with a bad field is an error, not an unknown push.
        let bad_field = frame(&push(Value::Map(vec![(
            Value::Text("audit_grew".into()),
            Value::Map(vec![(Value::Text("size".into()), Value::Text("x".into()))]),
        )])));
        assert!(matches!(
            decode_received(&bad_field),
            Err(Error::Decode { .. })
        ));
        // An unknown response or frame kind is not a push: refused.
        let unknown_frame = frame(&Value::Map(vec![(
            Value::Text("gossip".into()),
            Value::Integer(1.into()),
        )]));
        assert!(matches!(
            decode_received(&unknown_frame),
            Err(Error::Decode { .. })
        ));
        // Trailing bytes and other versions as `decode`.
        let mut trailing = frame(&push(Value::Text("ping_later".into())));
        trailing.push(0);
        assert!(matches!(
            decode_received(&trailing),
            Err(Error::Decode { .. })
        ));
        let mut v2 = known.clone();
        v2[0] = 2;
        assert!(matches!(
            decode_received(&v2),
            Err(Error::UnknownVersion(2))
        ));
    }
}
