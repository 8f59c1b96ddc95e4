//! One account, several processes (issue 22 §1 item 8): while `chat` or `trustee serve` runs,
//! the account's other commands work, and sending from two processes at once never reuses a
//! counter (the relay refuses a reused one, and the client would then open a new epoch: one
//! epoch and distinct counters show that none was reused). The relay also refuses a counter
//! below one it stored, which a process whose reserved counter was overtaken by the other's
//! meets under load: it then takes a fresh counter and stays in the epoch (made certain by
//! `tests/tests/counter_overtaken.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;

use common::{json, ok, org_and_conversation};
use sealdesk_tests::world::{PASS, World};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// `sealdesk ARGS` as `name`, left running with its stdin open; returns once it printed a
/// line starting with `ready` on stdout.
async fn running(w: &World, name: &str, args: &[&str], ready: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(w.home(name))
        .arg("--relay")
        .arg(&w.url)
        .args(args)
        .env("SEALDESK_PASSPHRASE", PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = tokio::time::timeout(sealdesk_tests::STEP, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.starts_with(ready) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "{args:?} never printed {ready:?}");
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// An agent's `whoami` and `trustee serve --once`-free commands work while `trustee serve`
/// runs for the same account.
#[tokio::test]
async fn whoami_and_other_commands_work_while_trustee_serve_runs() {
    let w = World::new().await;
    org_and_conversation(&w).await;
    let serve = running(
        &w,
        "trustee-1",
        &["trustee", "serve"],
        "serving release requests",
    )
    .await;
    let me = json(&w, "trustee-1", &["whoami"]).await;
    assert_eq!(me["name"], "trustee-1", "{me}");
    let audit = json(&w, "trustee-1", &["audit"]).await;
    assert!(audit["size"].as_u64().is_some(), "{audit}");
    drop(serve);
}

/// With carol's chat open, two scripts of hers send at once: every message is accepted, in one
/// epoch, each under its own counter, and her history shows them all.
#[tokio::test]
async fn two_processes_of_one_account_send_at_once_without_reusing_a_counter() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let chat = running(&w, "carol", &["chat", "--conversation", &conv], "").await;
    let script = |tag: &'static str| {
        let (w, conv) = (&w, conv.clone());
        async move {
            for i in 0..4 {
                ok(
                    w,
                    "carol",
                    &["send", "--conversation", &conv, &format!("{tag} {i}")],
                )
                .await;
            }
        }
    };
    tokio::join!(script("first"), script("second"));
    drop(chat);

    let history = json(&w, "carol", &["history", "--conversation", &conv]).await;
    let mine: Vec<_> = history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["entry"])
        .filter(|e| e["mine"] == true && e["kind"] == "text")
        .collect();
    assert_eq!(
        mine.len(),
        9,
        "the first message and eight sent at once: {history:#}"
    );
    let epochs: BTreeSet<_> = mine.iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(
        epochs.len(),
        1,
        "a reused counter would have opened a new epoch: {epochs:?}"
    );
    let counters: BTreeSet<_> = mine
        .iter()
        .map(|e| e["counter"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counters.len(),
        mine.len(),
        "a counter was used twice: {history:#}"
    );
    for tag in ["first", "second"] {
        for i in 0..4 {
            let text = format!("{tag} {i}");
            assert!(
                mine.iter().any(|e| e["text"] == text.as_str()),
                "{text} missing"
            );
        }
    }
}
