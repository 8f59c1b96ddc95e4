//! Attachments end to end (PROTOCOL.md §9.8): uploaded in chunks by a member, fetched by the
//! other members and checked against the signed message; refused to non-members, over the
//! size limit and over the stored-bytes quotas (with a warning ahead); deleted with their
//! conversation and when an upload is never finished; an interrupted upload resumes; a chunk
//! tampered with on the relay is refused by the receiver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{ClientError, client::HistoryLine};
use sealdesk_protocol::{
    attachment::{AttachmentError, AttachmentRef, SealedAttachment, stored_len},
    card::Role,
    ids::ConversationId,
    release::ErasureRequest,
    wire::{ByteQuota, ErrorCode, QuotaScope, Request, Response},
};
use sealdesk_server::{
    clock::TestClock,
    store::{Collection, SledStore, Store},
};
use sealdesk_tests::{
    Org, RawClient, now,
    relay::{start_world_relay, stop_world_relay},
    rng, spawn_relay_with, stop_relay,
    world::{World, open_chat, texts},
};

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn sealed(seed: u64, len: usize) -> SealedAttachment {
    AttachmentRef::seal(&mut rng(seed), &file(len), "shot.png", "image/png", "").unwrap()
}

fn put(c: ConversationId, s: &SealedAttachment, index: usize) -> Request {
    Request::AttachmentPut {
        conversation: c,
        attachment: s.reference.id,
        size: s.reference.size,
        index: index as u64,
        data: s.chunks[index].clone(),
    }
}

fn get(c: ConversationId, s: &SealedAttachment, index: u64) -> Request {
    Request::AttachmentGet {
        conversation: c,
        attachment: s.reference.id,
        index,
    }
}

/// Uploads every chunk; returns the last answer's quota warning.
async fn upload(
    client: &mut RawClient,
    c: ConversationId,
    s: &SealedAttachment,
) -> Option<ByteQuota> {
    let mut quota = None;
    for i in 0..s.chunks.len() {
        match client.request(put(c, s, i)).await {
            Response::AttachmentProgress {
                stored, quota: q, ..
            } => {
                assert_eq!(stored, i as u64 + 1);
                quota = quota.or(q);
            }
            other => panic!("chunk {i}: {other:?}"),
        }
    }
    quota
}

