//! Reading frames from a newer relay: a push of a kind this code does not know is skipped, not
//! a broken session (PROTOCOL.md §13.5).
//!
//! [`Push`] is an externally tagged enum (`{ "push": { "<kind>": … } }`, or
//! `{ "push": "<kind>" }` for a kind without fields), so a relay that adds a kind would make
//! [`decode`] fail on the whole frame. A client reads with [`decode_received`] instead. A frame
//! that [`decode`] refuses is looked at again, structurally: if it is a push envelope whose
//! kind (the tag) is not one of [`Push`]'s kinds, it comes back as [`Received::UnknownPush`],
//! naming the kind; everything else (a known kind with a bad body, a bad response, a frame of
//! another shape, an unknown version) is refused exactly as [`decode`] refuses it — but for an
//! `entries` response refused because one of its audit entries does not decode (an unknown
//! event name, a known kind in the extension form, a bad field): that is
//! [`LogError::MalformedEntry`], naming the entry's index in the log and why, in words.
//!
//! The known kinds are read from [`Push`]'s own `Deserialize` implementation (the variant names
//! serde hands a deserializer), so they cannot drift from the enum, and the decision never
//! depends on the wording of serde's errors.

use serde::de::{self, Deserialize as _, Visitor};

use super::{Frame, Push, decode};
use crate::{
    Error, Result,
    audit::{AuditEntry, AuditEvent, LogError},
};

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
    /// The answer to request `id`, refused for a fault of its own that names what is wrong
    /// better than the frame's decode message: an `entries` listing with a malformed entry
    /// ([`LogError::MalformedEntry`]). The request fails with `error`; the frame is otherwise
    /// well formed, so the session goes on.
    Refused {
        /// The request the answer was for.
        id: u64,
        /// Why it is refused.
        error: Error,
    },
}

/// Decodes a frame like [`decode`], but a push of an unknown kind is [`Received::UnknownPush`]
/// rather than an error.
///
/// # Errors
/// As [`decode`], for everything but a push of an unknown kind.
pub fn decode_received(bytes: &[u8]) -> Result<Received> {
    let refused = match decode(bytes) {
        Ok(frame) => return Ok(Received::Frame(frame)),
        Err(e @ Error::Decode { .. }) => e,
        Err(e) => return Err(e),
    };
    // `decode` checked the size, the version byte and that the frame is not empty.
    let mut rest = bytes.get(1..).unwrap_or_default();
    let Ok(value) = ciborium::from_reader::<ciborium::Value, _>(&mut rest) else {
        return Err(refused);
    };
    if !rest.is_empty() {
        return Err(refused);
    }
    if let Some((id, error)) = malformed_entry(&value) {
        return Ok(Received::Refused { id, error });
    }
    match push_kind(&value) {
        // A kind this code knows failed on its body: that is a malformed frame.
        Some(kind) if !push_kinds().contains(&kind) => Ok(Received::UnknownPush {
            kind: kind.chars().take(64).collect(),
        }),
        _ => Err(refused),
    }
}

/// For an `entries` response (`{ "response": { id, body: { "entries": { from, entries,
/// withheld } } } }`) refused because one of its readable entries does not decode: the
/// request's id and the first such entry, as [`LogError::MalformedEntry`] naming its index in
/// the log (the readable entries take, in order, the slots `from..` that `withheld` does not
/// name) and why. `None` for any other frame, or one whose envelope is itself malformed
/// (refused as [`decode`] refuses it).
fn malformed_entry(value: &ciborium::Value) -> Option<(u64, Error)> {
    let response = field(value, "response")?;
    let id = u64::try_from(field(response, "id")?.as_integer()?).ok()?;
    let listing = field(field(response, "body")?, "entries")?;
    let from = field(listing, "from")?.as_integer()?;
    let from = u64::try_from(from).ok()?;
    let entries = field(listing, "entries")?.as_array()?;
    let withheld = match field(listing, "withheld") {
        None => Vec::new(),
        Some(w) => w
            .as_array()?
            .iter()
            .map(|slot| u64::try_from(field(slot, "index")?.as_integer()?).ok())
            .collect::<Option<Vec<u64>>>()?,
    };
    let mut slots = (from..).filter(|i| !withheld.contains(i));
    for entry in entries {
        let index = slots.next()?;
        if let Err(e) = entry.deserialized::<AuditEntry>() {
            let reason = entry_fault(entry, &serde_message(e));
            return Some((id, Error::Audit(LogError::MalformedEntry { index, reason })));
        }
    }
    None
}

