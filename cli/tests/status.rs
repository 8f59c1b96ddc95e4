//! Conversation status and previews through the `sealdesk` binary (issue 22 §3): the agent
//! sets open / waiting / resolved as a signed, encrypted status message; `conversations`
//! shows the status and a preview of the last message, decrypted locally, to both sides;
//! only an agent may set it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, sealdesk};
use sealdesk_tests::world::OpenedChat;
use serde_json::Value;

#[tokio::test]
async fn the_agent_sets_the_status_and_both_sides_list_it_with_a_preview() {
    let mut chat = OpenedChat::new().await;
    let long = "my printer prints every page twice and then a third time, in red, at night";
    chat.carol.send_text(&chat.conv, long).await.unwrap();
    let (w, id) = chat.close().await;

    // Nobody set one yet: open.
    let listed = ok(&w, "carol", &["conversations"]).await;
    assert!(listed.contains("[open]"), "{listed}");
    assert!(
        listed.contains("carol: my printer prints every page twice"),
        "{listed}"
    );
    assert!(listed.contains('…'), "a long message is cut: {listed}");

    let set = ok(&w, "alice", &["status", "--conversation", &id, "waiting"]).await;
    assert!(set.contains("waiting"), "{set}");
    ok(&w, "alice", &["send", "--conversation", &id, "on it"]).await;
    ok(&w, "alice", &["status", "--conversation", &id, "resolved"]).await;

    for who in ["carol", "alice"] {
        let listed = ok(&w, who, &["conversations"]).await;
        assert!(listed.contains("[resolved]"), "{who}: {listed}");
        assert!(listed.contains("alice: on it"), "{who}: {listed}");
        let json: Value =
            serde_json::from_str(&ok(&w, who, &["conversations", "--json"]).await).unwrap();
        let row = &json["conversations"][0];
        assert_eq!(row["status"], "resolved", "{json}");
        assert_eq!(row["preview"]["sender"], "alice", "{json}");
        assert_eq!(row["preview"]["text"], "on it", "{json}");
    }
    // The customer's history shows the changes as the agent's, verified.
    let history = ok(&w, "carol", &["history", "--conversation", &id]).await;
    assert!(
        history.contains("alice set the status to waiting"),
        "{history}"
    );
    assert!(
        history.contains("alice set the status to resolved"),
        "{history}"
    );
}

#[tokio::test]
async fn only_an_agent_sets_a_status_and_only_a_known_one() {
    let mut chat = OpenedChat::new().await;
    chat.carol.send_text(&chat.conv, "hello").await.unwrap();
    let (w, id) = chat.close().await;

    let r = sealdesk(&w, "carol", &["status", "--conversation", &id, "resolved"]).await;
    assert!(!r.ok, "a customer set the status: {}", r.stdout);
    assert!(r.stderr.contains("agent"), "{}", r.stderr);
    let r = sealdesk(&w, "alice", &["status", "--conversation", &id, "closed"]).await;
    assert!(!r.ok, "{}", r.stdout);
    assert!(
        r.stderr.contains("open, waiting or resolved"),
        "{}",
        r.stderr
    );
    let listed = ok(&w, "carol", &["conversations"]).await;
    assert!(listed.contains("[open]"), "{listed}");
}
