//! Per-message disclosure against `messages.json`: the 44 bytes a redacted export shows for a
//! message are the vector's `message_key ‖ nonce`, and they open that message's envelope — and
//! no other message's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    Error,
    disclosure::{MESSAGE_KEY_LEN, MessageKey},
    message::Envelope,
    wire::from_cbor,
};
use serde_json::Value;

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

#[test]
fn a_disclosed_message_key_opens_its_vector_message_and_no_other() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/messages.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let messages = doc["messages"].as_array().unwrap();
    assert!(messages.len() >= 2);
    let envelopes: Vec<Envelope> = messages
        .iter()
        .map(|m| from_cbor(&bytes(m, "envelope_cbor"), "vector").unwrap())
        .collect();
    for (i, m) in messages.iter().enumerate() {
        let mut disclosed = bytes(m, "message_key");
        disclosed.extend(bytes(m, "nonce"));
        assert_eq!(disclosed.len(), MESSAGE_KEY_LEN);
        let key = MessageKey::from_bytes(&disclosed).unwrap();
        assert_eq!(key.to_bytes().as_slice(), disclosed.as_slice());
        let opened = key.open(&envelopes[i]).unwrap();
        assert_eq!(opened.body.as_slice(), bytes(m, "body").as_slice());
        for (j, other) in envelopes.iter().enumerate() {
            if j != i {
                assert!(!key.matches(other));
                assert!(matches!(key.open(other), Err(Error::KeyCommitmentMismatch)));
            }
        }
    }
}