fn refusal(r: Response) -> (ErrorCode, String) {
    match r {
        Response::Error { code, message, .. } => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn only_members_upload_and_fetch() {
    let (relay, _dir) = spawn_relay_with(|_| {}).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 61, "filesco", 2, 2).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut c0, 0, 610).await;
    let s = sealed(611, 40_000);
    upload(&mut c0, chat.id, &s).await;

    // The assigned agent reads it; the bytes are the ones uploaded.
    let mut agent = RawClient::login(&url, &org.agents[chat.agent]).await;
    let mut chunks = Vec::new();
    for i in 0..s.chunks.len() as u64 {
        match agent.request(get(chat.id, &s, i)).await {
            Response::AttachmentChunk { data, index, size } => {
                assert_eq!((index, size), (i, 40_000));
                chunks.push(data);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.reference.open(&chunks).unwrap().as_slice(), file(40_000));

    // Another customer, and the org's other agent, are no members: neither may upload to
    // the conversation nor fetch from it, and they learn nothing about whether it exists.
    let other_agent = 1 - chat.agent;
    for who in [&org.customers[1], &org.agents[other_agent]] {
        let mut outsider = RawClient::login(&url, who).await;
        let s2 = sealed(612, 10);
        assert_eq!(
            outsider.refused(put(chat.id, &s2, 0)).await,
            ErrorCode::NotFound
        );
        assert_eq!(
            outsider.refused(get(chat.id, &s, 0)).await,
            ErrorCode::NotFound
        );
        outsider.close().await;
    }
    // A chunk not uploaded is not found; one of the wrong length is refused.
    assert_eq!(
        agent.refused(get(chat.id, &s, 9)).await,
        ErrorCode::NotFound
    );
    let mut short = put(chat.id, &sealed(613, 100), 0);
    if let Request::AttachmentPut { data, .. } = &mut short {
        data.pop();
    }
    assert_eq!(c0.refused(short).await, ErrorCode::BadRequest);
    stop_relay(relay).await;
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused_naming_the_limit() {
    let (relay, _dir) = spawn_relay_with(|c| c.limits.max_attachment_bytes = 50_000).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 62, "sizeco", 1, 1).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut c0, 0, 620).await;
    upload(&mut c0, chat.id, &sealed(621, 50_000)).await;
    let (code, message) = refusal(c0.request(put(chat.id, &sealed(622, 50_001), 0)).await);
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(message.contains("50000"), "{message}");
    assert!(message.contains("max_attachment_bytes"), "{message}");
    stop_relay(relay).await;
}

#[tokio::test]
async fn stored_bytes_quotas_warn_at_eighty_percent_then_refuse() {
    let one = stored_len(40_000);
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.stored_bytes_per_account = 3 * one + 10;
        c.limits.stored_bytes_per_org = 5 * one + 10;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 63, "quotaco", 1, 2).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut c0, 0, 630).await;
    // 1/3 and 2/3 of the account's quota: no warning; 3/3: a warning naming the account.
    assert_eq!(upload(&mut c0, chat.id, &sealed(631, 40_000)).await, None);
    assert_eq!(upload(&mut c0, chat.id, &sealed(632, 40_000)).await, None);
    let warned = upload(&mut c0, chat.id, &sealed(633, 40_000))
        .await
        .unwrap();
    assert_eq!(warned.scope, QuotaScope::Account);
    assert_eq!(warned.used, 3 * one);
    // One more is refused, naming the quota and its setting; nothing of it is stored.
    let s = sealed(634, 40_000);
    let (code, message) = refusal(c0.request(put(chat.id, &s, 0)).await);
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message.contains("stored_bytes_per_account"), "{message}");
    let mut agent = RawClient::login(&url, &org.agents[chat.agent]).await;
    assert_eq!(
        agent.refused(get(chat.id, &s, 0)).await,
        ErrorCode::NotFound
    );

    // The org's quota counts every customer's: the second customer's first upload brings the
    // org to 4/5 (just under 80%, with the quota's slack), the second to 5/5 (a warning
    // naming the org), the third is refused.
    let mut c1 = RawClient::login(&url, &org.customers[1]).await;
    let chat1 = org.start_chat(&mut c1, 1, 635).await;
    assert_eq!(upload(&mut c1, chat1.id, &sealed(636, 40_000)).await, None);
    let w = upload(&mut c1, chat1.id, &sealed(637, 40_000))
        .await
        .unwrap();
    assert_eq!((w.scope, w.used), (QuotaScope::Org, 5 * one));
    let (code, message) = refusal(c1.request(put(chat1.id, &sealed(638, 40_000), 0)).await);
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message.contains("stored_bytes_per_org"), "{message}");
    stop_relay(relay).await;
}

#[tokio::test]
async fn erasure_deletes_the_bytes_and_gives_the_quota_back() {
    let one = stored_len(40_000);
    let (relay, dir) = spawn_relay_with(|c| c.limits.stored_bytes_per_account = 2 * one).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 64, "eraseco", 1, 1).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut c0, 0, 640).await;
    let s = sealed(641, 40_000);
    upload(&mut c0, chat.id, &s).await;
    upload(&mut c0, chat.id, &sealed(642, 40_000)).await;
    assert_eq!(
        c0.refused(put(chat.id, &sealed(643, 10), 0)).await,
        ErrorCode::QuotaExceeded
    );
    c0.ok(Request::Erase(ErasureRequest::sign(
        &org.customers[0].keys,
        chat.id,
        now(),
    )))
    .await;
    // The quota is free again: a new conversation takes a full upload.
    let chat2 = org.start_chat(&mut c0, 0, 644).await;
    upload(&mut c0, chat2.id, &sealed(645, 40_000)).await;
    c0.close().await;
    stop_relay(relay).await;
    if std::env::var("SEALDESK_TEST_STORE").as_deref() == Ok("postgres") {
        return;
    }
    // The relay's store holds nothing of the erased conversation's attachments.
    // (Keys: `r` ‖ conversation ‖ id for a record, `c` ‖ conversation ‖ id ‖ index for a chunk.)
    let store = SledStore::open(dir.path()).unwrap();
    let under = |kind: u8, c: &ConversationId| {
        let mut prefix = vec![kind];
        prefix.extend_from_slice(c.as_bytes());
        store.scan_prefix(Collection::Attachments, &prefix).unwrap()
    };
    for kind in [b'r', b'c'] {
        let left = under(kind, &chat.id);
        assert!(left.is_empty(), "{} attachment keys left", left.len());
        assert!(!under(kind, &chat2.id).is_empty());
    }
}

