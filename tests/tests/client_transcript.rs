//! The offline transcript verifier against forged exports: one forgery per way a file can lie,
//! each refused with its named reason, while the genuine export of a real end-to-end release
//! (real relay, real trustees) verifies against the anchors a reader would hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    Client,
    transcript::{
        Anchors, CONSENT_LATER_EPOCHS_WEAKER, ExportFile, FORMAT_V1, NO_COSIGNATURES_WEAKER,
        Reason, Verification, parse_export, sign_export, verify_export,
    },
};
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, InclusionProof, ReleaseBasis, SignedTreeHead},
    card::{IdentityCard, Role},
    epoch::{EpochRecord, NewEpoch},
    ids::{ConversationId, EpochRange},
    keys::IdentityKeys,
    merkle::MerkleTree,
    message::{ContentKind, Envelope, EpochKeys},
    policy::{OrgPolicy, PolicyParams, VerifiedPolicy},
    release::{ConsentParams, ConsentToken, Justification, ReleaseRequest, Scope},
    wire::{from_cbor, to_cbor},
};
use sealdesk_tests::transcript::{Genuine, genuine};
use serde::{Serialize, de::DeserializeOwned};

const NOW: u64 = 1_900_000_000;

fn dec<T: DeserializeOwned>(s: &str) -> T {
    from_cbor(&hex::decode(s).unwrap(), "test").unwrap()
}

fn enc<T: Serialize>(v: &T) -> String {
    hex::encode(to_cbor(v).unwrap())
}

fn master_keys(g: &Genuine) -> &IdentityKeys {
    g.master.account().keys()
}

#[track_caller]
fn refused(v: &Verification, reason: Reason) {
    assert!(!v.ok, "a forgery verified: {v:#?}");
    assert!(
        v.failed(reason),
        "expected {reason}, got {:?}: {:#?}",
        v.reasons(),
        v.failures
    );
}

