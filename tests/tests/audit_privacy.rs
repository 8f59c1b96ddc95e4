//! Who reads the audit log (PROTOCOL.md §12 "Who reads the log"): an entry's contents go to
//! the parties of its org and the customer of its conversation, and to nobody else; everyone
//! else gets the entry withheld — its index and leaf hash only, which still count toward the
//! tree head. Tree heads and proofs stay public. Through the raw wire client, so the relay's
//! rule is tested, not the client's filtering.

// Test helpers outside #[test] fns: a failed step must panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, SignedTreeHead, WithheldEntry},
    card::Role,
    ids::EpochRange,
    merkle,
    release::{ErasureRequest, Justification, ReleaseRequest, Scope},
    wire::{Frame, Request, Response},
};
use sealdesk_tests::{
    Identity, Org, RawClient,
    consent::{full_consent, revocation},
    now, rng, spawn_relay, stop_relay,
    transcript::release,
    world::{Via, World, open_chat},
};

/// What one account is served of the whole log: the entries it may read and the withheld
/// ones, by index.
struct View {
    read: BTreeMap<u64, AuditEntry>,
    withheld: BTreeMap<u64, [u8; 32]>,
}

/// Reads every slot of the log as `who`, in pages of 2 (so withheld slots fall at page edges
/// too), and checks that the pages fill the log exactly.
async fn view(url: &str, who: &Identity, size: u64) -> View {
    let mut c = RawClient::login(url, who).await;
    let mut v = View {
        read: BTreeMap::new(),
        withheld: BTreeMap::new(),
    };
    let mut at = 0;
    while at < size {
        let (entries, withheld): (Vec<AuditEntry>, Vec<WithheldEntry>) =
            match c.request(Request::GetEntries { from: at, limit: 2 }).await {
                Response::Entries {
                    from,
                    entries,
                    withheld,
                } => {
                    assert_eq!(from, at);
                    (entries, withheld)
                }
                other => panic!("expected entries, got {other:?}"),
            };
        let n = (entries.len() + withheld.len()) as u64;
        assert!((1..=2).contains(&n), "a page of {n}");
        let mut entries = entries.into_iter();
        for index in at..at + n {
            match withheld.iter().find(|w| w.index == index) {
                Some(w) => {
                    v.withheld.insert(index, *w.leaf);
                }
                None => {
                    v.read
                        .insert(index, entries.next().expect("a slot per index"));
                }
            }
        }
        assert!(entries.next().is_none(), "more entries than slots");
        at += n;
    }
    c.close().await;
    v
}

/// The leaves of a view, in index order.
fn leaves(v: &View) -> Vec<merkle::Hash> {
    let mut all: BTreeMap<u64, merkle::Hash> = v.withheld.clone();
    for (i, e) in &v.read {
        all.insert(*i, e.leaf_hash());
    }
    all.into_values().collect()
}

async fn head(c: &mut RawClient) -> SignedTreeHead {
    match c.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => h,
        other => panic!("expected a tree head, got {other:?}"),
    }
}