/// Why `entry` (which does not decode, with serde's message `message`) is malformed, in words:
/// its event's name, its event's body, or another of its fields.
fn entry_fault(entry: &ciborium::Value, message: &str) -> String {
    let event = field(entry, "event");
    let name = event.and_then(|event| {
        event
            .as_text()
            .or_else(|| match event.as_map()?.as_slice() {
                [(name, _)] => name.as_text(),
                _ => None,
            })
    });
    match (name, event) {
        (Some(name), _) if !event_kinds().contains(&name) => format!(
            "its event `{}` is not a kind this version knows (a later kind is served as \
             `extension`, with its code)",
            name.chars().take(64).collect::<String>()
        ),
        (Some(name), Some(event)) => match event.deserialized::<AuditEvent>() {
            Err(e) => format!("its `{name}` event does not decode: {}", serde_message(e)),
            Ok(_) => format!("a field does not decode: {message}"),
        },
        _ => format!("a field does not decode: {message}"),
    }
}

/// The message of a CBOR value's decoding error (at most 120 characters).
fn serde_message(e: ciborium::value::Error) -> String {
    let ciborium::value::Error::Custom(m) = e;
    m.chars().take(120).collect()
}

/// The kinds of [`AuditEvent`] this code knows, as they are named on the wire (`extension`
/// among them).
fn event_kinds() -> &'static [&'static str] {
    let mut kinds: &'static [&'static str] = &[];
    // Always "fails": the deserializer stops as soon as it has been told the variants.
    let _ = AuditEvent::deserialize(VariantNames(&mut kinds));
    kinds
}

/// The value under text key `key` of map `value`.
fn field<'a>(value: &'a ciborium::Value, key: &str) -> Option<&'a ciborium::Value> {
    value
        .as_map()?
        .iter()
        .find_map(|(k, v)| (k.as_text() == Some(key)).then_some(v))
}

/// The kinds of [`Push`] this code knows, as they are named on the wire.
pub fn push_kinds() -> &'static [&'static str] {
    let mut kinds: &'static [&'static str] = &[];
    // Always "fails": the deserializer stops as soon as it has been told the variants.
    let _ = Push::deserialize(VariantNames(&mut kinds));
    kinds
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

/// A deserializer that reads nothing: asked for an enum, it keeps the names of the enum's
/// variants (serde's derive passes the wire names, after renaming) and stops.
struct VariantNames<'a>(&'a mut &'static [&'static str]);