#[tokio::test]
async fn genuine_export_verifies_and_each_forgery_is_refused_with_its_reason() {
    let g = genuine(Scope::Full).await;
    let file = &g.full;
    let v = verify_export(file, &g.anchors);
    assert!(v.ok, "{:#?}", v.failures);
    assert!(v.anchored);
    assert_eq!(v.released_epochs, vec![0, 1]);
    // Two epochs under a consent: the second is bound to the customer through the chain only;
    // the tree head is the relay's word alone.
    assert_eq!(
        v.weaker,
        vec![
            NO_COSIGNATURES_WEAKER.to_owned(),
            CONSENT_LATER_EPOCHS_WEAKER.to_owned()
        ]
    );
    // Every seq is accounted for: epoch records, messages and the items left out.
    assert!(file.messages.len() >= 4);
    assert!(file.omitted.iter().any(|o| o.kind == "handoff"));

    // --- anchors ---------------------------------------------------------------------------
    let wrong = Anchors {
        org_fingerprint: Some("00000 00000 00000 00000 00000 00000".into()),
        ..g.anchors.clone()
    };
    refused(&verify_export(file, &wrong), Reason::WrongMaster);
    let wrong_log = Anchors {
        log_keys: vec![
            IdentityKeys::generate(&mut sealdesk_client::rng().unwrap()).signing_public(),
        ],
        ..g.anchors.clone()
    };
    let v = verify_export(file, &wrong_log);
    refused(&v, Reason::UntrustedTreeHead);
    refused(&v, Reason::NotIncluded);
    let v = verify_export(file, &Anchors::default());
    refused(&v, Reason::NoOrgAnchor);
    refused(&v, Reason::NoLogAnchor);
    assert!(!v.anchored);
    assert_eq!(
        v.reasons(),
        vec![Reason::NoOrgAnchor, Reason::NoLogAnchor],
        "unanchored, everything else holds"
    );

    // --- format ----------------------------------------------------------------------------
    let mut old = file.clone();
    old.format = FORMAT_V1.into();
    refused(&verify_export(&old, &g.anchors), Reason::UnsupportedFormat);

    // --- messages dropped from the end: the master's end marker states the last seq ----------
    let mut tail = file.clone();
    let last = tail.messages.pop().unwrap();
    refused(&verify_export(&tail, &g.anchors), Reason::SequenceGap);
    tail.last_seq = last.seq - 1;
    tail.omitted.retain(|o| o.seq < last.seq);
    let v = verify_export(&tail, &g.anchors);
    assert_eq!(v.reasons(), vec![Reason::BadEndMarker], "{:#?}", v.failures);

    // --- a message dropped from the middle: the sender's counters and the seqs show it ------
    let mut middle = file.clone();
    middle.messages.remove(0);
    let v = verify_export(&middle, &g.anchors);
    refused(&v, Reason::CounterGap);
    refused(&v, Reason::SequenceGap);
    refused(&v, Reason::BadEndMarker);
    // Even re-signed by the master itself, a message left out of a released epoch is refused.
    let mut withheld = file.clone();
    let m = withheld.messages.remove(0);
    withheld
        .omitted
        .push(sealdesk_client::transcript::ExportOmitted {
            seq: m.seq,
            kind: "message".into(),
            epoch: Some(m.epoch),
            record: None,
        });
    sign_export(&mut withheld, master_keys(&g)).unwrap();
    let v = verify_export(&withheld, &g.anchors);
    refused(&v, Reason::WithheldMessage);
    refused(&v, Reason::CounterGap);

    // --- two messages of different senders swapped --------------------------------------------
    let (i, j) = (1, 2);
    assert_ne!(file.messages[i].sender, file.messages[j].sender);
    let mut swapped = file.clone();
    let (a, b) = (swapped.messages[i].clone(), swapped.messages[j].clone());
    swapped.messages[i].sender = b.sender.clone();
    swapped.messages[i].text = b.text.clone();
    swapped.messages[j].sender = a.sender.clone();
    swapped.messages[j].text = a.text.clone();
    sign_export(&mut swapped, master_keys(&g)).unwrap();
    let v = verify_export(&swapped, &g.anchors);
    refused(&v, Reason::SenderNameMismatch);
    refused(&v, Reason::TextMismatch);
    // Swapping whole messages (their seqs) is caught by the master's end marker.
    let mut reordered = file.clone();
    let (sa, sb) = (reordered.messages[i].seq, reordered.messages[j].seq);
    reordered.messages[i].seq = sb;
    reordered.messages[j].seq = sa;
    reordered.messages.swap(i, j);
    let v = verify_export(&reordered, &g.anchors);
    assert_eq!(v.reasons(), vec![Reason::BadEndMarker], "{:#?}", v.failures);

    // --- a text rewritten in a non-redacted export -------------------------------------------
    let mut text = file.clone();
    text.messages[0].text = "my card is safe".into();
    sign_export(&mut text, master_keys(&g)).unwrap();
    assert_eq!(
        verify_export(&text, &g.anchors).reasons(),
        vec![Reason::TextMismatch]
    );

    // --- release entries ------------------------------------------------------------------------
    assert_eq!(file.releases.len(), 2);
    // Fewer distinct trustees than the threshold (2 of 3).
    let mut fewer = file.clone();
    fewer.releases.pop();
    sign_export(&mut fewer, master_keys(&g)).unwrap();
    let v = verify_export(&fewer, &g.anchors);
    refused(&v, Reason::ThresholdNotMet);
    refused(&v, Reason::EpochNotReleased);
    // The same trustee twice does not count twice.
    let mut twice = file.clone();
    twice.releases[1] = twice.releases[0].clone();
    sign_export(&mut twice, master_keys(&g)).unwrap();
    let v = verify_export(&twice, &g.anchors);
    refused(&v, Reason::DuplicateTrustee);
    refused(&v, Reason::ThresholdNotMet);
    // Signed by a key that is no trustee (the same event, re-signed).
    let mut rng = sealdesk_client::rng().unwrap();
    let stranger = IdentityKeys::generate(&mut rng);
    let mut by_stranger = file.clone();
    let e: AuditEntry = dec(&by_stranger.releases[1].entry);
    by_stranger.releases[1].entry = enc(&AuditEntry::sign(&stranger, e.event, e.at));
    sign_export(&mut by_stranger, master_keys(&g)).unwrap();
    let v = verify_export(&by_stranger, &g.anchors);
    refused(&v, Reason::SignerNotTrustee);
    refused(&v, Reason::NotIncluded);
    refused(&v, Reason::ThresholdNotMet);
    // A revocation (genuinely signed by the customer) shown as a release, with the file's text.
    let mut revocation = file.clone();
    let e: AuditEntry = dec(&revocation.releases[1].entry);
    let AuditEvent::Release { basis, .. } = &e.event else {
        panic!("a release entry")
    };
    let ReleaseBasis::Consent { id, .. } = basis else {
        panic!("a consent release")
    };
    revocation.releases[1].entry = enc(&AuditEntry::sign(
        g.carol.account().keys(),
        AuditEvent::ConsentRevocation {
            conversation: g.conv,
            consent: *id,
        },
        e.at,
    ));
    sign_export(&mut revocation, master_keys(&g)).unwrap();
    let v = verify_export(&revocation, &g.anchors);
    refused(&v, Reason::NotAReleaseEvent);
    refused(&v, Reason::ThresholdNotMet);

    // --- the customer's card replaced under the same name ---------------------------------------
    let v = verify_export(&swap_card(&g, file, Role::Customer, None), &g.anchors);
    refused(&v, Reason::JustificationMismatch);
    refused(&v, Reason::BadEndMarker);
    let mut resigned = swap_card(&g, file, Role::Customer, None);
    sign_export(&mut resigned, master_keys(&g)).unwrap();
    refused(
        &verify_export(&resigned, &g.anchors),
        Reason::JustificationMismatch,
    );
    // ... or the agent's, by the customer who created the epoch: no certificate from the
    // master for the new key.
    let mut resigned = swap_card(&g, file, Role::Agent, Some(g.carol.account().keys()));
    sign_export(&mut resigned, master_keys(&g)).unwrap();
    refused(
        &verify_export(&resigned, &g.anchors),
        Reason::AgentNotCertified,
    );

    // --- an epoch record signed by a key that is not a member ---------------------------------
    let mut non_member = file.clone();
    let mut rec: EpochRecord = dec(&non_member.epochs[1].record);
    rec.creator = stranger.signing_public();
    rec.signature = stranger.sign(&rec.signed_bytes());
    non_member.epochs[1].record = enc(&rec);
    sign_export(&mut non_member, master_keys(&g)).unwrap();
    refused(
        &verify_export(&non_member, &g.anchors),
        Reason::BrokenEpochChain,
    );

    // --- the policy rewritten (one trustee, threshold 1) and re-signed by another master ------
    let v = verify_export(&rewritten_policy(file), &g.anchors);
    refused(&v, Reason::WrongMaster);
    // Unanchored, only the printed fingerprint differs: which is why the anchor is required.
    let v = verify_export(&rewritten_policy(file), &Anchors::default());
    assert_ne!(
        v.master_fingerprint,
        verify_export(file, &g.anchors).master_fingerprint
    );
    refused(&v, Reason::NoOrgAnchor);

    // --- the remaining checks, one tampering each ---------------------------------------------
    // A released key that is not the epoch's.
    let mut key = file.clone();
    let mut k = hex::decode(key.epochs[0].key.as_ref().unwrap()).unwrap();
    k[0] ^= 1;
    key.epochs[0].key = Some(hex::encode(k));
    sign_export(&mut key, master_keys(&g)).unwrap();
    let v = verify_export(&key, &g.anchors);
    refused(&v, Reason::BadKey);
    // A message signed by someone who is not a member of its epoch.
    let mut outsider = file.clone();
    let mut env: Envelope = dec(&outsider.messages[0].envelope);
    env.header.sender = stranger.signing_public();
    env.signature = stranger.sign(&env.signed_bytes());
    outsider.messages[0].envelope = enc(&env);
    sign_export(&mut outsider, master_keys(&g)).unwrap();
    refused(
        &verify_export(&outsider, &g.anchors),
        Reason::SenderNotMember,
    );
    // A ciphertext changed under the sender's signature.
    let mut tampered = file.clone();
    let mut env: Envelope = dec(&tampered.messages[0].envelope);
    env.ciphertext[0] ^= 1;
    tampered.messages[0].envelope = enc(&env);
    sign_export(&mut tampered, master_keys(&g)).unwrap();
    refused(
        &verify_export(&tampered, &g.anchors),
        Reason::BadMessageSignature,
    );
    // A release entry changed under its trustee's signature.
    let mut entry_sig = file.clone();
    let mut e: AuditEntry = dec(&entry_sig.releases[0].entry);
    e.at += 1;
    entry_sig.releases[0].entry = enc(&e);
    sign_export(&mut entry_sig, master_keys(&g)).unwrap();
    let v = verify_export(&entry_sig, &g.anchors);
    refused(&v, Reason::BadReleaseSignature);
    refused(&v, Reason::NotIncluded);
    // No release entries at all.
    let mut none = file.clone();
    none.releases.clear();
    sign_export(&mut none, master_keys(&g)).unwrap();
    let v = verify_export(&none, &g.anchors);
    refused(&v, Reason::NoRelease);
    refused(&v, Reason::EpochNotReleased);
    // The policy's terms changed under the master's signature.
    let mut policy_terms = file.clone();
    let mut p: OrgPolicy = dec(&policy_terms.policies[0]);
    p.trustee_threshold = 1;
    policy_terms.policies[0] = enc(&p);
    let v = verify_export(&policy_terms, &g.anchors);
    refused(&v, Reason::BadPolicy);
    refused(&v, Reason::WrongMaster);
    // The file claims another conversation.
    let mut other = file.clone();
    other.conversation = ConversationId::random(&mut rng).to_string();
    sign_export(&mut other, master_keys(&g)).unwrap();
    let v = verify_export(&other, &g.anchors);
    refused(&v, Reason::WrongConversation);
    refused(&v, Reason::JustificationMismatch);
    // A hand-off record altered under its signer's signature, or left out.
    let at = file
        .omitted
        .iter()
        .position(|o| o.kind == "handoff")
        .unwrap();
    let mut handoff = file.clone();
    let mut h: sealdesk_protocol::epoch::HandOff =
        dec(handoff.omitted[at].record.as_ref().unwrap());
    h.to = stranger.signing_public();
    handoff.omitted[at].record = Some(enc(&h));
    sign_export(&mut handoff, master_keys(&g)).unwrap();
    refused(&verify_export(&handoff, &g.anchors), Reason::BadHandOff);
    let mut no_record = file.clone();
    no_record.omitted[at].record = None;
    sign_export(&mut no_record, master_keys(&g)).unwrap();
    refused(&verify_export(&no_record, &g.anchors), Reason::BadHandOff);
    // The hand-off's own signer (alice, helping the forger) re-signs it: to a key that is in
    // no later epoch, or handing over nothing.
    let alice =
        sealdesk_client::account::Account::open(&g.w.home("alice"), sealdesk_tests::world::PASS)
            .unwrap();
    let mut h: sealdesk_protocol::epoch::HandOff = dec(file.omitted[at].record.as_ref().unwrap());
    assert_eq!(h.from, alice.keys().signing_public());
    let mut to_stranger = h.clone();
    to_stranger.to = stranger.signing_public();
    to_stranger.signature = alice.keys().sign(&to_stranger.signed_bytes());
    let mut stranger_file = file.clone();
    stranger_file.omitted[at].record = Some(enc(&to_stranger));
    sign_export(&mut stranger_file, master_keys(&g)).unwrap();
    let v = verify_export(&stranger_file, &g.anchors);
    assert_eq!(v.reasons(), vec![Reason::BadHandOff], "{:#?}", v.failures);
    assert!(
        v.failures[0]
            .detail
            .contains("not a member of a later epoch"),
        "{:#?}",
        v.failures
    );
    h.epochs.clear();
    h.signature = alice.keys().sign(&h.signed_bytes());
    let mut empty = file.clone();
    empty.omitted[at].record = Some(enc(&h));
    sign_export(&mut empty, master_keys(&g)).unwrap();
    let v = verify_export(&empty, &g.anchors);
    assert_eq!(v.reasons(), vec![Reason::BadHandOff], "{:#?}", v.failures);
    // The end marker covers the hand-off record: swapped in after the master signed, the
    // re-signed record is refused by the end marker as well as by its own check.
    let mut swapped_record = file.clone();
    swapped_record.omitted[at].record = stranger_file.omitted[at].record.clone();
    let v = verify_export(&swapped_record, &g.anchors);
    assert_eq!(
        v.reasons(),
        vec![Reason::BadHandOff, Reason::BadEndMarker],
        "{:#?}",
        v.failures
    );
    // An undecodable field.
    let mut garbage = file.clone();
    garbage.messages[0].envelope = "zz".into();
    refused(&verify_export(&garbage, &g.anchors), Reason::Undecodable);

    // --- fabricated from nothing but the org's public policy ----------------------------------
    let policy = public_policy(&g.master);
    let v = verify_export(&fabricated(&policy, &file.org), &g.anchors);
    for reason in [
        Reason::BadEndMarker,
        Reason::AgentNotCertified,
        Reason::SignerNotTrustee,
        Reason::JustificationMismatch,
        Reason::UntrustedTreeHead,
        Reason::ThresholdNotMet,
    ] {
        refused(&v, reason);
    }
    drop(g.w);
}

