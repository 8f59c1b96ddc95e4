//! What became of a history hand-off for this account, as a typed value: the timeline stores
//! it ([`crate::account::LogEntry::HandOff`]) and the CLI words it.
//!
//! Stored timelines written before this type held the outcome as text ("for dave", "opened:
//! epochs [0, 1] are now readable", "refused: …"); those still read, into the same variants.

use serde::{Deserialize, Serialize};

/// What became of a history hand-off for this account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredOutcome", into = "Typed")]
pub enum HandOffOutcome {
    /// The hand-off is addressed to another member: this account only sees that it happened.
    ForOther,
    /// Addressed to this account and opened: these epochs' messages are now readable.
    Opened {
        /// The epochs opened.
        epochs: Vec<u32>,
    },
    /// Addressed to this account and refused: its epochs stay unreadable.
    Refused {
        /// Why, in words.
        reason: String,
    },
}

/// The stored form: the typed one, or the text older clients wrote.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredOutcome {
    Typed(Typed),
    Legacy(String),
}

/// The typed form on disk and in `--json`: `{"is": "opened", "epochs": [0, 1]}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "is")]
enum Typed {
    ForOther,
    Opened { epochs: Vec<u32> },
    Refused { reason: String },
}

impl From<HandOffOutcome> for Typed {
    fn from(o: HandOffOutcome) -> Self {
        match o {
            HandOffOutcome::ForOther => Typed::ForOther,
            HandOffOutcome::Opened { epochs } => Typed::Opened { epochs },
            HandOffOutcome::Refused { reason } => Typed::Refused { reason },
        }
    }
}

impl From<StoredOutcome> for HandOffOutcome {
    fn from(s: StoredOutcome) -> Self {
        match s {
            StoredOutcome::Typed(Typed::ForOther) => HandOffOutcome::ForOther,
            StoredOutcome::Typed(Typed::Opened { epochs }) => HandOffOutcome::Opened { epochs },
            StoredOutcome::Typed(Typed::Refused { reason }) => HandOffOutcome::Refused { reason },
            StoredOutcome::Legacy(text) => legacy(&text),
        }
    }
}

/// Reads the text an older client stored. Text it cannot place is kept as a refusal's reason:
/// nothing already stored is lost, and nothing unknown reads as opened.
fn legacy(text: &str) -> HandOffOutcome {
    if text.starts_with("for ") {
        return HandOffOutcome::ForOther;
    }
    if let Some(list) = text
        .strip_prefix("opened: epochs [")
        .and_then(|rest| rest.strip_suffix("] are now readable"))
    {
        let epochs: Option<Vec<u32>> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok())
            .collect();
        if let Some(epochs) = epochs {
            return HandOffOutcome::Opened { epochs };
        }
    }
    let reason = text.strip_prefix("refused: ").unwrap_or(text);
    HandOffOutcome::Refused {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::HandOffOutcome;
    use sealdesk_protocol::wire::{from_cbor, to_cbor};

    #[test]
    fn the_typed_form_round_trips() {
        for o in [
            HandOffOutcome::ForOther,
            HandOffOutcome::Opened { epochs: vec![0, 1] },
            HandOffOutcome::Refused {
                reason: "bad signature".to_owned(),
            },
        ] {
            let back: HandOffOutcome = from_cbor(&to_cbor(&o).unwrap(), "outcome").unwrap();
            assert_eq!(back, o);
        }
        assert_eq!(
            serde_json::to_value(HandOffOutcome::Opened { epochs: vec![2] }).unwrap(),
            serde_json::json!({"is": "opened", "epochs": [2]})
        );
    }

    #[test]
    fn text_stored_by_older_clients_still_reads() {
        let read =
            |s: &str| -> HandOffOutcome { from_cbor(&to_cbor(&s).unwrap(), "outcome").unwrap() };
        assert_eq!(read("for dave"), HandOffOutcome::ForOther);
        assert_eq!(
            read("opened: epochs [0, 1] are now readable"),
            HandOffOutcome::Opened { epochs: vec![0, 1] }
        );
        assert_eq!(
            read("refused: not signed"),
            HandOffOutcome::Refused {
                reason: "not signed".to_owned()
            }
        );
        assert_eq!(
            read("something else"),
            HandOffOutcome::Refused {
                reason: "something else".to_owned()
            }
        );
    }
}
