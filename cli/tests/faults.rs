//! Trustee faults: the `sealdesk trustee` daemon killed at each fail point of its release path
//! (`SEALDESK_FAILPOINT`, see `sealdesk_client::escrow::FAILPOINT_ENV`), restarted with the
//! request still pending, and fed duplicated and replayed release requests.
//!
//! Every test checks the two escrow safety properties against the relay's audit log and the
//! shares the master received:
//!
//! - never a release without its log entry: every trustee with a share for a request has a
//!   release entry for that request in the log;
//! - never two releases: at most one release entry and one share per (trustee, epoch) for a
//!   request, and at most one released request per justification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_client::{
    Account, Client, ClientError,
    escrow::{FAILPOINT_ENV, FAILPOINT_EXIT_CODE, FAILPOINTS, TrusteeRecord, TrusteeStage},
};
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    card::Role,
    escrow,
    ids::{ConversationId, EpochRange},
    keys::SigningPublicKey,
    policy::VerifiedPolicy,
    release::{Justification, ReleaseRequest, Scope},
    wire::{self, ErrorCode, Frame, Item, PendingRelease, Push, Request, Response},
};
use sealdesk_tests::{
    eventually, within_step,
    world::{PASS, World, open_chat},
};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// Bound on one CLI run or one awaited line (never a timing assertion).
const STEP: Duration = Duration::from_secs(60);

struct Setup {
    w: World,
    master: Client,
    carol: Client,
    conv: ConversationId,
    policy: VerifiedPolicy,
}

async fn setup() -> Setup {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol
        .send_text(&conv, "order 1234, card 4111")
        .await
        .unwrap();
    let mut alice = org.agents.remove(0);
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "refund issued").await.unwrap();
    alice.close().await;
    let policy = org.master.latest_policy("acme").await.unwrap();
    Setup {
        w,
        master: org.master,
        carol,
        conv,
        policy,
    }
}

impl Setup {
    /// A fresh consent from carol and a release request for it, submitted by the master.
    async fn new_request(&mut self, purpose: &str) -> ReleaseRequest {
        let token = self
            .carol
            .grant_consent(&self.conv, None, Scope::Full, 3600, purpose)
            .await
            .unwrap();
        let request = self.request_for(Justification::Consent(token));
        self.submit(&request).await.unwrap();
        request
    }

    fn request_for(&self, justification: Justification) -> ReleaseRequest {
        ReleaseRequest::sign(
            &mut sealdesk_client::rng().unwrap(),
            self.master.account().keys(),
            &self.policy,
            EpochRange::single(0),
            justification,
            sealdesk_client::now(),
        )
        .unwrap()
    }

    async fn submit(&self, request: &ReleaseRequest) -> sealdesk_client::Result<Response> {
        self.master
            .session()
            .request(Request::SubmitRelease(request.clone()))
            .await
    }

    /// Trustee name → number of release entries it logged for `request`.
    async fn log_entries(&self, request: &ReleaseRequest) -> BTreeMap<String, usize> {
        let names = self.trustee_names();
        let hash = request.hash();
        let mut out = BTreeMap::new();
        for e in all_entries(&self.master).await {
            if let AuditEvent::Release { request_hash, .. } = &e.event
                && *request_hash == hash
            {
                e.verify().unwrap();
                let who = names.get(&e.signer).cloned().unwrap_or_else(|| "?".into());
                *out.entry(who).or_default() += 1;
            }
        }
        out
    }

    /// Trustee name → number of shares the master received for `request`.
    async fn shares(&self, request: &ReleaseRequest) -> BTreeMap<String, usize> {
        let names = self.trustee_names();
        let mut out = BTreeMap::new();
        for s in progress(&self.master, request).await.shares {
            let who = names.get(&s.trustee).cloned().unwrap_or_else(|| "?".into());
            *out.entry(who).or_default() += 1;
        }
        out
    }

    fn trustee_names(&self) -> BTreeMap<SigningPublicKey, String> {
        self.policy
            .trustees
            .iter()
            .map(|c| (c.signing_key, c.name.clone()))
            .collect()
    }