// Redacted exports (per-message disclosure) are tested in `redacted_export.rs`.

/// The org's public policy, as anyone can fetch it from the relay.
fn public_policy(c: &Client) -> VerifiedPolicy {
    c.account()
        .stored_policy("acme", 1)
        .unwrap()
        .unwrap()
        .verify()
        .unwrap()
}

/// Replaces the first member of `role` by a new key under the same name: the records re-signed
/// by the replacement key where the member created them, or by `accomplice` (a member who
/// helps the forger) where it did, the member's messages re-sealed and re-signed
/// with the new key (the forger holds the released K).
fn swap_card(
    g: &Genuine,
    file: &ExportFile,
    role: Role,
    accomplice: Option<&IdentityKeys>,
) -> ExportFile {
    let mut out = file.clone();
    let mut rng = sealdesk_client::rng().unwrap();
    let new = IdentityKeys::generate(&mut rng);
    let e0: EpochRecord = dec(&out.epochs[0].record);
    let old_card = e0.members.iter().find(|m| m.role == role).unwrap().clone();
    let new_card = IdentityCard::issue(&new, &old_card.name, role, old_card.created_at)
        .unwrap()
        .card()
        .clone();
    let policy = public_policy(&g.master);
    let mut previous: Option<EpochRecord> = None;
    for ep in &mut out.epochs {
        let mut rec: EpochRecord = dec(&ep.record);
        for m in &mut rec.members {
            if m.signing_key == old_card.signing_key {
                *m = new_card.clone();
            }
        }
        if let Some(p) = &previous {
            rec.previous = Some(p.hash());
        }
        if rec.creator == old_card.signing_key {
            rec.creator = new.signing_public();
            rec.signature = new.sign(&rec.signed_bytes());
        } else if let Some(k) = accomplice.filter(|k| k.signing_public() == rec.creator) {
            rec.signature = k.sign(&rec.signed_bytes());
        }
        // Records created by someone else keep their old signature: the forger cannot re-sign
        // them. The checks the tests look for must fire regardless.
        previous = Some(rec.clone());
        ep.record = enc(&rec);
    }
    for m in &mut out.messages {
        let env: Envelope = dec(&m.envelope);
        if env.header.sender != old_card.signing_key {
            continue;
        }
        let ep = out
            .epochs
            .iter()
            .find(|e| e.epoch == env.header.epoch)
            .unwrap();
        let rec: EpochRecord = dec(&ep.record);
        let k = sealdesk_protocol::secret::EpochSecret::from_bytes(&zeroize::Zeroizing::new(
            <[u8; 32]>::try_from(hex::decode(ep.key.as_ref().unwrap()).unwrap().as_slice())
                .unwrap(),
        ));
        // Where the forger could not re-sign the record, the message stays as it was.
        let Ok(verified) = rec.clone().verify(&policy) else {
            continue;
        };
        let env = EpochKeys::new(&k, &verified)
            .seal_message(
                &new,
                env.header.counter,
                env.header.kind,
                env.header.sent_at,
                m.text.as_bytes(),
            )
            .unwrap();
        m.envelope = enc(&env);
    }
    out
}

