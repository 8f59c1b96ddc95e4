//! The warning ahead of the stored-bytes quotas for plain messages (issue 25, PROTOCOL.md
//! §13.12): a message that brings its sender's or its org's stored bytes to 80% of the relay's
//! most is stored with the warning in its `stored` answer (naming which quota, the bytes used
//! and the most), one below it gets none, and past the quota the message is refused
//! `quota_exceeded`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{ByteQuota, ErrorCode, QuotaScope, Request, Response};
use sealdesk_tests::{Chat, identity::Identity, org::Org, raw::RawClient, relay::spawn_relay_with};

/// The body of each message, and its ciphertext's size (the body and the 16-byte AEAD tag).
const BODY: usize = 984;
const CIPHERTEXT: u64 = 1_000;

/// Sends message `counter` of `who` in `chat` ([`CIPHERTEXT`] bytes): its warning if stored,
/// the refusal's code and text if refused.
async fn send(
    client: &mut RawClient,
    chat: &Chat,
    who: &Identity,
    counter: u64,
) -> Result<Option<ByteQuota>, (ErrorCode, String)> {
    let env = chat.seal(who, counter, &"x".repeat(BODY));
    assert_eq!(env.ciphertext.len() as u64, CIPHERTEXT);
    match client.request(Request::Send(env)).await {
        Response::Stored { quota, .. } => Ok(quota),
        Response::Error { code, message, .. } => Err((code, message)),
        other => panic!("expected stored or a refusal, got {other:?}"),
    }
}

fn warning(scope: QuotaScope, used: u64, most: u64) -> Option<ByteQuota> {
    Some(ByteQuota {
        scope,
        used: used * CIPHERTEXT,
        most: most * CIPHERTEXT,
    })
}

#[tokio::test]
async fn messages_from_eighty_percent_of_a_stored_bytes_quota_carry_a_warning() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.stored_bytes_per_account = 10 * CIPHERTEXT;
        c.limits.stored_bytes_per_org = 12 * CIPHERTEXT;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 75, "warnco", 1, 2).await;
    let (c0, c1) = (&org.customers[0], &org.customers[1]);

    // The account's quota: 7 messages are 70% (no warning), the 8th brings it to 80%.
    let mut alice = RawClient::login(&url, c0).await;
    let chat = org.start_chat(&mut alice, 0, 750).await;
    for counter in 0..7 {
        assert_eq!(
            send(&mut alice, &chat, c0, counter).await,
            Ok(None),
            "message {counter}: below 80% of both quotas"
        );
    }
    assert_eq!(
        send(&mut alice, &chat, c0, 7).await,
        Ok(warning(QuotaScope::Account, 8, 10))
    );

    // The org's quota counts bob's messages too: 9 of 12 is 75%, 10 of 12 is 83% (his own
    // account is at 20%), and the 12th fills it.
    let mut bob = RawClient::login(&url, c1).await;
    let chat1 = org.start_chat(&mut bob, 1, 751).await;
    assert_eq!(send(&mut bob, &chat1, c1, 0).await, Ok(None));
    assert_eq!(
        send(&mut bob, &chat1, c1, 1).await,
        Ok(warning(QuotaScope::Org, 10, 12))
    );
    assert_eq!(
        send(&mut bob, &chat1, c1, 2).await,
        Ok(warning(QuotaScope::Org, 11, 12))
    );
    assert_eq!(
        send(&mut bob, &chat1, c1, 3).await,
        Ok(warning(QuotaScope::Org, 12, 12)),
        "a message that fills the quota exactly is stored, with the warning"
    );
    // Past it: the typed refusal, for either member, naming the org's setting.
    for (client, chat, who, counter) in [(&mut bob, &chat1, c1, 4), (&mut alice, &chat, c0, 8)] {
        let Err((code, message)) = send(client, chat, who, counter).await else {
            panic!("expected quota_exceeded");
        };
        assert_eq!(code, ErrorCode::QuotaExceeded);
        assert!(message.contains("stored_bytes_per_org"), "{message}");
    }
}