    /// Checks both safety properties for `request` and returns (entries, shares) per trustee.
    async fn check_safety(
        &self,
        request: &ReleaseRequest,
    ) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let entries = self.log_entries(request).await;
        let shares = self.shares(request).await;
        for (who, n) in &entries {
            assert_eq!(*n, 1, "{who} logged {n} release entries for one request");
        }
        for (who, n) in &shares {
            assert_eq!(*n, 1, "{who} released {n} shares for one epoch");
            assert!(
                entries.contains_key(who),
                "{who} released a share without a release entry in the log"
            );
        }
        (entries, shares)
    }

    /// Whether the master can rebuild epoch 0's key from the shares it received (the
    /// commitment check inside `reconstruct` proves it is the right key).
    async fn master_reconstructs(&self, request: &ReleaseRequest) -> bool {
        let keys = self.master.account().keys();
        let p = progress(&self.master, request).await;
        let shares: Vec<_> = p
            .shares
            .iter()
            .map(|s| s.open(keys, &self.policy, request).unwrap())
            .collect();
        let record = match self
            .master
            .session()
            .request(Request::History {
                conversation: self.conv,
                after: 0,
                limit: 50,
            })
            .await
            .unwrap()
        {
            Response::Items { items, .. } => items
                .into_iter()
                .find_map(|s| match s.item {
                    Item::Epoch(r) if r.epoch == 0 => Some(r),
                    _ => None,
                })
                .unwrap(),
            other => panic!("{other:?}"),
        };
        let s_m = record.open_master_share(keys).unwrap();
        escrow::reconstruct(
            &s_m,
            &shares,
            self.policy.trustee_threshold,
            &self.conv,
            0,
            &record.commitment,
        )
        .is_ok()
    }

    /// A trustee's persisted record of `request`.
    async fn stage(&self, trustee: &str, request: &ReleaseRequest) -> Option<TrusteeStage> {
        let account = Account::open(&self.w.home(trustee), PASS).unwrap();
        let rec: Option<TrusteeRecord> = account
            .get_cbor(&format!("trustee/req/{}", request.id))
            .unwrap();
        rec.map(|r| r.stage)
    }
}

async fn progress(master: &Client, request: &ReleaseRequest) -> wire::ReleaseProgress {
    match master
        .session()
        .request(Request::ReleaseStatus {
            request: request.id,
        })
        .await
        .unwrap()
    {
        Response::Progress(p) => p,
        other => panic!("{other:?}"),
    }
}

async fn all_entries(c: &Client) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    loop {
        match c
            .session()
            .request(Request::GetEntries {
                from: out.len() as u64,
                limit: 256,
            })
            .await
            .unwrap()
        {
            Response::Entries { entries, .. } if entries.is_empty() => return out,
            Response::Entries { entries, .. } => out.extend(entries),
            other => panic!("{other:?}"),
        }
    }
}

/// The result of one `sealdesk trustee serve --once` run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sealdesk trustee serve --once --json` as `trustee` against `url`, with `failpoint`
/// set if given.
async fn trustee_once(w: &World, url: &str, trustee: &str, failpoint: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"));
    cmd.arg("--home")
        .arg(w.home(trustee))
        .arg("--relay")
        .arg(url)
        .args(["trustee", "serve", "--once", "--json"])
        .env("SEALDESK_PASSPHRASE", PASS)
        .env_remove(FAILPOINT_ENV)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(point) = failpoint {
        cmd.env(FAILPOINT_ENV, point);
    }
    let out = tokio::time::timeout(STEP, cmd.output())
        .await
        .expect("the trustee run timed out")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn outcomes(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["outcome"].as_str().map(str::to_owned))
        .collect()
}

/// Answers what is pending as `trustee`, in process.
async fn answer(w: &World, url: &str, trustee: &str) -> Vec<String> {
    let account = Account::open(&w.home(trustee), PASS).unwrap();
    let mut t = Client::connect(account, url).await.unwrap();
    let out = t.trustee_pending().await.unwrap();
    t.close().await;
    out.into_iter().map(|o| o.outcome).collect()
}