/// The file's policy replaced by one with a single trustee and threshold 1, signed by another
/// master key.
fn rewritten_policy(file: &ExportFile) -> ExportFile {
    let mut out = file.clone();
    let mut rng = sealdesk_client::rng().unwrap();
    let master = IdentityKeys::generate(&mut rng);
    let trustee = IdentityKeys::generate(&mut rng);
    let old: OrgPolicy = dec(&out.policies[0]);
    let master_card = IdentityCard::issue(&master, &old.master.name, Role::Master, NOW).unwrap();
    let trustee_card = IdentityCard::issue(&trustee, "trustee-1", Role::Trustee, NOW).unwrap();
    let mut params = PolicyParams::new(
        &old.org,
        vec![trustee_card.card().clone()],
        1,
        old.arbiters.clone(),
        old.arbiter_threshold,
    );
    params.version = old.version;
    let p = OrgPolicy::issue(&master, &master_card, params, NOW).unwrap();
    out.policies = vec![enc(p.policy())];
    out
}

/// A transcript made up from the org's public policy alone: a new conversation, self-made
/// customer and agent cards, made-up messages, a release "signed" by a random key, a log key and
/// tree head of the forger's own.
fn fabricated(policy: &VerifiedPolicy, org: &str) -> ExportFile {
    let mut rng = sealdesk_client::rng().unwrap();
    let customer = IdentityKeys::generate(&mut rng);
    let agent = IdentityKeys::generate(&mut rng);
    let forger = IdentityKeys::generate(&mut rng);
    let log = IdentityKeys::generate(&mut rng);
    let cards = [
        IdentityCard::issue(&customer, "carol", Role::Customer, NOW).unwrap(),
        IdentityCard::issue(&agent, "alice", Role::Agent, NOW).unwrap(),
    ];
    let conv = ConversationId::random(&mut rng);
    let (rec, k) = EpochRecord::create(
        &mut rng,
        &customer,
        policy,
        NewEpoch {
            conversation: conv,
            epoch: 0,
            members: &cards,
            previous: None,
            now: NOW,
        },
    )
    .unwrap();
    let keys = EpochKeys::new(&k, &rec);
    let said = [
        (&customer, 0, "I authorise the wire transfer"),
        (&agent, 0, "noted"),
    ];
    let mut messages = Vec::new();
    for (i, (who, counter, text)) in said.iter().enumerate() {
        let env = keys
            .seal_message(who, *counter, ContentKind::Text, NOW, text.as_bytes())
            .unwrap();
        messages.push(sealdesk_client::transcript::ExportMessage {
            seq: i as u64 + 2,
            epoch: 0,
            sender: if i == 0 { "carol" } else { "alice" }.into(),
            sent_at: NOW,
            text: (*text).into(),
            envelope: enc(&env),
            attachment: None,
            key: None,
            withheld: false,
        });
    }
    let consent = ConsentToken::issue(
        &mut rng,
        &customer,
        policy,
        ConsentParams {
            conversation: conv,
            epochs: EpochRange::single(0),
            scope: Scope::Full,
            purpose: "review".into(),
            valid_secs: 3600,
        },
        NOW,
    )
    .unwrap();
    let request = ReleaseRequest::sign(
        &mut rng,
        &forger,
        policy,
        EpochRange::single(0),
        Justification::Consent(consent.clone()),
        NOW,
    )
    .unwrap();
    let entry = AuditEntry::sign(
        &forger,
        AuditEvent::Release {
            org: org.into(),
            request_hash: request.hash(),
            conversation: conv,
            epochs: EpochRange::single(0),
            basis: ReleaseBasis::Consent {
                id: consent.id,
                scope: Scope::Full,
                issued_at: consent.issued_at,
            },
            master: policy.master_key(),
        },
        NOW,
    );
    let mut tree = MerkleTree::default();
    tree.push(&entry.leaf());
    let head = SignedTreeHead::sign(&log, 1, tree.root(), NOW);
    let proof = InclusionProof {
        index: 0,
        size: 1,
        path: Vec::new(),
    };
    let mut file = ExportFile {
        format: sealdesk_client::transcript::FORMAT.into(),
        conversation: conv.to_string(),
        org: org.into(),
        redacted: false,
        policies: vec![enc(policy.policy())],
        epochs: vec![sealdesk_client::transcript::ExportEpoch {
            seq: 1,
            epoch: 0,
            record: enc(rec.record()),
            key: Some(hex::encode(k.to_bytes().as_slice())),
        }],
        certificates: Vec::new(),
        messages,
        omitted: Vec::new(),
        last_seq: 3,
        releases: vec![sealdesk_client::transcript::ExportRelease {
            index: 0,
            entry: enc(&entry),
            request: enc(&request),
            inclusion: enc(&proof),
            text: "acme opened epoch 0 of this chat under your consent".into(),
        }],
        log_key: hex::encode(log.signing_public().as_bytes()),
        tree_head: enc(&head),
        end: sealdesk_client::transcript::EndMarker {
            signed_at: NOW,
            signature: String::new(),
        },
    };
    sign_export(&mut file, &forger).unwrap();
    file
}