#[tokio::test]
async fn entries_go_to_the_org_and_the_conversation_customer_and_are_withheld_from_outsiders() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let acme = Org::setup(&url, 71, "acme", 2, 3).await;
    let globex = Org::setup(&url, 72, "globex", 1, 1).await;
    let (alice, bob, carol) = (&acme.customers[0], &acme.customers[1], &acme.customers[2]);

    let mut ca = RawClient::login(&url, alice).await;
    let chat = acme.start_chat(&mut ca, 0, 710).await;
    let mut cb = RawClient::login(&url, bob).await;
    let _bobs = acme.start_chat(&mut cb, 1, 711).await;
    let mut cc = RawClient::login(&url, carol).await;
    let erased = acme.start_chat(&mut cc, 2, 712).await;
    let mut cg = RawClient::login(&url, &globex.customers[0]).await;
    let _globex_chat = globex.start_chat(&mut cg, 0, 713).await;
    let before = head(&mut ca).await.size;

    // A release of alice's chat (trustee 0's entry), a revocation by alice, and the erasure of
    // carol's chat (signed by the relay).
    let token = full_consent(&acme, alice, chat.id, 714);
    let request = ReleaseRequest::sign(
        &mut rng(715),
        &acme.master.keys,
        &acme.policy,
        EpochRange::single(0),
        Justification::Consent(token.clone()),
        now(),
    )
    .unwrap();
    let mut m = RawClient::login(&url, &acme.master).await;
    m.ok(Request::SubmitRelease(request.clone())).await;
    let mut t0 = RawClient::login(&url, &acme.trustees[0]).await;
    let release = acme.release_entry(&acme.trustees[0], &request);
    let release_at = match t0.request(Request::AppendAudit(release.clone())).await {
        Response::Appended { index, .. } => index,
        other => panic!("expected Appended, got {other:?}"),
    };
    let revoked = full_consent(&acme, alice, chat.id, 716);
    ca.stored(Request::ShareConsent(revoked.clone())).await;
    let revocation = revocation(&alice.keys, chat.id, revoked.id);
    let revocation_at = match ca.request(Request::AppendAudit(revocation.clone())).await {
        Response::Appended { index, .. } => index,
        other => panic!("expected Appended, got {other:?}"),
    };
    cc.ok(Request::Erase(ErasureRequest::sign(
        &carol.keys,
        erased.id,
        now(),
    )))
    .await;
    let h = head(&mut ca).await;
    let erasure_at = h.size - 1;
    assert_eq!(
        (release_at, revocation_at, erasure_at),
        (before, before + 1, before + 2)
    );

    let full = view(&url, &acme.master, h.size).await;
    assert!(
        full.withheld.is_empty(),
        "the master reads all of its org's log"
    );
    assert_eq!(full.read[&release_at], release);
    assert_eq!(full.read[&revocation_at], revocation);
    assert!(matches!(
        full.read[&erasure_at].event,
        AuditEvent::Erasure { conversation, .. } if conversation == erased.id
    ));
    let ours = [release_at, revocation_at, erasure_at];

    // Each reader and which of the three entries it may read.
    let readers: Vec<(&Identity, [bool; 3])> = vec![
        (&acme.master, [true; 3]),
        (&acme.trustees[1], [true; 3]),
        (&acme.arbiters[0], [true; 3]),
        (&acme.agents[0], [true; 3]),
        (&acme.agents[1], [true; 3]),
        // The release and the revocation are about alice's chat; the erasure is carol's.
        (alice, [true, true, false]),
        (carol, [false, false, true]),
        // A customer of the same org, another conversation.
        (bob, [false; 3]),
        // Everyone of another org.
        (&globex.customers[0], [false; 3]),
        (&globex.agents[0], [false; 3]),
        (&globex.master, [false; 3]),
        (&globex.trustees[0], [false; 3]),
    ];
    for (who, may) in readers {
        let v = view(&url, who, h.size).await;
        for (index, may) in ours.iter().zip(may) {
            if may {
                assert_eq!(
                    v.read.get(index),
                    full.read.get(index),
                    "{} reads #{index}",
                    who.name()
                );
            } else {
                assert!(
                    !v.read.contains_key(index),
                    "{} may not read #{index}",
                    who.name()
                );
                assert_eq!(
                    v.withheld.get(index),
                    Some(&full.read[index].leaf_hash()),
                    "{}: #{index} withheld as its leaf hash, not dropped",
                    who.name()
                );
            }
        }
        // Whatever is withheld, the leaves served make up the tree head.
        assert_eq!(merkle::root(&leaves(&v)), h.root, "{}", who.name());
        // Nobody reads another org's conversation entries: globex's log entries (none about
        // conversations here) aside, an outsider reads only policy changes and its own.
        for e in v.read.values() {
            if let Some(c) = e.event.conversation() {
                assert!(
                    c != chat.id || may[0],
                    "{} read an entry of alice's chat",
                    who.name()
                );
            }
        }
    }

    // Proofs stay public: an outsider gets the inclusion proof of the release (hashes only)
    // and a consistency proof, and they verify against the entry's leaf.
    let mut out = RawClient::login(&url, &globex.customers[0]).await;
    match out
        .request(Request::GetInclusion {
            index: release_at,
            size: h.size,
        })
        .await
    {
        Response::Inclusion(p) => p.verify(&release, &h).unwrap(),
        other => panic!("expected an inclusion proof, got {other:?}"),
    }
    match out
        .request(Request::GetConsistency {
            old: before,
            new: h.size,
        })
        .await
    {
        Response::Consistency(p) => assert_eq!((p.old, p.new), (before, h.size)),
        other => panic!("expected a consistency proof, got {other:?}"),
    }
    out.close().await;
    for x in [ca, cb, cc, cg, m, t0] {
        x.close().await;
    }
    stop_relay(relay).await;
}

