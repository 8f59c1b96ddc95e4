//! Redacted exports that prove their redaction: each message is shown in clear with its own
//! message key (commitment, AEAD and signature checked offline) or withheld whole (its signed
//! envelope still proves who, when and where in the counters and sequence). The genuine
//! redacted export of a real release verifies with its withheld messages named; each way of
//! lying about a redacted export is refused with its named reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::transcript::{
    ExportFile, ExportMessage, ExportOmitted, REDACTED_WEAKER, Reason, Verification, sign_export,
    verify_export,
};
use sealdesk_protocol::{
    message::Envelope,
    release::Scope,
    wire::{from_cbor, to_cbor},
};
use sealdesk_tests::transcript::{Genuine, genuine};

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

/// `file` re-signed by the master (the forger is the master itself, the strongest case).
fn resigned(g: &Genuine, mut file: ExportFile) -> ExportFile {
    sign_export(&mut file, g.master.account().keys()).unwrap();
    file
}

fn index_of(file: &ExportFile, text: &str) -> usize {
    file.messages.iter().position(|m| m.text == text).unwrap()
}

fn envelope(m: &ExportMessage) -> Envelope {
    from_cbor(&hex::decode(&m.envelope).unwrap(), "test").unwrap()
}

fn set_envelope(m: &mut ExportMessage, env: &Envelope) {
    m.envelope = hex::encode(to_cbor(env).unwrap());
}