// --- a synthetic org, for what a live relay cannot stage ---------------------------------------
//
// Everything below is made with the protocol crate alone: an org whose keys the test holds (so
// it can anchor them), its own log key, and releases shaped as the test needs (a trustee that
// answered one request and another that answered a second one; a dispute).

/// The wire form of an inclusion proof, built from plain hashes.
#[derive(Serialize)]
struct WireProof {
    index: u64,
    size: u64,
    path: Vec<[u8; 32]>,
}

struct Synthetic {
    master: IdentityKeys,
    trustees: Vec<IdentityKeys>,
    arbiters: Vec<IdentityKeys>,
    customer: IdentityKeys,
    agent: IdentityKeys,
    log: IdentityKeys,
    policy: VerifiedPolicy,
    cert: sealdesk_protocol::policy::AgentCertificate,
    /// When the trustees sign their release entries.
    release_at: u64,
    /// Seconds the master adds to the consent's validity, re-signed by the customer's key.
    stretch: u64,
    /// A second agent, "dave", to whom alice hands the conversation when `handoff` is set.
    dave: IdentityKeys,
    dave_cert: sealdesk_protocol::policy::AgentCertificate,
    /// Adds epoch 1 (alice hands over to dave: customer and dave) at #4 and the hand-off of
    /// epoch 0 to dave at #5; both epochs are released.
    handoff: bool,
    /// Whether a dispute ticket names its epoch records: not at all (a ticket from before
    /// tickets bound them), the file's records, or records the file does not show.
    bind: Bind,
}

/// How a synthetic dispute ticket binds the epoch records ([`Synthetic::bind`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bind {
    None,
    Genuine,
    Other,
}

impl Synthetic {
    fn new() -> Self {
        Self::with_history_handoff(true)
    }