#[tokio::test]
async fn a_trustee_killed_at_every_fail_point_releases_exactly_once_after_restart() {
    let mut s = setup().await;
    let url = s.w.url.clone();
    let mut summary = Vec::new();
    for point in FAILPOINTS {
        let request = s.new_request(point).await;

        // trustee-1 dies at the fail point.
        let run = trustee_once(&s.w, &url, "trustee-1", Some(point)).await;
        assert_eq!(
            run.code,
            Some(FAILPOINT_EXIT_CODE),
            "{point}: the trustee should stop at the fail point\n{}\n{}",
            run.stdout,
            run.stderr
        );
        let (entries, shares) = s.check_safety(&request).await;
        let logged = entries.get("trustee-1").copied().unwrap_or(0);
        let released = shares.get("trustee-1").copied().unwrap_or(0);
        let stage = s.stage("trustee-1", &request).await;
        // (release entries, shares) of trustee-1 at the moment it died.
        let expected = match point {
            "before-append" => (0, 0),
            "after-append" | "before-shares" => (1, 0),
            "after-shares" => (1, 1),
            other => panic!("unknown fail point {other}"),
        };
        assert_eq!((logged, released), expected, "{point}");
        match (&stage, point) {
            (Some(TrusteeStage::Logging { .. }), "before-append" | "after-append") => {}
            (Some(TrusteeStage::Logged { .. }), "before-shares" | "after-shares") => {}
            other => panic!("{point}: unexpected persisted stage {other:?}"),
        }

        // Restarted with the request still pending (unless its shares already went out).
        let run = trustee_once(&s.w, &url, "trustee-1", None).await;
        assert_eq!(run.code, Some(0), "{point}: {}\n{}", run.stdout, run.stderr);
        let restarted = outcomes(&run);
        if point == "after-shares" {
            assert!(
                restarted.is_empty(),
                "{point}: the relay no longer lists it: {restarted:?}"
            );
        } else {
            assert_eq!(restarted, vec!["released"], "{point}");
            assert_eq!(
                s.stage("trustee-1", &request).await,
                Some(TrusteeStage::Released)
            );
        }
        // A third run finds nothing to do.
        let run = trustee_once(&s.w, &url, "trustee-1", None).await;
        assert_eq!(run.code, Some(0));
        assert!(outcomes(&run).is_empty(), "{point}: {}", run.stdout);

        // A second trustee answers normally; the master gets exactly the threshold.
        assert_eq!(answer(&s.w, &url, "trustee-2").await, vec!["released"]);
        let (entries, shares) = s.check_safety(&request).await;
        assert_eq!(entries.get("trustee-1"), Some(&1), "{point}: {entries:?}");
        assert_eq!(shares.get("trustee-1"), Some(&1), "{point}: {shares:?}");
        assert_eq!(shares.len(), 2, "{point}: {shares:?}");
        assert!(s.master_reconstructs(&request).await, "{point}");
        summary.push(format!(
            "{point}: stage at crash {stage:?}, restart → {restarted:?}, entries {entries:?}, shares {shares:?}"
        ));
    }
    for line in summary {
        println!("{line}");
    }
}