#[tokio::test]
async fn unsent_and_unfinished_uploads_expire_and_sent_ones_stay() {
    let clock = TestClock::at_system_time();
    let (relay, _dir) = spawn_relay_with(|c| {
        c.clock = clock.handle();
        c.limits.attachment_upload_expiry_secs = 60;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 65, "expireco", 1, 1).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut c0, 0, 650).await;
    let unfinished = sealed(651, 40_000);
    c0.request(put(chat.id, &unfinished, 0)).await;
    let sent = sealed(653, 100);
    upload(&mut c0, chat.id, &sent).await;
    // A message from the uploader after the upload is what makes it sent.
    c0.stored(Request::Send(chat.seal(&org.customers[0], 0, "here it is")))
        .await;
    let unsent = sealed(652, 100);
    upload(&mut c0, chat.id, &unsent).await;
    // Exactly the expiry is not past it.
    clock.advance(60);
    relay.sweep_retention().await.unwrap();
    assert!(matches!(
        c0.request(get(chat.id, &unfinished, 0)).await,
        Response::AttachmentChunk { .. }
    ));
    clock.advance(1);
    relay.sweep_retention().await.unwrap();
    assert_eq!(
        c0.refused(get(chat.id, &unfinished, 0)).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        c0.refused(get(chat.id, &unsent, 0)).await,
        ErrorCode::NotFound
    );
    assert!(matches!(
        c0.request(get(chat.id, &sent, 0)).await,
        Response::AttachmentChunk { .. }
    ));
    stop_relay(relay).await;
}

/// The reader's number of the last attachment message in `c`'s history.
fn last_attachment(c: &sealdesk_client::Client, conv: &ConversationId) -> u64 {
    c.history(conv)
        .unwrap()
        .lines
        .iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry:
                    sealdesk_client::account::LogEntry::Message {
                        kind: sealdesk_protocol::message::ContentKind::Attachment,
                        ..
                    },
                number,
                ..
            } => *number,
            _ => None,
        })
        .next_back()
        .expect("an attachment message")
}

#[tokio::test]
async fn a_file_sent_by_the_customer_is_saved_by_the_agent_and_an_interrupted_upload_resumes() {
    let w = World::new().await;
    w.org(&["agent-a"], None).await;
    let mut customer = w.user("cust-a", Role::Customer).await;
    let conv = open_chat(&mut customer).await;
    let bytes = file(100_000);
    let sent = customer
        .send_attachment(
            &conv,
            &bytes,
            "../../etc/receipt.pdf",
            "application/pdf",
            "my receipt",
        )
        .await
        .unwrap();
    assert_eq!((sent.uploaded, sent.chunks), (4, 4));
    let mut agent = w.reopen("agent-a").await;
    agent.sync_all().await.unwrap();
    assert_eq!(
        texts(&agent, &conv).last().unwrap(),
        "cust-a: [attachment: ../../etc/receipt.pdf, 97.7 KiB] my receipt"
    );
    let n = last_attachment(&agent, &conv);
    let saved = agent.fetch_attachment(&conv, n).await.unwrap();
    assert_eq!(saved.bytes.as_slice(), bytes.as_slice());
    assert_eq!(saved.name, "../../etc/receipt.pdf");
    assert_eq!(
        sealdesk_client::attachment::safe_file_name(&saved.name),
        "receipt.pdf"
    );
    // A message number that carries no attachment is a typed refusal.
    assert_eq!(
        agent.fetch_attachment(&conv, n + 10).await.err(),
        Some(ClientError::NotAnAttachment { message: n + 10 })
    );

    // An upload cut after two chunks goes on from the third.
    let s = sealed(660, 5 * 32 * 1024);
    for i in 0..2 {
        customer.session().request(put(conv, &s, i)).await.unwrap();
    }
    let (uploaded, _) = customer.upload_attachment(&conv, &s).await.unwrap();
    assert_eq!(uploaded, 3);
}

