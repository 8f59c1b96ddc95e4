//! The new-user findings left in the terminal client (issue 22, "workflows"), each through the
//! `sealdesk` binary: a short id of a conversation not yet synced, an ambiguous one, an
//! attachment's read mark, an agent's own `history` wording, the bounded file cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    grant, json, ok, org_and_conversation, sealdesk, sealdesk_env, send_file, serve_once,
    twin_conversation, unlock,
};
use sealdesk_client::{Account, Client};
use sealdesk_tests::world::{PASS, World};

/// A short id of a conversation this account has not synced yet (assigned to the agent since
/// its last run) is found: the list is fetched from the relay before the prefix is refused.
#[tokio::test]
async fn a_short_id_finds_a_conversation_not_synced_yet() {
    let w = World::new().await;
    org_and_conversation(&w).await;
    // alice is online (so the relay can assign her) but her client never looks at its pushes.
    let alice = Client::connect(Account::open(&w.home("alice"), PASS).unwrap(), &w.url)
        .await
        .unwrap();
    let opened = json(&w, "carol", &["open", "--org", "acme"]).await;
    let conv = opened["conversation"].as_str().unwrap().to_owned();
    drop(alice.close().await);

    let sent = ok(
        &w,
        "alice",
        &[
            "send",
            "--conversation",
            &conv[..8],
            "found by its short id",
        ],
    )
    .await;
    assert!(sent.starts_with("sent"), "{sent}");
    let h = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    assert!(h.contains("alice: found by its short id"), "{h}");
}

/// A prefix two conversations of this account share is refused, saying how many, whatever
/// the command; nothing is sent.
#[tokio::test]
async fn an_ambiguous_short_id_is_refused_by_the_binary() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    twin_conversation(&w, "carol", &conv);
    let short = &conv[..8];
    let upper = short.to_ascii_uppercase();
    for args in [
        &["send", "--conversation", short, "hello"][..],
        &["history", "--conversation", &upper][..],
    ] {
        let r = sealdesk(&w, "carol", args).await;
        assert!(!r.ok, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains(&format!(
                "{short} is the start of 2 of your conversations; give more digits"
            )),
            "{args:?}: {}",
            r.stderr
        );
    }
    let h = ok(&w, "alice", &["history", "--conversation", &conv]).await;
    assert!(!h.contains("hello"), "nothing was sent: {h}");
}

/// A file the agent saved shows as read to its sender, as a message the agent read does: the
/// read receipt covers files too, and `attachment save` sends one.
#[tokio::test]
async fn a_saved_attachment_shows_as_read_to_its_sender() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.png");
    std::fs::write(&shot, vec![7u8; 40_000]).unwrap();
    let sent = send_file(&w, "carol", &conv, &shot, "").await;
    let number = sent["number"].as_u64().unwrap().to_string();
    let out = dir.path().join("saved.png");
    ok(
        &w,
        "alice",
        &[
            "attachment",
            "save",
            "--conversation",
            &conv,
            "--message",
            &number,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    let h = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    let line = h
        .lines()
        .find(|l| l.contains("[attachment: shot.png"))
        .unwrap_or_else(|| panic!("no attachment in {h}"));
    assert!(line.ends_with("✓✓ read"), "{h}");
}

/// An agent's `history` opens with what the agent needs to know (what the customer was told),
/// not with the customer's own wording ("Your chat with acme …"); the customer's is unchanged.
#[tokio::test]
async fn an_agents_history_has_the_agents_own_wording() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let h = ok(&w, "alice", &["history", "--conversation", &conv]).await;
    let first = h.lines().next().unwrap();
    assert!(
        first.contains("This conversation is end-to-end encrypted")
            && first.contains("carol was told when acme's owner may open it"),
        "{h}"
    );
    assert!(!h.contains("Your chat with"), "{h}");
    let j = json(&w, "alice", &["history", "--conversation", &conv]).await;
    assert!(
        j["summary"].as_str().unwrap().contains("carol was told"),
        "{j:#}"
    );
    let h = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    assert!(
        h.lines().next().unwrap().contains("Your chat with acme"),
        "{h}"
    );
}

/// The owner's cache of checked files stays within `SEALDESK_FILE_CACHE_MB`: with room for
/// one of two files, one is kept; with the default bound, both.
#[tokio::test]
async fn the_file_cache_stays_within_its_bound() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let dir = tempfile::tempdir().unwrap();
    for (name, byte) in [("a.bin", 1u8), ("b.bin", 2u8)] {
        let path = dir.path().join(name);
        std::fs::write(&path, vec![byte; 700_000]).unwrap();
        send_file(&w, "carol", &conv, &path, "").await;
    }
    let consent = grant(&w, &conv, "1d").await;
    assert!(!unlock(&w, &conv, &consent, "0").await.ok);
    for t in ["trustee-1", "trustee-2"] {
        serve_once(&w, t).await;
    }
    assert!(unlock(&w, &conv, &consent, "10").await.ok);
    let cached = || {
        std::fs::read_dir(w.home("acme-owner").join("records/files"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let show = ["transcript", "show", "--conversation", conv.as_str()];
    let r = sealdesk_env(&w, "acme-owner", &show, &[("SEALDESK_FILE_CACHE_MB", "1")]).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout.matches("— file checked:").count(),
        2,
        "{}",
        r.stdout
    );
    assert_eq!(cached(), 1);
    ok(&w, "acme-owner", &show).await;
    assert_eq!(cached(), 2);
    let r = sealdesk_env(&w, "acme-owner", &show, &[("SEALDESK_FILE_CACHE_MB", "1")]).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(cached(), 1);
}