    /// An org whose policy allows history hand-off or not.
    fn with_history_handoff(history_handoff: bool) -> Self {
        let mut rng = sealdesk_client::rng().unwrap();
        let mut keys = |n: usize| -> Vec<IdentityKeys> {
            (0..n).map(|_| IdentityKeys::generate(&mut rng)).collect()
        };
        let master = keys(1).remove(0);
        let trustees = keys(3);
        let arbiters = keys(3);
        let mut two = keys(3);
        let (customer, agent, log) = (two.remove(0), two.remove(0), two.remove(0));
        let dave = keys(1).remove(0);
        let card =
            |k: &IdentityKeys, name: &str, role| IdentityCard::issue(k, name, role, NOW).unwrap();
        let master_card = card(&master, "acme-owner", Role::Master);
        let params = PolicyParams::new(
            "acme",
            trustees
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    card(k, &format!("trustee-{i}"), Role::Trustee)
                        .card()
                        .clone()
                })
                .collect(),
            2,
            arbiters
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    card(k, &format!("arbiter-{i}"), Role::Arbiter)
                        .card()
                        .clone()
                })
                .collect(),
            2,
        );
        let params = PolicyParams {
            history_handoff,
            ..params
        };
        let policy = OrgPolicy::issue(&master, &master_card, params, NOW).unwrap();
        let cert = sealdesk_protocol::policy::AgentCertificate::issue(
            &master,
            &policy,
            &card(&agent, "alice", Role::Agent),
            NOW,
            86_400,
        )
        .unwrap();
        let dave_cert = sealdesk_protocol::policy::AgentCertificate::issue(
            &master,
            &policy,
            &card(&dave, "dave", Role::Agent),
            NOW,
            86_400,
        )
        .unwrap();
        Synthetic {
            master,
            trustees,
            arbiters,
            customer,
            agent,
            log,
            policy,
            cert,
            release_at: NOW + 6,
            stretch: 0,
            dave,
            dave_cert,
            handoff: false,
            bind: Bind::None,
        }
    }

    fn anchors(&self) -> Anchors {
        Anchors {
            org_fingerprint: Some(
                self.policy
                    .master
                    .clone()
                    .verify()
                    .unwrap()
                    .fingerprint()
                    .to_string(),
            ),
            log_keys: vec![self.log.signing_public()],
        }
    }

    /// An export of one epoch with two messages. `requests` lists, per release request, the
    /// trustees that released it; `dispute` makes the justification a ticket approved by that
    /// many arbiters instead of a consent.
    fn export(&self, requests: &[&[usize]], dispute: Option<usize>) -> ExportFile {
        let mut rng = sealdesk_client::rng().unwrap();
        let cards = [
            IdentityCard::issue(&self.customer, "carol", Role::Customer, NOW).unwrap(),
            IdentityCard::issue(&self.agent, "alice", Role::Agent, NOW).unwrap(),
        ];
        let conv = ConversationId::random(&mut rng);
        let (rec, k) = EpochRecord::create(
            &mut rng,
            &self.customer,
            &self.policy,
            NewEpoch {
                conversation: conv,
                epoch: 0,
                members: &cards,
                previous: None,
                now: NOW + 1,
            },
        )
        .unwrap();
        let keys = EpochKeys::new(&k, &rec);
        // With `handoff`: epoch 1 by alice (customer and dave), and alice's hand-off of epoch 0.
        let second = self.handoff.then(|| {
            let cards = [
                cards[0].clone(),
                IdentityCard::issue(&self.dave, "dave", Role::Agent, NOW).unwrap(),
            ];
            let (rec1, k1) = EpochRecord::create(
                &mut rng,
                &self.agent,
                &self.policy,
                NewEpoch {
                    conversation: conv,
                    epoch: 1,
                    members: &cards,
                    previous: Some(rec.record()),
                    now: NOW + 3,
                },
            )
            .unwrap();
            let h = sealdesk_protocol::epoch::HandOff::create(
                &mut rng,
                &self.agent,
                &cards[1],
                conv,
                &[(0, &k)],
                NOW + 3,
            )
            .unwrap();
            (rec1, k1, h)
        });
        let range = if self.handoff {
            EpochRange::new(0, 1).unwrap()
        } else {
            EpochRange::single(0)
        };
        let mut messages = Vec::new();
        for (i, (who, name, text)) in [
            (&self.customer, "carol", "where is my parcel?"),
            (&self.agent, "alice", "on its way"),
        ]
        .into_iter()
        .enumerate()
        {
            let env = keys
                .seal_message(who, 0, ContentKind::Text, NOW + 2, text.as_bytes())
                .unwrap();
            messages.push(sealdesk_client::transcript::ExportMessage {
                seq: i as u64 + 2,
                epoch: 0,
                sender: name.into(),
                sent_at: NOW + 2,
                text: text.into(),
                envelope: enc(&env),
                attachment: None,
                key: None,
                withheld: false,
            });
        }
        let (justification, basis_of) = match dispute {
            None => {
                let mut consent = ConsentToken::issue(
                    &mut rng,
                    &self.customer,
                    &self.policy,
                    ConsentParams {
                        conversation: conv,
                        epochs: range,
                        scope: Scope::Full,
                        purpose: "review".into(),
                        valid_secs: 3600,
                    },
                    NOW + 3,
                )
                .unwrap();
                if self.stretch > 0 {
                    consent.expires_at += self.stretch;
                    consent.signature = self.customer.sign(&consent.signed_bytes());
                }
                let basis = ReleaseBasis::Consent {
                    id: consent.id,
                    scope: Scope::Full,
                    issued_at: consent.issued_at,
                };
                (Justification::Consent(consent), basis)
            }
            Some(approvals) => {
                let mut records = Vec::new();
                if self.bind != Bind::None {
                    let recs = std::iter::once(&rec).chain(second.as_ref().map(|s| &s.0));
                    for r in recs {
                        let mut hash = r.hash();
                        if self.bind == Bind::Other {
                            hash[0] ^= 1;
                        }
                        records.push(sealdesk_protocol::release::BoundRecord {
                            epoch: r.epoch,
                            hash,
                        });
                    }
                }
                let ticket = sealdesk_protocol::release::DisputeTicket::issue_bound(
                    &mut rng,
                    &self.master,
                    &self.policy,
                    sealdesk_protocol::release::DisputeParams {
                        conversation: conv,
                        epochs: range,
                        reason: "chargeback".into(),
                        valid_secs: 3600,
                    },
                    records,
                    NOW + 3,
                )
                .unwrap();
                let decisions: Vec<_> = self.arbiters[..approvals]
                    .iter()
                    .map(|a| {
                        sealdesk_protocol::release::ArbiterDecision::sign(
                            a,
                            &ticket,
                            sealdesk_protocol::release::Verdict::Approve,
                            NOW + 4,
                        )
                        .unwrap()
                    })
                    .collect();
                let basis = ReleaseBasis::Dispute {
                    id: ticket.id,
                    approvers: decisions.iter().map(|d| d.arbiter).collect(),
                };
                (Justification::Dispute { ticket, decisions }, basis)
            }
        };
        let mut tree = MerkleTree::default();
        let mut released = Vec::new();
        for trustees in requests {
            let request = ReleaseRequest::sign(
                &mut rng,
                &self.master,
                &self.policy,
                range,
                justification.clone(),
                NOW + 5,
            )
            .unwrap();
            for t in *trustees {
                let entry = AuditEntry::sign(
                    &self.trustees[*t],
                    AuditEvent::Release {
                        org: "acme".into(),
                        request_hash: request.hash(),
                        conversation: conv,
                        epochs: range,
                        basis: basis_of.clone(),
                        master: self.master.signing_public(),
                    },
                    self.release_at,
                );
                let index = tree.push(&entry.leaf());
                released.push((index, entry, request.clone()));
            }
        }
        let size = tree.len();
        let head = SignedTreeHead::sign(&self.log, size, tree.root(), NOW + 7);
        let releases = released
            .into_iter()
            .map(|(index, entry, request)| {
                let proof = WireProof {
                    index,
                    size,
                    path: tree.inclusion_proof(index, size).unwrap(),
                };
                let proof: InclusionProof = dec(&enc(&proof));
                sealdesk_client::transcript::ExportRelease {
                    index,
                    entry: enc(&entry),
                    request: enc(&request),
                    inclusion: enc(&proof),
                    text: String::new(),
                }
            })
            .collect();
        let mut file = ExportFile {
            format: sealdesk_client::transcript::FORMAT.into(),
            conversation: conv.to_string(),
            org: "acme".into(),
            redacted: false,
            policies: vec![enc(self.policy.policy())],
            epochs: vec![sealdesk_client::transcript::ExportEpoch {
                seq: 1,
                epoch: 0,
                record: enc(rec.record()),
                key: Some(hex::encode(k.to_bytes().as_slice())),
            }],
            certificates: vec![enc(&self.cert)],
            messages,
            omitted: Vec::new(),
            last_seq: 3,
            releases,
            log_key: hex::encode(self.log.signing_public().as_bytes()),
            tree_head: enc(&head),
            end: sealdesk_client::transcript::EndMarker {
                signed_at: NOW + 8,
                signature: String::new(),
            },
        };
        if let Some((rec1, k1, h)) = second {
            file.epochs.push(sealdesk_client::transcript::ExportEpoch {
                seq: 4,
                epoch: 1,
                record: enc(rec1.record()),
                key: Some(hex::encode(k1.to_bytes().as_slice())),
            });
            file.certificates.push(enc(&self.dave_cert));
            file.omitted
                .push(sealdesk_client::transcript::ExportOmitted {
                    seq: 5,
                    kind: "handoff".into(),
                    epoch: None,
                    record: Some(enc(&h)),
                });
            file.last_seq = 5;
        }
        sign_export(&mut file, &self.master).unwrap();
        file
    }
}