/// What [`VariantNames`] answers every request with.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("only the variant names are read")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for VariantNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> core::result::Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> core::result::Result<V::Value, Stop> {
        *self.0 = variants;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
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

    /// An `entries` response from 10 with slot 11 withheld and three readable entries (slots
    /// 10, 12, 13), the last made by `spoil` from a well-formed one.
    fn listing_with(spoil: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
        use crate::{
            audit::{AuditEntry, AuditEvent},
            ids::ConversationId,
            keys::IdentityKeys,
        };
        let keys = IdentityKeys::generate(&mut crate::test_rng(77));
        let entry = |i: u8| {
            let event = AuditEvent::Erasure {
                conversation: ConversationId::from_bytes(&[i; 16]).unwrap(),
                reason: "retention".into(),
            };
            Value::serialized(&AuditEntry::sign(&keys, event, u64::from(i))).unwrap()
        };
        let mut last = entry(3);
        let Value::Map(fields) = &mut last else {
            panic!("an entry is a map");
        };
        spoil(fields);
        let text = |t: &str| Value::Text(t.into());
        let listing = Value::Map(vec![
            (text("from"), Value::Integer(10.into())),
            (
                text("entries"),
                Value::Array(vec![entry(1), entry(2), last]),
            ),
            (
                text("withheld"),
                Value::Array(vec![Value::Map(vec![
                    (text("index"), Value::Integer(11.into())),
                    (text("leaf"), Value::Bytes(vec![0; 32])),
                ])]),
            ),
        ]);
        let body = Value::Map(vec![(text("entries"), listing)]);
        frame(&Value::Map(vec![(
            text("response"),
            Value::Map(vec![
                (text("id"), Value::Integer(5.into())),
                (text("body"), body),
            ]),
        )]))
    }

    /// Sets the event of an entry's fields to `event`.
    fn set_event(fields: &mut [(Value, Value)], event: Value) {
        for (k, v) in fields.iter_mut() {
            if k.as_text() == Some("event") {
                *v = event.clone();
            }
        }
    }

    fn malformed(bytes: &[u8]) -> (u64, String) {
        match decode_received(bytes) {
            Ok(Received::Refused {
                id: 5,
                error: Error::Audit(LogError::MalformedEntry { index, reason }),
            }) => (index, reason),
            other => panic!("expected a malformed entry, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_listing_decodes() {
        assert!(matches!(
            decode_received(&listing_with(|_| {})),
            Ok(Received::Frame(_))
        ));
    }

    #[test]
    fn an_entry_with_an_unknown_event_name_is_malformed_at_its_index() {
        let bytes = listing_with(|f| {
            set_event(
                f,
                Value::Map(vec![(Value::Text("refund".into()), Value::Map(vec![]))]),
            );
        });
        assert!(matches!(decode(&bytes), Err(Error::Decode { .. })));
        let (index, reason) = malformed(&bytes);
        assert_eq!(
            index, 13,
            "slot 11 is withheld: the third readable entry is 13"
        );
        assert_eq!(
            reason,
            "its event `refund` is not a kind this version knows (a later kind is served as \
             `extension`, with its code)"
        );
    }

    #[test]
    fn a_known_kind_in_the_extension_form_is_malformed() {
        let bytes = listing_with(|f| {
            set_event(
                f,
                Value::Map(vec![(
                    Value::Text("extension".into()),
                    Value::Map(vec![
                        (Value::Text("code".into()), Value::Integer(1.into())),
                        (Value::Text("body".into()), Value::Bytes(vec![1, 2])),
                    ]),
                )]),
            );
        });
        let (index, reason) = malformed(&bytes);
        assert_eq!(index, 13);
        assert!(
            reason.starts_with("its `extension` event does not decode: ")
                && reason.contains("an event of code 1 served as a kind this version cannot read"),
            "{reason}"
        );
    }

    #[test]
    fn an_entry_with_a_bad_field_is_malformed() {
        let bytes = listing_with(|f| {
            for (k, v) in f.iter_mut() {
                if k.as_text() == Some("signer") {
                    *v = Value::Bytes(vec![7; 31]);
                }
            }
        });
        let (index, reason) = malformed(&bytes);
        assert_eq!(index, 13);
        assert_eq!(
            reason,
            "a field does not decode: Ed25519 public key: expected 32 bytes, got 31"
        );
        let shown = Error::Audit(LogError::MalformedEntry { index, reason }).to_string();
        assert!(
            shown.starts_with("the relay served a malformed audit log entry at #13: "),
            "{shown}"
        );
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
    fn the_known_kinds_are_the_enums_own() {
        let kinds = push_kinds();
        // Each kind a push encodes to is listed (the tag of a unit kind is the text itself).
        for p in [
            Push::AuditGrew { size: 3 },
            Push::QuotaWarning {
                org: None,
                quota: crate::wire::ByteQuota {
                    scope: crate::wire::QuotaScope::Account,
                    used: 8,
                    most: 10,
                },
            },
        ] {
            let bytes = encode(&Frame::Push(p)).unwrap();
            let value: Value = ciborium::from_reader(&bytes[1..]).unwrap();
            let kind = push_kind(&value).unwrap();
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
        assert!(kinds.contains(&"item") && kinds.contains(&"agent_key_changed"));
        assert!(!kinds.contains(&"queue_moved"));
    }

    /// A known kind whose body carries, in a nested field, an unknown variant that happens to
    /// have the push's own name: serde's error then reads "unknown variant `quota_warning`",
    /// which a decision by error wording took for an unknown push. It is a malformed frame.
    #[test]
    fn a_known_kind_with_a_bad_body_is_refused_whatever_serde_says() {
        let bad = frame(&push(Value::Map(vec![(
            Value::Text("quota_warning".into()),
            Value::Map(vec![
                (Value::Text("org".into()), Value::Null),
                (
                    Value::Text("quota".into()),
                    Value::Map(vec![
                        (
                            Value::Text("scope".into()),
                            Value::Text("quota_warning".into()),
                        ),
                        (Value::Text("used".into()), Value::Integer(8.into())),
                        (Value::Text("most".into()), Value::Integer(10.into())),
                    ]),
                ),
            ]),
        )])));
        let Err(Error::Decode { reason, .. }) = decode(&bad) else {
            panic!("decode refuses it");
        };
        assert!(
            reason.starts_with("unknown variant `quota_warning`"),
            "serde's words: {reason}"
        );
        assert!(
            matches!(decode_received(&bad), Err(Error::Decode { .. })),
            "{:?}",
            decode_received(&bad)
        );
        // The same kind as a unit (no body at all) is known too: refused.
        let unit = frame(&push(Value::Text("quota_warning".into())));
        assert!(matches!(decode_received(&unit), Err(Error::Decode { .. })));
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
