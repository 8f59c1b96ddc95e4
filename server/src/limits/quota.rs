//! Open-conversation records: the conversations one customer (with one org) or one visitor
//! opened, kept in one stored value per subject so that the quota's check and its record are
//! one conditional write (a compare-and-swap of the whole value) — two opens at the same
//! instant, on one node or on two nodes of a cluster, cannot both take the last place.
//!
//! The value is a version byte ([`RECORD_VERSION`]) and then, per conversation, its id (16
//! bytes) and the time it was reserved (8 bytes, big-endian Unix seconds). A reservation is
//! written before its conversation is created; a conversation not found is therefore counted
//! as open while its reservation is younger than [`PENDING_SECS`] (another open in flight),
//! and dropped from the record after that (an open that failed, or a conversation erased).
//!
//! Nothing here knows the protocol: conversations are their id's bytes, and what a
//! conversation's last activity is comes from the caller.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Mutex, MutexGuard};

/// The record format's version byte.
pub const RECORD_VERSION: u8 = 1;

/// How long a reservation whose conversation is not (yet) stored counts as open.
pub const PENDING_SECS: u64 = 60;

/// Bytes per entry: the conversation id and the reservation time.
const ENTRY: usize = 16 + 8;

/// One conversation of a subject's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The conversation id's bytes.
    pub conversation: [u8; 16],
    /// When the place was reserved (Unix seconds).
    pub reserved_at: u64,
}

/// A stored record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Another version byte (a newer relay's record).
    #[error("open-conversation record of unknown version {0}")]
    UnknownVersion(u8),
    /// Not a whole number of entries.
    #[error("open-conversation record of {0} bytes is truncated")]
    Truncated(usize),
}

/// The conversations a subject opened (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenRecord {
    /// Its reservations, oldest first.
    pub entries: Vec<Reservation>,
}

impl OpenRecord {
    /// Decodes a stored record.
    ///
    /// # Errors
    /// [`RecordError`] for another version or a truncated value.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(RecordError::Truncated(0));
        };
        if version != RECORD_VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        if rest.len() % ENTRY != 0 {
            return Err(RecordError::Truncated(bytes.len()));
        }
        let entries = rest
            .chunks_exact(ENTRY)
            .map(|e| {
                let (id, at) = e.split_at(16);
                let mut conversation = [0u8; 16];
                conversation.copy_from_slice(id);
                let mut t = [0u8; 8];
                t.copy_from_slice(at);
                Reservation {
                    conversation,
                    reserved_at: u64::from_be_bytes(t),
                }
            })
            .collect();
        Ok(Self { entries })
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.entries.len() * ENTRY);
        out.push(RECORD_VERSION);
        for e in &self.entries {
            out.extend_from_slice(&e.conversation);
            out.extend_from_slice(&e.reserved_at.to_be_bytes());
        }
        out
    }

    /// Whether `conversation` is in the record.
    pub fn holds(&self, conversation: &[u8; 16]) -> bool {
        self.entries.iter().any(|e| &e.conversation == conversation)
    }

    /// The record without `conversation`.
    pub fn without(&self, conversation: &[u8; 16]) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .filter(|e| &e.conversation != conversation)
                .copied()
                .collect(),
        }
    }
}

/// What a record says about its subject's open conversations now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessed {
    /// The last activity of each conversation counted as open (a pending reservation's time
    /// for one not stored yet).
    pub open: Vec<u64>,
    /// The record with the reservations of conversations gone for good dropped.
    pub kept: OpenRecord,
}

/// Assesses `record` at `now`: a conversation counts as open if its last activity (from
/// `activity`: `None` when it is not stored) is at or after `since`, or if it is not stored
/// and was reserved less than [`PENDING_SECS`] ago.
///
/// # Errors
/// Whatever `activity` fails with.
pub fn assess<E>(
    record: &OpenRecord,
    now: u64,
    since: u64,
    mut activity: impl FnMut(&[u8; 16]) -> Result<Option<u64>, E>,
) -> Result<Assessed, E> {
    let mut open = Vec::new();
    let mut kept = OpenRecord::default();
    for e in &record.entries {
        match activity(&e.conversation)? {
            Some(last) => {
                if last >= since {
                    open.push(last);
                }
                kept.entries.push(*e);
            }
            None if now < e.reserved_at.saturating_add(PENDING_SECS) => {
                open.push(e.reserved_at);
                kept.entries.push(*e);
            }
            None => {}
        }
    }
    Ok(Assessed { open, kept })
}

/// Locks striped by record key, held across one record's read, count and conditional write
/// within this node: on an engine only this node writes, the conditional write is a read, a
/// comparison and a put, which two threads must not interleave. (Across nodes the database's
/// conditional write decides.)
#[derive(Debug)]
pub struct RecordLocks {
    stripes: [Mutex<()>; STRIPES],
}

/// How many locks [`RecordLocks`] stripes its keys over.
const STRIPES: usize = 64;

impl Default for RecordLocks {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }
}

impl RecordLocks {
    /// The lock of record `key` (shared with the keys of its stripe).
    pub fn lock(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = usize::try_from(h.finish() % STRIPES as u64).unwrap_or(0);
        // A poisoned stripe guards nothing but order: take it anyway.
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn entry(id: u8, at: u64) -> Reservation {
        Reservation {
            conversation: [id; 16],
            reserved_at: at,
        }
    }

    #[test]
    fn a_record_round_trips_and_bad_bytes_are_refused() {
        let r = OpenRecord {
            entries: vec![entry(1, 10), entry(2, 20)],
        };
        let b = r.encode();
        assert_eq!(b.len(), 1 + 2 * ENTRY);
        assert_eq!(OpenRecord::decode(&b).unwrap(), r);
        assert_eq!(
            OpenRecord::decode(&b[..b.len() - 1]),
            Err(RecordError::Truncated(b.len() - 1))
        );
        let mut other = b.clone();
        other[0] = 2;
        assert_eq!(
            OpenRecord::decode(&other),
            Err(RecordError::UnknownVersion(2))
        );
        assert_eq!(OpenRecord::decode(&[]), Err(RecordError::Truncated(0)));
        assert!(r.holds(&[2; 16]));
        assert!(!r.without(&[2; 16]).holds(&[2; 16]));
    }

    #[test]
    fn pending_reservations_count_until_they_expire_and_idle_ones_do_not() {
        let r = OpenRecord {
            // Stored and active; stored and idle; pending; pending too long.
            entries: vec![entry(1, 0), entry(2, 0), entry(3, 990), entry(4, 900)],
        };
        let a = assess::<()>(&r, 1000, 500, |c| {
            Ok(match c[0] {
                1 => Some(800),
                2 => Some(100),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(a.open, vec![800, 990]);
        // The idle one is kept (it may be continued), the expired pending one dropped.
        assert_eq!(
            a.kept.entries,
            vec![entry(1, 0), entry(2, 0), entry(3, 990)]
        );
    }
}