#[tokio::test]
async fn a_daemon_started_after_the_request_releases_it_and_serves_new_ones() {
    let mut s = setup().await;
    let url = s.w.url.clone();
    // Submitted while no trustee runs.
    let first = s.new_request("while down").await;

    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(s.w.home("trustee-3"))
        .arg("--relay")
        .arg(&url)
        .args(["trustee", "serve", "--json"])
        .env("SEALDESK_PASSPHRASE", PASS)
        .env_remove(FAILPOINT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    assert_eq!(
        next_outcome(&mut lines).await,
        (first.id.to_string(), "released".to_owned()),
        "the pending request is handled at startup"
    );
    // A new request arrives as a push while it runs.
    let second = s.new_request("while up").await;
    assert_eq!(
        next_outcome(&mut lines).await,
        (second.id.to_string(), "released".to_owned())
    );
    // The same request submitted again is refused by the relay, and not pushed again.
    match s.submit(&second).await {
        Err(ClientError::Relay {
            code: ErrorCode::IdTaken,
            ..
        }) => {}
        other => panic!("a duplicate submission must be a conflict: {other:?}"),
    }
    daemon.kill().await.unwrap();

    for request in [&first, &second] {
        let (entries, shares) = s.check_safety(request).await;
        assert_eq!(entries.get("trustee-3"), Some(&1));
        assert_eq!(shares.get("trustee-3"), Some(&1));
    }
}

/// The next (request, outcome) the daemon prints.
async fn next_outcome(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> (String, String) {
    let line = tokio::time::timeout(STEP, lines.next_line())
        .await
        .expect("the daemon reported nothing")
        .unwrap()
        .expect("the daemon exited");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    (
        v["request"].as_str().unwrap().to_owned(),
        v["outcome"].as_str().unwrap().to_owned(),
    )
}

/// Forwards WebSocket frames between clients and the relay, sending every release push
/// twice and adding every release request it has seen to `PendingReleases` answers, even
/// when the relay no longer lists it: a relay that re-pushes.
struct Replayer {
    url: String,
    seen: Arc<Mutex<Vec<PendingRelease>>>,
}

impl Replayer {
    async fn start(relay_url: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<PendingRelease>>> = Arc::default();
        let shared = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (relay_url, seen) = (relay_url.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    let Ok(client) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let Ok((relay, _)) = tokio_tungstenite::connect_async(&relay_url).await else {
                        return;
                    };
                    relay_frames(client, relay, seen).await;
                });
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn relay_frames<C, R>(
    mut client: tokio_tungstenite::WebSocketStream<C>,
    mut relay: tokio_tungstenite::WebSocketStream<R>,
    seen: Arc<Mutex<Vec<PendingRelease>>>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            m = client.next() => match m {
                Some(Ok(m)) if !m.is_close() => {
                    if relay.send(m).await.is_err() { return; }
                }
                _ => { let _ = relay.close(None).await; return; }
            },
            m = relay.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for out in replay(&b, &seen) {
                        if client.send(Message::binary(out)).await.is_err() { return; }
                    }
                }
                Some(Ok(m)) if !m.is_close() => {
                    if client.send(m).await.is_err() { return; }
                }
                _ => { let _ = client.close(None).await; return; }
            },
        }
    }
}

/// The frames to send the client for one frame from the relay.
fn replay(bytes: &[u8], seen: &Mutex<Vec<PendingRelease>>) -> Vec<Vec<u8>> {
    match wire::decode(bytes) {
        Ok(Frame::Push(Push::Release(p))) => {
            let mut seen = seen.lock().unwrap();
            if !seen.iter().any(|s| s.request.id == p.request.id) {
                seen.push(p);
            }
            vec![bytes.to_vec(), bytes.to_vec()]
        }
        Ok(Frame::Response {
            id,
            body: Response::Releases(mut list),
        }) => {
            let mut seen = seen.lock().unwrap();
            for p in &list {
                if !seen.iter().any(|s| s.request.id == p.request.id) {
                    seen.push(p.clone());
                }
            }
            for p in seen.iter() {
                if !list.iter().any(|l| l.request.id == p.request.id) {
                    list.push(p.clone());
                }
            }
            // Twice each, too.
            let doubled: Vec<PendingRelease> =
                list.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
            vec![
                wire::encode(&Frame::Response {
                    id,
                    body: Response::Releases(doubled),
                })
                .unwrap(),
            ]
        }
        _ => vec![bytes.to_vec()],
    }
}