/// Through the client: after a release of carol's conversation (trustees witnessing and
/// confirming their entries as usual), dave — a customer of the same org with a conversation
/// of his own — runs `audit --verify`: the release entries are counted as withheld, not listed,
/// not called forgeries, and the audit verifies. carol's audit lists and proves them. A relay
/// that alters a withheld leaf hash in dave's listing makes his audit fail.
#[tokio::test]
async fn a_withheld_entry_is_counted_and_an_altered_one_fails_the_audit() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my order is late").await.unwrap();
    let mut dave = w.user_via("dave", Role::Customer, Via::Proxy).await;
    let daves = open_chat(&mut dave).await;
    dave.send_text(&daves, "hello").await.unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "review")
        .await
        .unwrap();
    let t = release(&w, &mut master, conv, Justification::Consent(token)).await;
    assert_eq!(t.releases.len(), 2);

    let mine = carol.audit(Some(conv), true).await.unwrap();
    assert!(mine.verified(), "{mine:?}");
    assert_eq!(mine.entries.len(), 2);
    assert_eq!(mine.releases.len(), 1);
    assert!(mine.leaves_make_head);

    let theirs = dave.audit(None, true).await.unwrap();
    assert!(theirs.verified(), "{theirs:?}");
    assert!(theirs.leaves_make_head);
    assert_eq!(
        theirs.withheld, 2,
        "carol's two release entries: {theirs:?}"
    );
    assert!(
        theirs.releases.is_empty() && theirs.entries.iter().all(|e| e.signer_allowed),
        "{theirs:?}"
    );
    let policy_changes = theirs.entries.len();

    // The relay alters a withheld leaf hash (or serves another entry's): the served leaves
    // no longer make up the head.
    w.proxy()
        .set_hook(move |ctx, frame| match (ctx.account, frame) {
            (
                Some("dave"),
                Frame::Response {
                    id,
                    body:
                        Response::Entries {
                            from,
                            entries,
                            mut withheld,
                        },
                },
            ) => {
                if let Some(first) = withheld.first_mut() {
                    *first.leaf = [0; 32];
                }
                vec![Frame::Response {
                    id,
                    body: Response::Entries {
                        from,
                        entries,
                        withheld,
                    },
                }]
            }
            (_, frame) => vec![frame],
        });
    let forged = dave.audit(None, false).await.unwrap();
    assert!(!forged.leaves_make_head && !forged.verified(), "{forged:?}");
    assert_eq!(forged.withheld, 2);
    assert_eq!(forged.entries.len(), policy_changes);
    w.proxy().set_hook(|_, frame| vec![frame]);
    assert!(dave.audit(None, false).await.unwrap().verified());
    for c in [master, carol, dave] {
        c.close().await;
    }
}