#[test]
fn synthetic_releases_count_trustees_per_request_and_check_dispute_approvals() {
    let s = Synthetic::new();
    // The builder makes a verifying export (consent; two trustees on one request).
    let v = verify_export(&s.export(&[&[0, 1]], None), &s.anchors());
    assert!(v.ok, "{:#?}", v.failures);
    // Two trustees, each on a different request: no request reached the threshold.
    let v = verify_export(&s.export(&[&[0], &[1]], None), &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::EpochNotReleased, Reason::ThresholdNotMet],
        "{:#?}",
        v.failures
    );
    // A dispute approved by one arbiter does not justify a release. (One approved by two is
    // refused for another reason: see the dispute test below.)
    let v = verify_export(&s.export(&[&[1, 2]], Some(1)), &s.anchors());
    refused(&v, Reason::JustificationMismatch);
    // Only a later policy version, by the same master: the epoch's own policy is missing.
    let mut missing = s.export(&[&[0, 1]], None);
    let mut params = PolicyParams::new(
        "acme",
        s.policy.trustees.clone(),
        2,
        s.policy.arbiters.clone(),
        2,
    );
    params.version = 2;
    let master_card = IdentityCard::issue(&s.master, "acme-owner", Role::Master, NOW).unwrap();
    let v2 = OrgPolicy::issue(&s.master, &master_card, params, NOW + 100).unwrap();
    missing.policies = vec![enc(v2.policy())];
    sign_export(&mut missing, &s.master).unwrap();
    refused(
        &verify_export(&missing, &s.anchors()),
        Reason::MissingPolicy,
    );
    // An agent certificate that expired before the epoch was created does not certify it.
    let mut late = s.export(&[&[0, 1]], None);
    let mut cert: sealdesk_protocol::policy::AgentCertificate = dec(&late.certificates[0]);
    cert.issued_at = NOW - 10;
    cert.expires_at = NOW;
    cert.signature = s.master.sign(&cert.signed_bytes());
    late.certificates[0] = enc(&cert);
    refused(
        &verify_export(&late, &s.anchors()),
        Reason::AgentNotCertified,
    );
}

#[test]
fn a_dispute_release_is_bound_to_its_records_only_through_its_ticket() {
    // The master holds a genuine dispute release (real trustees, two real arbiter approvals)
    // and writes everything else itself: the epoch record with a customer key of its own
    // making, K, the messages, the end marker. Every other check passes.
    let mut s = Synthetic::new();
    s.customer = IdentityKeys::generate(&mut sealdesk_client::rng().unwrap());
    let v = verify_export(&s.export(&[&[1, 2]], Some(2)), &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::DisputeNotBoundToRecords],
        "{:#?}",
        v.failures
    );
    // A ticket that names the file's records binds them: the same dispute release verifies.
    s.bind = Bind::Genuine;
    let v = verify_export(&s.export(&[&[1, 2]], Some(2)), &s.anchors());
    assert!(v.ok, "{:#?}", v.failures);
    // A ticket that names other records than the file shows (the records the trustees
    // released from and the arbiters approved are not these): refused by name.
    // Its releases do not count, so the epoch is not released either.
    s.bind = Bind::Other;
    let v = verify_export(&s.export(&[&[1, 2]], Some(2)), &s.anchors());
    refused(&v, Reason::DisputeRecordsMismatch);
    assert!(!v.failed(Reason::DisputeNotBoundToRecords), "{v:#?}");
    s.bind = Bind::None;
    // The same file released under the customer's consent binds the customer, and verifies,
    // with no weaker line about later epochs (it has epoch 0 only).
    let v = verify_export(&s.export(&[&[1, 2]], None), &s.anchors());
    assert!(v.ok, "{:#?}", v.failures);
    assert!(!v.weaker.contains(&CONSENT_LATER_EPOCHS_WEAKER.to_owned()));
    assert!(v.weaker.contains(&NO_COSIGNATURES_WEAKER.to_owned()));
}

#[test]
fn a_file_whose_policies_do_not_verify_is_not_checked_even_without_anchors() {
    let s = Synthetic::new();
    let mut empty = s.export(&[&[0, 1]], None);
    empty.policies.clear();
    sign_export(&mut empty, &s.master).unwrap();
    let v = verify_export(&empty, &Anchors::default());
    assert!(!v.checked);
    assert!(!v.ok);
    assert_eq!(
        v.reasons(),
        vec![Reason::NoOrgAnchor, Reason::NoLogAnchor, Reason::NoPolicy],
        "{:#?}",
        v.failures
    );
    // With anchors too.
    refused(&verify_export(&empty, &s.anchors()), Reason::NoPolicy);
    // A genuine file is checked without anchors, and fails only for them.
    let v = verify_export(&s.export(&[&[0, 1]], None), &Anchors::default());
    assert!(v.checked);
    assert_eq!(v.reasons(), vec![Reason::NoOrgAnchor, Reason::NoLogAnchor]);
}

#[test]
fn messages_cannot_be_hidden_by_an_omitted_item_without_epoch_or_a_missing_key() {
    let s = Synthetic::new();
    // alice's message (#3, her only one: no counter gap) listed as a message left out with no
    // epoch, re-signed by the master.
    let mut hidden = s.export(&[&[0, 1]], None);
    let m = hidden.messages.pop().unwrap();
    hidden
        .omitted
        .push(sealdesk_client::transcript::ExportOmitted {
            seq: m.seq,
            kind: "message".into(),
            epoch: None,
            record: None,
        });
    sign_export(&mut hidden, &s.master).unwrap();
    let v = verify_export(&hidden, &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::WithheldMessage],
        "{:#?}",
        v.failures
    );
    // A released epoch without its key in a non-redacted export (its messages cut off the end).
    let mut keyless = s.export(&[&[0, 1]], None);
    keyless.epochs[0].key = None;
    keyless.messages.clear();
    keyless.last_seq = 1;
    sign_export(&mut keyless, &s.master).unwrap();
    let v = verify_export(&keyless, &s.anchors());
    assert_eq!(v.reasons(), vec![Reason::BadKey], "{:#?}", v.failures);
}

#[test]
fn fields_shown_beside_signed_objects_must_match_them() {
    let s = Synthetic::new();
    let mut late = s.export(&[&[0, 1]], None);
    late.messages[0].sent_at += 86_400;
    sign_export(&mut late, &s.master).unwrap();
    let v = verify_export(&late, &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::ShownFieldMismatch],
        "{:#?}",
        v.failures
    );
    let mut renumbered = s.export(&[&[0, 1]], None);
    renumbered.epochs[0].epoch = 7;
    sign_export(&mut renumbered, &s.master).unwrap();
    let v = verify_export(&renumbered, &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::ShownFieldMismatch],
        "{:#?}",
        v.failures
    );
}