#[tokio::test]
async fn duplicated_and_replayed_requests_never_release_twice() {
    let mut s = setup().await;
    let proxy = Replayer::start(s.w.url.clone()).await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "once only")
        .await
        .unwrap();
    let request = s.request_for(Justification::Consent(token.clone()));

    // trustee-1 serves through the replaying proxy while the request arrives (pushed twice).
    let account = Account::open(&s.w.home("trustee-1"), PASS).unwrap();
    let mut t1 = Client::connect(account, &proxy.url).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let outcomes: Arc<Mutex<Vec<String>>> = Arc::default();
    let reported = Arc::clone(&outcomes);
    let serve = tokio::spawn(async move {
        let r = t1
            .trustee_serve(
                async {
                    let _ = stop_rx.await;
                },
                |o| reported.lock().unwrap().push(o.outcome.clone()),
            )
            .await;
        t1.close().await;
        r
    });
    s.submit(&request).await.unwrap();
    // The same request submitted twice: the relay refuses the copy.
    assert!(matches!(
        s.submit(&request).await,
        Err(ClientError::Relay {
            code: ErrorCode::IdTaken,
            ..
        })
    ));
    // Wait until trustee-1's share is at the relay and the daemon has handled the duplicated
    // push too (the proxy delivers each release push twice), then stop it.
    eventually("trustee-1's share", async || {
        s.shares(&request)
            .await
            .contains_key("trustee-1")
            .then_some(())
    })
    .await;
    eventually("trustee-1 to handle the duplicated push", async || {
        (outcomes.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    stop_tx.send(()).unwrap();
    within_step("the daemon to stop", serve)
        .await
        .unwrap()
        .unwrap();
    let served = outcomes.lock().unwrap().clone();
    assert!(served.len() >= 2, "{served:?}");
    assert_eq!(served[0], "released", "{served:?}");
    assert!(
        served[1..].iter().all(|o| o == "already released"),
        "{served:?}"
    );
    assert!(proxy.seen() >= 1);

    // The replaying relay lists the answered request again (twice): nothing new happens.
    assert_eq!(
        answer(&s.w, &proxy.url, "trustee-1").await,
        vec!["already released", "already released"]
    );

    // trustee-2 dies after its shares went out (its record stays `Logged`), then the relay
    // re-pushes the answered request: it resumes, the relay answers `already_answered`, no
    // second entry.
    let run = trustee_once(&s.w, &s.w.url, "trustee-2", Some("after-shares")).await;
    assert_eq!(run.code, Some(FAILPOINT_EXIT_CODE), "{}", run.stderr);
    assert!(matches!(
        s.stage("trustee-2", &request).await,
        Some(TrusteeStage::Logged { .. })
    ));
    let replayed = answer(&s.w, &proxy.url, "trustee-2").await;
    assert_eq!(replayed, vec!["released", "already released"]);
    assert_eq!(
        s.stage("trustee-2", &request).await,
        Some(TrusteeStage::Released)
    );

    // trustee-3 releases it too (through the proxy, so it sees it twice).
    assert_eq!(
        answer(&s.w, &proxy.url, "trustee-3").await,
        vec!["released", "already released"]
    );

    // A second request with the same justification (a new id) is refused by every trustee,
    // however often the relay repeats it.
    let again = s.request_for(Justification::Consent(token));
    s.submit(&again).await.unwrap();
    for t in ["trustee-1", "trustee-2", "trustee-3"] {
        let out = answer(&s.w, &proxy.url, t).await;
        assert!(
            !out.iter().any(|o| o == "released") && out.iter().any(|o| o.starts_with("refused")),
            "{t}: {out:?}"
        );
    }

    let (entries, shares) = s.check_safety(&request).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(shares.len(), 3, "{shares:?}");
    assert!(s.master_reconstructs(&request).await);
    let (entries_again, shares_again) = s.check_safety(&again).await;
    assert!(
        entries_again.is_empty() && shares_again.is_empty(),
        "a justification was released twice: entries {entries_again:?}, shares {shares_again:?}"
    );
    assert!(
        progress(&s.master, &again).await.refusals.len() == 3,
        "every trustee refused the second request"
    );
    println!("first request: entries {entries:?}, shares {shares:?}");
}
