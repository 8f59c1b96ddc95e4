//! A push overtaken by this account's own message: the agent's item is stored first, but the
//! customer's own message (stored after it, answered at once) moves the customer's cursor past
//! it before its push is handled. The push must still be taken and shown in its place, not
//! dropped as already seen (found by the chat's JSON test: a status the agent set right after
//! the customer's read receipt never showed as an event).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    account::LogEntry,
    client::{Event, EventKind},
};
use sealdesk_protocol::{card::Role, message::ContentKind, status::ConversationStatus};
use sealdesk_tests::world::{World, events_until};

fn is_status(e: &Event) -> bool {
    matches!(
        &e.kind,
        EventKind::Entry {
            entry: LogEntry::Message {
                kind: ContentKind::Status,
                ..
            }
        }
    )
}

#[tokio::test]
async fn an_item_stored_before_the_customers_own_message_is_still_shown_from_its_push() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = org.open_pinned(&mut carol).await;
    carol.send_text(&conv, "where is my parcel?").await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "let me look").await.unwrap();
    carol.sync_all().await.unwrap();

    // The status is stored before carol's read receipt, whose answer carol takes first.
    let status_seq = alice
        .set_status(&conv, ConversationStatus::Waiting)
        .await
        .unwrap();
    carol.mark_seen(&conv).unwrap();
    assert!(carol.send_read_receipt(&conv).await.unwrap().is_some());
    assert!(
        carol.meta(&conv).unwrap().cursor > status_seq,
        "the receipt moved the cursor past the status (the case under test)"
    );

    let shown = events_until(&mut carol, is_status).await;
    assert_eq!(shown.conversation, conv);
    assert_eq!(shown_seq(&shown), status_seq);
}

fn shown_seq(e: &Event) -> u64 {
    match &e.kind {
        EventKind::Entry { entry } => entry.seq(),
        other => panic!("not an entry: {other:?}"),
    }
}