#[tokio::test]
async fn a_chunk_tampered_with_on_the_relay_is_refused_by_the_receiver() {
    if std::env::var("SEALDESK_TEST_STORE").as_deref() == Ok("postgres") {
        return;
    }
    let mut w = World::new().await;
    w.org(&["agent-b"], None).await;
    let mut customer = w.user("cust-b", Role::Customer).await;
    let conv = open_chat(&mut customer).await;
    customer
        .send_attachment(
            &conv,
            &file(70_000),
            "a.bin",
            "application/octet-stream",
            "",
        )
        .await
        .unwrap();
    let mut agent = w.reopen("agent-b").await;
    agent.sync_all().await.unwrap();
    let n = last_attachment(&agent, &conv);
    drop(agent);
    drop(customer);
    // The operator flips one byte of the second chunk on disk.
    let down = stop_world_relay(&mut w).await;
    {
        let store = SledStore::open(&w.dir.path().join("relay")).unwrap();
        let mut prefix = b"c".to_vec();
        prefix.extend_from_slice(conv.as_bytes());
        let chunks = store.scan_prefix(Collection::Attachments, &prefix).unwrap();
        assert_eq!(chunks.len(), 3);
        let (k, mut v) = chunks[1].clone();
        v[10] ^= 1;
        store.put(Collection::Attachments, &k, &v).unwrap();
        store.flush().unwrap();
    }
    start_world_relay(&mut w, down).await;
    let agent = w.reopen("agent-b").await;
    match agent.fetch_attachment(&conv, n).await {
        Err(ClientError::Protocol(sealdesk_protocol::Error::Attachment(
            AttachmentError::Chunk { index: 1 },
        ))) => {}
        other => panic!("a tampered chunk was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_released_transcript_carries_the_file_and_verifies_and_a_tampered_one_does_not() {
    use sealdesk_client::transcript::{Anchors, Reason, sign_export, verify_export};
    use sealdesk_protocol::release::{Justification, Scope};

    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "the screen says:").await.unwrap();
    let bytes = file(50_000);
    carol
        .send_attachment(&conv, &bytes, "error.png", "image/png", "this")
        .await
        .unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    let mut master = org.master;
    sealdesk_tests::transcript::release(&w, &mut master, conv, Justification::Consent(token)).await;
    let anchors = Anchors {
        org_fingerprint: Some(org.fingerprint.clone()),
        log_keys: vec![master.session().welcome().log_key],
    };
    let asked = master.session().requests_sent();
    let full = master.export_transcript(&conv, false).await.unwrap();
    let first = master.session().requests_sent() - asked;
    let v = verify_export(&full, &anchors);
    assert!(v.ok, "{v:#?}");
    let shown = full
        .messages
        .iter()
        .find_map(|m| m.attachment.as_ref())
        .expect("the export carries the file");
    assert_eq!(hex::decode(&shown.data).unwrap(), bytes);
    assert_eq!(shown.name, "error.png");

    // The verified file is kept in the vault by its hash: the next export (`transcript show`)
    // does not fetch its two chunks again.
    let asked = master.session().requests_sent();
    let again = master.export_transcript(&conv, false).await.unwrap();
    assert_eq!(master.session().requests_sent() - asked, first - 2);
    let same = |e: &sealdesk_client::transcript::ExportFile| {
        serde_json::to_value(&e.messages).unwrap() == serde_json::to_value(&full.messages).unwrap()
    };
    assert!(same(&again));
    // A kept file that no longer matches its hash is not used: the file is fetched again.
    let mut changed = file(50_000);
    changed[7] ^= 1;
    master
        .account()
        .vault()
        .put(&format!("files/{}", shown.sha256), &changed)
        .unwrap();
    let asked = master.session().requests_sent();
    let refetched = master.export_transcript(&conv, false).await.unwrap();
    assert_eq!(master.session().requests_sent() - asked, first);
    assert!(same(&refetched));
    assert!(verify_export(&refetched, &anchors).ok);

    // One byte of the file changed (and the end marker signed again, as a master who lies
    // would): the file is not the one the sender signed.
    let mut forged = full.clone();
    let m = forged
        .messages
        .iter_mut()
        .find(|m| m.attachment.is_some())
        .unwrap();
    let a = m.attachment.as_mut().unwrap();
    let mut data = hex::decode(&a.data).unwrap();
    data[100] ^= 1;
    a.data = hex::encode(&data);
    sign_export(&mut forged, master.account().keys()).unwrap();
    let v = verify_export(&forged, &anchors);
    assert!(!v.ok);
    assert_eq!(v.reasons(), vec![Reason::AttachmentMismatch], "{v:#?}");
    // A file put next to a text message is refused too.
    let mut moved = full.clone();
    let file_of = moved.messages.iter().find_map(|m| m.attachment.clone());
    moved.messages[0].attachment = file_of;
    sign_export(&mut moved, master.account().keys()).unwrap();
    assert_eq!(
        verify_export(&moved, &anchors).reasons(),
        vec![Reason::AttachmentMismatch]
    );

    // A redacted export leaves the file out.
    let redacted = master.export_transcript(&conv, true).await.unwrap();
    assert!(redacted.messages.iter().all(|m| m.attachment.is_none()));
    org.agents.clear();
}

/// The library reports an upload's progress after every chunk (what the chat and `send
/// --attach` show); an upload dropped part-way sends nothing in the conversation, and the same
/// file sent again resumes where the relay stopped, its first report saying so.
#[tokio::test]
async fn an_upload_reports_each_chunk_and_a_dropped_one_resumes() {
    let w = World::new().await;
    let mut org = w.org(&["agent-p"], None).await;
    let mut customer = w.user("cust-p", Role::Customer).await;
    let conv = open_chat(&mut customer).await;
    let bytes = file(5 * 32 * 1024 + 100);

    let mut seen = Vec::new();
    let sent = customer
        .send_attachment_with_progress(
            &conv,
            &bytes,
            "a.bin",
            "application/octet-stream",
            "",
            |p| seen.push(p),
        )
        .await
        .unwrap();
    assert_eq!((sent.uploaded, sent.chunks), (6, 6));
    let counts: Vec<(u64, u64)> = seen
        .iter()
        .map(|p| (p.sent_chunks, p.total_chunks))
        .collect();
    assert_eq!(counts, (1..=6).map(|n| (n, 6)).collect::<Vec<_>>());
    assert_eq!(seen[0].bytes, 32 * 1024);
    assert_eq!(seen.last().unwrap().bytes, bytes.len() as u64);
    assert_eq!(seen.last().unwrap().percent(), 100);

    // Cut after two chunks: no message, the relay holds two chunks.
    let other = file(4 * 32 * 1024);
    let before = texts(&customer, &conv).len();
    let mut upload = customer
        .start_upload(&conv, &other, "b.bin", "application/octet-stream", "")
        .unwrap();
    assert_eq!(
        customer.upload_step(&mut upload).await.unwrap().sent_chunks,
        1
    );
    let p = customer.upload_step(&mut upload).await.unwrap();
    assert_eq!((p.sent_chunks, p.total_chunks, p.percent()), (2, 4, 50));
    assert!(!upload.uploaded());
    drop(upload);
    customer.sync_all().await.unwrap();
    assert_eq!(texts(&customer, &conv).len(), before);

    // The same file again: the first answer says two were there (chunk 0 is not stored
    // twice); two are sent.
    let mut seen = Vec::new();
    let sent = customer
        .send_attachment_with_progress(
            &conv,
            &other,
            "b.bin",
            "application/octet-stream",
            "",
            |p| seen.push(p.sent_chunks),
        )
        .await
        .unwrap();
    assert_eq!((sent.uploaded, sent.chunks), (2, 4));
    assert_eq!(seen, vec![2, 3, 4]);
    let agent = &mut org.agents[0];
    agent.sync_all().await.unwrap();
    let n = last_attachment(agent, &conv);
    let saved = agent.fetch_attachment(&conv, n).await.unwrap();
    assert_eq!(saved.bytes.as_slice(), other.as_slice());
}

/// The master's transcript keeps a file in its place among the messages, so that its count is
/// `history`'s (issue 22/20); under a redacted consent the file is withheld whole — its name
/// and caption are the sender's words, not masked one by one — and still counted.
#[tokio::test]
async fn a_released_transcript_counts_the_file_in_its_place_and_a_redacted_one_withholds_it() {
    use sealdesk_client::{client::message_numbers, escrow::transcript::FILE_WITHHELD};
    use sealdesk_protocol::release::{Justification, Scope};

    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "the screen says:").await.unwrap();
    carol
        .send_attachment(
            &conv,
            &file(5_000),
            "bob smith.png",
            "image/png",
            "my error",
        )
        .await
        .unwrap();
    carol.send_text(&conv, "any idea?").await.unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Redacted, 3600, "quality review")
        .await
        .unwrap();
    let mut master = org.master;
    let t =
        sealdesk_tests::transcript::release(&w, &mut master, conv, Justification::Consent(token))
            .await;
    assert!(t.redacted && t.with_files);
    let texts: Vec<&str> = t.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["the screen says:", FILE_WITHHELD, "any idea?"]);
    let numbers = message_numbers(t.messages.iter().map(|m| Some(m.envelope.header.kind)));
    assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
    let history = carol.history(&conv).unwrap();
    let numbered: Vec<u64> = history
        .lines
        .iter()
        .filter_map(|l| match l {
            HistoryLine::Item { number, .. } => *number,
            _ => None,
        })
        .collect();
    assert_eq!(numbered, [1, 2, 3], "the customer counts the same three");
}
