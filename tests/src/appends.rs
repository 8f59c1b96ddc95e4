//! The conversation-log appends the store-level PostgreSQL tests make (`tests/tests/postgres_*`):
//! one sender (`[9; 32]`) in epoch 1, so that a test names a message by its conversation,
//! number and counter alone, and asks about its refusal by its counter.

use sealdesk_server::store::{MessageAppend, Refused};

/// The message of conversation `c` at number `seq` under `counter`, with the bytes `item`,
/// from the one sender in epoch 1 (no record beside it).
pub fn message<'a>(c: &'a [u8], seq: u64, counter: u64, item: &'a [u8]) -> MessageAppend<'a> {
    MessageAppend {
        conversation: c,
        seq,
        epoch: 1,
        sender: &[9; 32],
        counter,
        item,
        record: None,
    }
}

/// How a writer asks about its refused message of `counter` (the sender and epoch of
/// [`message`]).
pub fn sent(counter: u64) -> Refused {
    Refused::Message {
        epoch: 1,
        sender: vec![9; 32],
        counter,
    }
}