#[test]
fn a_release_signed_outside_its_consent_window_is_refused() {
    let mut s = Synthetic::new();
    // The consent is valid from NOW + 3 for an hour.
    s.release_at = NOW + 3 + 3600;
    let v = verify_export(&s.export(&[&[0, 1]], None), &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::ReleaseOutsideWindow],
        "{:#?}",
        v.failures
    );
    s.release_at = NOW + 2;
    refused(
        &verify_export(&s.export(&[&[0, 1]], None), &s.anchors()),
        Reason::ReleaseOutsideWindow,
    );
    // A dispute ticket's window likewise (the ticket is open from NOW + 3 for an hour).
    s.release_at = NOW + 3 + 3600;
    let v = verify_export(&s.export(&[&[0, 1]], Some(2)), &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![
            Reason::DisputeNotBoundToRecords,
            Reason::ReleaseOutsideWindow
        ],
        "{:#?}",
        v.failures
    );
    // A consent stretched past the policy's longest validity (the customer's key re-signs it:
    // the check is on the terms, not the signature), released inside its window.
    s.release_at = NOW + 6;
    s.stretch = s.policy.max_release_validity_secs;
    let v = verify_export(&s.export(&[&[0, 1]], None), &s.anchors());
    assert_eq!(
        v.reasons(),
        vec![Reason::ReleaseOutsideWindow],
        "{:#?}",
        v.failures
    );
}

#[test]
fn a_file_that_is_not_a_v2_export_gives_a_named_reason() {
    let s = Synthetic::new();
    let good = serde_json::to_value(s.export(&[&[0, 1]], None)).unwrap();
    assert!(parse_export(&good.to_string()).is_ok());
    let mut v1 = good.clone();
    v1["format"] = FORMAT_V1.into();
    v1.as_object_mut().unwrap().remove("end");
    let v = parse_export(&v1.to_string()).unwrap_err();
    assert_eq!(v.reasons(), vec![Reason::UnsupportedFormat]);
    assert!(!v.ok && !v.checked);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("last_seq");
    let v = parse_export(&missing.to_string()).unwrap_err();
    assert_eq!(v.reasons(), vec![Reason::Undecodable]);
    let v = parse_export("not json").unwrap_err();
    assert_eq!(v.reasons(), vec![Reason::Undecodable]);
}

#[test]
fn a_hand_off_must_be_to_a_member_of_a_later_epoch_whose_policy_allows_it() {
    let mut s = Synthetic::new();
    s.handoff = true;
    let v = verify_export(&s.export(&[&[0, 1]], None), &s.anchors());
    assert!(v.ok, "{:#?}", v.failures);
    assert_eq!(v.released_epochs, vec![0, 1]);
    assert!(v.weaker.contains(&CONSENT_LATER_EPOCHS_WEAKER.to_owned()));
    // The same conversation under a policy that does not allow history hand-off.
    let mut s = Synthetic::with_history_handoff(false);
    s.handoff = true;
    let v = verify_export(&s.export(&[&[0, 1]], None), &s.anchors());
    assert_eq!(v.reasons(), vec![Reason::BadHandOff], "{:#?}", v.failures);
    assert!(
        v.failures[0].detail.contains("does not allow hand-off"),
        "{:#?}",
        v.failures
    );
}

/// A conversation transferred more than once: a hand-off of an epoch its signer holds by an
/// earlier hand-off (dave, handed epoch 0 by alice, hands it on; here to himself, the one member
/// of a later epoch the file has) passes through the chain (PROTOCOL.md §7.6). The same
/// hand-off before alice's, or signed by a key that never held epoch 0, is `bad_hand_off`.
#[test]
fn a_hand_off_of_an_epoch_held_by_an_earlier_hand_off_passes_only_through_the_chain() {
    let mut s = Synthetic::new();
    s.handoff = true;
    let file = s.export(&[&[0, 1]], None);
    let alices: sealdesk_protocol::epoch::HandOff = dec(file.omitted[0].record.as_ref().unwrap());
    let by = |keys: &IdentityKeys| {
        let mut h = alices.clone();
        h.from = keys.signing_public();
        h.signature = keys.sign(&h.signed_bytes());
        h
    };
    // `first` at seq 5 and `second` at seq 6, as the only hand-offs of the file.
    let with = |first: &sealdesk_protocol::epoch::HandOff,
                second: &sealdesk_protocol::epoch::HandOff| {
        let mut f = file.clone();
        f.omitted.clear();
        for (seq, h) in [(5, first), (6, second)] {
            f.omitted.push(sealdesk_client::transcript::ExportOmitted {
                seq,
                kind: "handoff".into(),
                epoch: None,
                record: Some(enc(h)),
            });
        }
        f.last_seq = 6;
        sign_export(&mut f, &s.master).unwrap();
        verify_export(&f, &s.anchors())
    };
    let daves = by(&s.dave);
    let v = with(&alices, &daves);
    assert!(v.ok, "{:#?}", v.failures);
    let v = with(&daves, &alices);
    assert_eq!(v.reasons(), vec![Reason::BadHandOff], "{:#?}", v.failures);
    assert!(
        v.failures[0].detail.contains("nor held them"),
        "{:#?}",
        v.failures
    );
    let stranger = IdentityKeys::generate(&mut sealdesk_client::rng().unwrap());
    let v = with(&alices, &by(&stranger));
    assert_eq!(v.reasons(), vec![Reason::BadHandOff], "{:#?}", v.failures);
}

/// The verifier judges each release under the policy in force for it — the one its request
/// names, which must be its epochs' — never a later one. Policy v2 removes trustee-2 (who
/// released under v1) and adds trustee-4: the export made after v2 still verifies, and a
/// release entry re-signed by trustee-4, a trustee of v2 only (the end marker re-signed by
/// the master), is refused as `signer_not_trustee`.
#[tokio::test]
async fn a_release_is_verified_under_its_own_policy_not_a_later_one() {
    let mut g = genuine(Scope::Full).await;
    g.w.user("trustee-4", Role::Trustee).await.close().await;
    let mut v2 = sealdesk_tests::world::spec(None, None);
    v2.trustees = ["trustee-1", "trustee-3", "trustee-4"]
        .map(String::from)
        .to_vec();
    assert_eq!(g.master.create_org(&v2).await.unwrap().version, 2);
    let file = g.master.export_transcript(&g.conv, false).await.unwrap();
    let v = verify_export(&file, &g.anchors);
    assert!(v.ok, "{:#?}", v.failures);

    let t4 = sealdesk_client::Account::open(&g.w.home("trustee-4"), sealdesk_tests::world::PASS)
        .unwrap();
    let mut by_t4 = file.clone();
    let e: AuditEntry = dec(&by_t4.releases[1].entry);
    by_t4.releases[1].entry = enc(&AuditEntry::sign(t4.keys(), e.event, e.at));
    sign_export(&mut by_t4, master_keys(&g)).unwrap();
    let v = verify_export(&by_t4, &g.anchors);
    refused(&v, Reason::SignerNotTrustee);
    refused(&v, Reason::ThresholdNotMet);
}
