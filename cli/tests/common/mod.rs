//! What the CLI-driven tests share: the `sealdesk` runner (`--home` and `--relay` of a
//! [`World`], the test passphrase, the fast KDF, no terminal), and the escrow fixtures the
//! flow tests start from.

#![allow(dead_code)]

pub mod json_chat;

use std::path::Path;

use sealdesk_client::{Account, Client};
use sealdesk_tests::world::{PASS, World};
use serde_json::Value;

/// One run of the binary.
pub struct Run {
    /// Exit status 0.
    pub ok: bool,
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `sealdesk` with `args` as account `name` of `w` (its home, the test passphrase).
pub async fn sealdesk(w: &World, name: &str, args: &[&str]) -> Run {
    sealdesk_env(w, name, args, &[]).await
}

/// [`sealdesk`] with more environment variables.
pub async fn sealdesk_env(w: &World, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    sealdesk_at_env(w, &w.home(name), PASS, args, env).await
}

/// [`sealdesk`] through the relay at `relay` (a proxy in front of `w`'s, say).
pub async fn sealdesk_via(w: &World, name: &str, relay: &str, args: &[&str]) -> Run {
    sealdesk_run(&w.home(name), relay, PASS, args, &[]).await
}

/// Runs `sealdesk` with `args` on the home `home` (which may not exist) and passphrase `pass`,
/// against `w`'s relay.
pub async fn sealdesk_at(w: &World, home: &Path, pass: &str, args: &[&str]) -> Run {
    sealdesk_at_env(w, home, pass, args, &[]).await
}

/// [`sealdesk_at`] with more environment variables.
async fn sealdesk_at_env(
    w: &World,
    home: &Path,
    pass: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    sealdesk_run(home, &w.url, pass, args, env).await
}

/// Runs `sealdesk` with `args` on the home `home` against the relay at `relay`.
async fn sealdesk_run(
    home: &Path,
    relay: &str,
    pass: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .envs(env.iter().copied())
        .arg("--home")
        .arg(home)
        .arg("--relay")
        .arg(relay)
        .args(args)
        .env("SEALDESK_PASSPHRASE", pass)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`sealdesk`], which must succeed; its stdout.
pub async fn ok(w: &World, name: &str, args: &[&str]) -> String {
    let r = sealdesk(w, name, args).await;
    assert!(
        r.ok,
        "sealdesk {args:?} as {name} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// [`ok`] with `--json`; its stdout parsed.
pub async fn json(w: &World, name: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(w, name, &all).await).unwrap()
}

/// An org `acme` (three trustees, two needed), its agent alice, and a conversation of carol's
/// with one message in it. Returns the conversation id.
pub async fn org_and_conversation(w: &World) -> String {
    org_and_conversation_with(w, &[]).await
}

/// [`org_and_conversation`] with `more` arguments to `org create` (say
/// `--no-history-handoff`).
pub async fn org_and_conversation_with(w: &World, more: &[&str]) -> String {
    for (name, role) in [
        ("acme-owner", "master"),
        ("trustee-1", "trustee"),
        ("trustee-2", "trustee"),
        ("trustee-3", "trustee"),
        ("arbiter-1", "arbiter"),
        ("alice", "agent"),
        ("carol", "customer"),
    ] {
        ok(w, name, &["init", "--name", name, "--role", role]).await;
        ok(w, name, &["register"]).await;
    }
    ok(
        w,
        "acme-owner",
        &[
            "org",
            "create",
            "--name",
            "acme",
            "--trustee",
            "trustee-1",
            "--trustee",
            "trustee-2",
            "--trustee",
            "trustee-3",
            "--trustee-threshold",
            "2",
            "--arbiter",
            "arbiter-1",
            "--arbiter-threshold",
            "1",
        ]
        .into_iter()
        .chain(more.iter().copied())
        .collect::<Vec<_>>(),
    )
    .await;
    ok(w, "acme-owner", &["org", "add-agent", "alice"]).await;
    // alice is online (in this process) so the relay can assign her.
    let mut alice = Client::connect(Account::open(&w.home("alice"), PASS).unwrap(), &w.url)
        .await
        .unwrap();
    let opened = json(w, "carol", &["open", "--org", "acme"]).await;
    let conv = opened["conversation"].as_str().unwrap().to_owned();
    ok(
        w,
        "carol",
        &["send", "--conversation", &conv, "my order 1234 never came"],
    )
    .await;
    alice.sync_all().await.unwrap();
    drop(alice.close().await);
    conv
}

/// Registers agent `name` and adds it to acme.
pub async fn add_agent(w: &World, name: &str) {
    ok(w, name, &["init", "--name", name, "--role", "agent"]).await;
    ok(w, name, &["register"]).await;
    ok(w, "acme-owner", &["org", "add-agent", name]).await;
}

/// `consent grant` as carol; the consent's id.
pub async fn grant(w: &World, conv: &str, expires: &str) -> String {
    grant_with(w, conv, expires, &[]).await
}

/// [`grant`] with `more` arguments (`--epochs A-B`).
pub async fn grant_with(w: &World, conv: &str, expires: &str, more: &[&str]) -> String {
    let mut args = vec![
        "consent",
        "grant",
        "--conversation",
        conv,
        "--expires",
        expires,
    ];
    args.extend_from_slice(more);
    let granted = json(w, "carol", &args).await;
    granted["consent"].as_str().unwrap().to_owned()
}

/// `transcript unlock` as the master, waiting `wait` seconds.
pub async fn unlock(w: &World, conv: &str, consent: &str, wait: &str) -> Run {
    sealdesk(
        w,
        "acme-owner",
        &[
            "transcript",
            "unlock",
            "--conversation",
            conv,
            "--consent",
            consent,
            "--wait",
            wait,
        ],
    )
    .await
}

/// `trustee serve --once` as `trustee`: the requests it handled, one line each.
pub async fn serve_once(w: &World, trustee: &str) -> Vec<String> {
    ok(w, trustee, &["trustee", "serve", "--once"])
        .await
        .lines()
        .filter(|l| l.starts_with("request "))
        .map(str::to_owned)
        .collect()
}

/// The number of entries in the audit log, as carol reads it.
pub async fn log_size(w: &World) -> u64 {
    json(w, "carol", &["audit"]).await["size"].as_u64().unwrap()
}

/// `send --attach FILE [TEXT]` as `name`: its `--json` answer.
pub async fn send_file(
    w: &World,
    name: &str,
    conv: &str,
    file: &std::path::Path,
    text: &str,
) -> Value {
    let mut args = vec!["send", "--conversation", conv, "--attach"];
    let file = file.to_str().unwrap();
    args.push(file);
    if !text.is_empty() {
        args.push(text);
    }
    json(w, name, &args).await
}

/// Records in `name`'s vault a second conversation whose id starts as `conv`'s does (its last
/// byte differs), so that `conv`'s first digits are ambiguous.
pub fn twin_conversation(w: &World, name: &str, conv: &str) {
    let id = sealdesk_protocol::ids::ConversationId::parse(conv).unwrap();
    let mut twin = *id.as_bytes();
    twin[15] ^= 0xff;
    let account = Account::open(&w.home(name), PASS).unwrap();
    let mut meta = account.conversation(&id).unwrap().unwrap();
    meta.id = sealdesk_protocol::ids::ConversationId::from_bytes(&twin).unwrap();
    account.save_conversation(&meta).unwrap();
}
