//! Random identifiers and small value types shared by every module.

use core::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, keys::serde_fixed_bytes};

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn random(rng: &mut impl CryptoRng) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                Self(b)
            }

            /// Wraps 16 bytes.
            ///
            /// # Errors
            /// Never for 16 bytes; fallible for symmetry with the `TryFrom` impl.
            pub fn from_bytes(b: &[u8; 16]) -> Result<Self> {
                Ok(Self(*b))
            }

            /// The 16 bytes.
            pub fn to_bytes(&self) -> [u8; 16] {
                self.0
            }

            /// Borrow the 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// Parses the 32-hex-digit printed form.
            ///
            /// # Errors
            /// [`Error::Decode`] if it is not 32 hex digits.
            pub fn parse(s: &str) -> Result<Self> {
                let v = hex::decode(s.trim()).map_err(|_| Error::Decode {
                    what: $what,
                    reason: "expected 32 hex digits".into(),
                })?;
                Self::try_from(v.as_slice())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        serde_fixed_bytes!($name, 16, $what);
    };
}

random_id!(
    /// A conversation's random id, chosen by the customer who opens it.
    ConversationId,
    "conversation id"
);
random_id!(
    /// The unique id of a consent token, dispute ticket or release request.
    TokenId,
    "token id"
);
random_id!(
    /// An attachment's random id, chosen by its uploader: the key its ciphertext chunks are
    /// stored under on the relay.
    AttachmentId,
    "attachment id"
);

/// An inclusive range of epochs, `first..=last`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpochRange {
    /// The first epoch in the range.
    pub first: u32,
    /// The last epoch in the range (inclusive).
    pub last: u32,
}

impl EpochRange {
    /// A validated range.
    ///
    /// # Errors
    /// [`Error::Decode`] if `first > last`.
    pub fn new(first: u32, last: u32) -> Result<Self> {
        let r = Self { first, last };
        r.check()?;
        Ok(r)
    }

    /// A single epoch.
    pub fn single(epoch: u32) -> Self {
        Self {
            first: epoch,
            last: epoch,
        }
    }

    /// Checks `first <= last` (ranges arrive from the wire unchecked).
    ///
    /// # Errors
    /// [`Error::Decode`] if the range is empty.
    pub fn check(&self) -> Result<()> {
        if self.first > self.last {
            return Err(Error::Decode {
                what: "epoch range",
                reason: "first > last".into(),
            });
        }
        Ok(())
    }

    /// Whether `epoch` is in the range.
    pub fn contains(&self, epoch: u32) -> bool {
        self.first <= epoch && epoch <= self.last
    }

    /// Whether every epoch of `other` is in this range.
    pub fn covers(&self, other: &EpochRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }

    /// Iterates the epochs of the range.
    pub fn iter(&self) -> impl Iterator<Item = u32> + use<> {
        self.first..=self.last
    }

    /// How many epochs the range holds.
    pub fn len(&self) -> u64 {
        u64::from(self.last.saturating_sub(self.first)) + 1
    }

    /// Never empty once checked; provided for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }

    pub(crate) fn write(&self, w: &mut crate::codec::Writer) {
        w.u32(self.first).u32(self.last);
    }
}

impl fmt::Display for EpochRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "epoch {}", self.first)
        } else {
            write!(f, "epochs {}–{}", self.first, self.last)
        }
    }
}

impl fmt::Debug for EpochRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

/// Checks a display name: 1–64 characters from `[A-Za-z0-9._-]`.
///
/// # Errors
/// [`Error::InvalidName`] otherwise.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.chars().take(80).collect()))
    }
}
