//! `stored` and its optional stored-bytes quota warning (PROTOCOL.md §13.12), both directions
//! across versions: the `stored` of a relay older than the field (the `wire.json` vector
//! "response 4: stored") decodes with no warning, and a `stored` carrying one decodes in a
//! client older than the field (modelled by the variant as it was: `seq` only) to the same
//! sequence number, the warning ignored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use sealdesk_protocol::wire::{self, ByteQuota, Frame, QuotaScope, Response};
use serde::Deserialize;

/// The frame as a client older than the warning decodes it.
#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum OldFrame {
    Response { id: u64, body: OldResponse },
}

/// `stored` as it was before the warning.
#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum OldResponse {
    Stored { seq: u64 },
}

/// The bytes of frame `name` in `protocol/vectors/wire.json`.
fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/wire.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let hex = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["frame"] == name)
        .unwrap_or_else(|| panic!("no frame {name}"))["bytes"]
        .as_str()
        .unwrap()
        .to_owned();
    hex::decode(hex).unwrap()
}

fn old_decode(bytes: &[u8]) -> OldFrame {
    assert_eq!(bytes[0], 1, "wire version");
    ciborium::from_reader(&bytes[1..]).unwrap()
}

#[test]
fn a_stored_from_an_older_relay_decodes_with_no_warning() {
    let frame = wire::decode(&vector("response 4: stored")).unwrap();
    assert_eq!(
        frame,
        Frame::Response {
            id: 4,
            body: Response::Stored {
                seq: 7,
                quota: None
            }
        }
    );
    // And a stored with no warning encodes as it always did.
    assert_eq!(
        wire::encode(&Frame::Response {
            id: 4,
            body: Response::stored(7)
        })
        .unwrap(),
        vector("response 4: stored")
    );
}

#[test]
fn a_warning_decodes_and_an_older_client_ignores_it() {
    let bytes = vector("response 4: stored, with a stored-bytes quota warning (PROTOCOL §13.12)");
    let Frame::Response {
        id: 4,
        body: Response::Stored {
            seq: 7,
            quota: Some(q),
        },
    } = wire::decode(&bytes).unwrap()
    else {
        panic!("expected stored with a warning");
    };
    assert_eq!(
        q,
        ByteQuota {
            scope: QuotaScope::Org,
            used: 850_000,
            most: 1_000_000
        }
    );
    assert_eq!(
        old_decode(&bytes),
        OldFrame::Response {
            id: 4,
            body: OldResponse::Stored { seq: 7 }
        }
    );
    assert_eq!(
        old_decode(&vector("response 4: stored")),
        old_decode(&bytes)
    );
}