#[tokio::test]
async fn redacted_export_proves_its_clear_texts_and_names_its_withheld_messages() {
    let mut g = genuine(Scope::Redacted).await;
    // Under a redacted consent the master's export is redacted even when not asked to be.
    assert!(g.full.redacted);
    let file = g.master.export_transcript(&g.conv, true).await.unwrap();
    assert!(!file.epochs.is_empty());
    assert!(file.epochs.iter().all(|e| e.key.is_none()), "no epoch key");
    // The card number's message is withheld whole; every other one is shown with its own key.
    let card = file.messages.iter().find(|m| m.withheld).unwrap();
    assert!(card.text.is_empty() && card.key.is_none());
    assert_eq!(file.messages.iter().filter(|m| m.withheld).count(), 1);
    assert!(
        file.messages
            .iter()
            .filter(|m| !m.withheld)
            .all(|m| m.key.as_deref().is_some_and(|k| k.len() == 88))
    );
    let hello = index_of(&file, "hello");
    let billing = index_of(&file, "let me pass you to billing");
    let withheld = file.messages.iter().position(|m| m.withheld).unwrap();

    let v = verify_export(&file, &g.anchors);
    assert!(v.ok, "{:#?}", v.failures);
    assert_eq!(v.withheld, vec![card.seq]);
    assert!(v.weaker.contains(&REDACTED_WEAKER.to_owned()));
    assert!(
        v.passed
            .iter()
            .any(|p| p.contains("1 withheld") && p.contains(&format!("seq {}", card.seq))),
        "{:#?}",
        v.passed
    );
    // The verdict as `--json` shows it.
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["withheld"], serde_json::json!([card.seq]));

    // A file that claims not to be redacted, even signed by the master, is refused.
    let mut unredacted = file.clone();
    unredacted.redacted = false;
    refused(
        &verify_export(&resigned(&g, unredacted), &g.anchors),
        Reason::RedactionRequired,
    );

    // --- a clear text altered, even re-signed by the master ----------------------------------
    let mut altered = file.clone();
    altered.messages[hello].text = "I never said hello".into();
    let v = verify_export(&altered, &g.anchors);
    refused(&v, Reason::TextMismatch);
    refused(&v, Reason::BadEndMarker);
    let v = verify_export(&resigned(&g, altered), &g.anchors);
    assert_eq!(v.reasons(), vec![Reason::TextMismatch], "{:#?}", v.failures);

    // --- a message key swapped with another message's -----------------------------------------
    let mut swapped = file.clone();
    swapped.messages[hello].key = file.messages[billing].key.clone();
    let v = verify_export(&resigned(&g, swapped), &g.anchors);
    assert_eq!(
        v.reasons(),
        vec![Reason::BadMessageKey],
        "{:#?}",
        v.failures
    );
    // A key of the right length that is no message's.
    let mut made_up = file.clone();
    made_up.messages[hello].key = Some("00".repeat(44));
    refused(&verify_export(&made_up, &g.anchors), Reason::BadMessageKey);

    // --- a clear text without its key (as redacted exports were before) -----------------------
    let mut keyless = file.clone();
    keyless.messages[hello].key = None;
    let v = verify_export(&resigned(&g, keyless), &g.anchors);
    assert_eq!(
        v.reasons(),
        vec![Reason::MessageKeyMissing],
        "{:#?}",
        v.failures
    );
    let mut masked = file.clone();
    masked.messages[withheld].withheld = false;
    masked.messages[withheld].text = "my card is [card number redacted]".into();
    refused(
        &verify_export(&resigned(&g, masked), &g.anchors),
        Reason::MessageKeyMissing,
    );

    // --- a withheld message dropped: the sequence has a hole ----------------------------------
    // (It is carol's last message of epoch 0, so her counters alone could not show it.)
    let mut dropped = file.clone();
    dropped.messages.remove(withheld);
    let v = verify_export(&resigned(&g, dropped), &g.anchors);
    assert_eq!(v.reasons(), vec![Reason::SequenceGap], "{:#?}", v.failures);
    // Dropping the clear message before it (her counter 0) leaves a hole in her counters too.
    let mut first = file.clone();
    first.messages.remove(hello);
    let v = verify_export(&resigned(&g, first), &g.anchors);
    refused(&v, Reason::CounterGap);
    refused(&v, Reason::SequenceGap);

    // --- a withheld message's ciphertext or signature altered ---------------------------------
    let mut ct = file.clone();
    let mut env = envelope(&ct.messages[withheld]);
    env.ciphertext[0] ^= 1;
    set_envelope(&mut ct.messages[withheld], &env);
    let v = verify_export(&resigned(&g, ct), &g.anchors);
    assert_eq!(
        v.reasons(),
        vec![Reason::BadMessageSignature],
        "{:#?}",
        v.failures
    );
    let mut sig = file.clone();
    let mut env = envelope(&sig.messages[withheld]);
    env.signature = envelope(&file.messages[hello]).signature;
    set_envelope(&mut sig.messages[withheld], &env);
    refused(
        &verify_export(&resigned(&g, sig), &g.anchors),
        Reason::BadMessageSignature,
    );

    // --- a message claimed withheld without its signed envelope --------------------------------
    // Listed as an item left out instead: a message of a released epoch, refused.
    let mut unsigned = file.clone();
    let m = unsigned.messages.remove(withheld);
    unsigned.omitted.push(ExportOmitted {
        seq: m.seq,
        kind: "message".into(),
        epoch: Some(m.epoch),
        record: None,
    });
    let v = verify_export(&resigned(&g, unsigned), &g.anchors);
    assert_eq!(
        v.reasons(),
        vec![Reason::WithheldMessage],
        "{:#?}",
        v.failures
    );
    // An envelope cut down to nothing does not decode.
    let mut empty = file.clone();
    empty.messages[withheld].envelope = String::new();
    refused(&verify_export(&empty, &g.anchors), Reason::Undecodable);

    // --- an epoch key slipped into a redacted export ------------------------------------------
    let mut keyed = file.clone();
    let k = g
        .master
        .account()
        .store()
        .master_key(&g.conv, keyed.epochs[0].epoch)
        .unwrap()
        .unwrap();
    keyed.epochs[0].key = Some(hex::encode(k.to_bytes().as_slice()));
    let v = verify_export(&resigned(&g, keyed), &g.anchors);
    assert_eq!(
        v.reasons(),
        vec![Reason::KeyInRedactedExport],
        "{:#?}",
        v.failures
    );

    // --- a withheld message that shows its text or key ----------------------------------------
    let mut shows = file.clone();
    shows.messages[withheld].text = "my card is 4111 1111 1111 1111".into();
    refused(
        &verify_export(&resigned(&g, shows), &g.anchors),
        Reason::BadWithheld,
    );
    let mut non_redacted = g.full.clone();
    non_redacted.messages[0].withheld = true;
    refused(
        &verify_export(&resigned(&g, non_redacted), &g.anchors),
        Reason::BadWithheld,
    );

    // --- a clear message turned withheld after the master signed -------------------------------
    // The end marker states the empty text of a withheld message, so hiding one is seen.
    let mut hidden = file.clone();
    hidden.messages[hello].withheld = true;
    hidden.messages[hello].key = None;
    hidden.messages[hello].text = String::new();
    assert_eq!(
        verify_export(&hidden, &g.anchors).reasons(),
        vec![Reason::BadEndMarker]
    );
    // The master itself may withhold it: then it is named as withheld.
    let v = verify_export(&resigned(&g, hidden), &g.anchors);
    assert!(v.ok, "{:#?}", v.failures);
    assert_eq!(v.withheld.len(), 2);
    drop(g.w);
}
