//! The abuse scenario (issue 25, item 5; `--only abuse`, never part of a run that names no
//! scenario): one source address floods the relay with connections, registrations and
//! conversation opens while well-behaved clients chat, and the run reports what the flood
//! costs them.
//!
//! The relay child runs the benchmark's configuration with the **default** limits per source
//! and overall (connection rate, open connections, registrations; opens and the
//! open-conversations quota are defaults there already): the well-behaved clients come from 16 loopback addresses
//! (127.0.0.2–17, a handful of registrations each) and stay within them, the flood comes from
//! [`FLOOD_SOURCE`] alone. The chat runs open loop at a fixed rate three times, ABA: without
//! the flood, with it, without it again; the flood starts before the second run's warm-up and
//! stops after its tail. Figures: the chat's delivery p99 with and without the flood (a
//! ratio, same run), the flood's requests and how many the relay refused (by the flood's own
//! count, and the relay's `sealdesk_limited_total`), and the relay's RSS before, at the end of
//! and after the flood. Every socket targets 127.0.0.0/8; the flood is bounded by the run's
//! time and by [`FLOOD_MAX_ATTEMPTS`].

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use rand::{SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_bench::procstat;
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{ErrorCode, Frame, Request, Response},
};
use sealdesk_server::config::Limits;
use tokio_tungstenite::tungstenite;

use crate::{
    child::{Kind, ServerChild},
    client::{self, Ws},
    load::{Measured, Pace, histogram},
    party::Party,
    report::{AbuseFigures, FloodTally, Percentiles},
    scenarios::{Settings, measure, merge},
    world::{Org, setup_sealdesk},
};

/// The flooding source address (outside the well-behaved clients' 127.0.0.2–17).
pub const FLOOD_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 66);

/// Flooding tasks, each one connection at a time.
const FLOOD_TASKS: u64 = 8;

/// The flood stops after this many attempts (connections tried) even if the run goes on.
const FLOOD_MAX_ATTEMPTS: u64 = 500_000;

/// How long the flooding tasks get to notice the stop before they are cut short.
const FLOOD_GRACE: Duration = Duration::from_secs(1);

/// Conversation opens each registered flooding account tries (the default quota is 4).
const OPENS_PER_ACCOUNT: u64 = 6;

/// The chat's rate when `--latency-rate` is not given: a steady load the quick run's clients
/// keep up with on two shared cores.
const DEFAULT_RATE: f64 = 1_000.0;

#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    refused_connections: AtomicU64,
    failed_connections: AtomicU64,
    registered: AtomicU64,
    refused_registrations: AtomicU64,
    opened: AtomicU64,
    refused_opens: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    fn tally(&self) -> FloodTally {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FloodTally {
            attempts: g(&self.attempts),
            refused_connections: g(&self.refused_connections),
            failed_connections: g(&self.failed_connections),
            registered: g(&self.registered),
            refused_registrations: g(&self.refused_registrations),
            opened: g(&self.opened),
            refused_opens: g(&self.refused_opens),
            other: g(&self.other),
        }
    }
}

/// The per-source and overall limits the bench configuration raises, back at their defaults,
/// as the `SEALDESK_RELAY_*` variables the relay child reads.
fn default_source_limits() -> Vec<(String, String)> {
    let d = Limits::default();
    [
        (
            "SOURCE_CONNECTIONS_PER_MINUTE",
            d.source_connections_per_minute,
        ),
        ("SOURCE_CONNECTION_BURST", d.source_connection_burst),
        (
            "MAX_CONNECTIONS_PER_SOURCE",
            u32::try_from(d.max_connections_per_source).unwrap_or(u32::MAX),
        ),
        (
            "SOURCE_REGISTRATIONS_PER_MINUTE",
            d.source_registrations_per_minute,
        ),
        ("SOURCE_REGISTRATION_BURST", d.source_registration_burst),
        ("REGISTRATIONS_PER_MINUTE", d.registrations_per_minute),
        ("REGISTRATION_BURST", d.registration_burst),
    ]
    .into_iter()
    .map(|(k, v)| (format!("SEALDESK_RELAY_{k}"), v.to_string()))
    .collect()
}

/// Runs the scenario (see the module docs).
///
/// # Errors
/// The relay does not start, the chat's setup fails, or a run loses messages.
pub async fn abuse_scenario(s: &Settings) -> Result<AbuseFigures> {
    eprintln!(
        "abuse: {} conversations chatting, one source ({FLOOD_SOURCE}) flooding",
        s.conversations
    );
    let org = {
        let (a, c) = (s.agents, s.conversations);
        Arc::new(tokio::task::spawn_blocking(move || Org::new(11, a, c)).await??)
    };
    let child = {
        let (root, env) = (s.data_root.clone(), default_source_limits());
        tokio::task::spawn_blocking(move || {
            ServerChild::spawn_with_env(Kind::Sealdesk, &root, &env)
        })
        .await??
    };
    let (addr, pid) = (child.addr(), child.pid());
    let mut fleet = setup_sealdesk(&org, addr, s.window)
        .await
        .context("setting up the chatting clients")?;
    let rate = s.latency_rate.unwrap_or(DEFAULT_RATE).max(1.0);
    let pace = Pace::Open {
        interval: Duration::from_secs_f64(s.conversations as f64 / rate),
    };
    let limited_before = limited(&client::metrics(addr).await?);

    eprintln!("abuse: chat without the flood at {rate:.0} messages/s");
    let (quiet1, Measured { delivery: q1, .. }) = measure(&mut fleet, &child, pace, s).await?;
    let rss_before = procstat::rss_bytes(pid)?;

    eprintln!("abuse: chat during the flood");
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let flooders: Vec<_> = (0..FLOOD_TASKS)
        .map(|i| {
            let (org, stop, counts) = (org.clone(), stop.clone(), counts.clone());
            tokio::spawn(async move { flood(addr, &org, i, &stop, &counts).await })
        })
        .collect();
    let measured = measure(&mut fleet, &child, pace, s).await;
    let rss_flood_end = procstat::rss_bytes(pid)?;
    stop.store(true, Ordering::SeqCst);
    for mut f in flooders {
        // A flooding connection still in its handshake is cut short: the scenario stops by
        // itself whatever the relay does.
        if tokio::time::timeout(FLOOD_GRACE, &mut f).await.is_err() {
            f.abort();
        }
    }
    let (during, Measured { delivery: fl, .. }) = measured?;

    eprintln!("abuse: chat after the flood");
    let (quiet2, Measured { delivery: q2, .. }) = measure(&mut fleet, &child, pace, s).await?;
    let rss_after = procstat::rss_bytes(pid)?;
    let limited_after = limited(&client::metrics(addr).await?);
    fleet.close().await;
    let _ = tokio::task::spawn_blocking(move || child.stop()).await;

    let mut quiet = histogram();
    merge(&mut quiet, &q1);
    merge(&mut quiet, &q2);
    let (quiet, flood) = (Percentiles::of(&quiet), Percentiles::of(&fl));
    let relay_limited = limited_after
        .into_iter()
        .map(|(reason, n)| {
            let before = limited_before
                .iter()
                .find(|(r, _)| *r == reason)
                .map_or(0.0, |(_, b)| *b);
            (reason, n - before)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    Ok(AbuseFigures {
        conversations: s.conversations,
        rate_per_s: rate,
        p99_ratio: flood.p99_us / quiet.p99_us.max(1.0),
        quiet,
        flood,
        runs: vec![quiet1, during, quiet2],
        tally: counts.tally(),
        relay_limited,
        rss_before,
        rss_flood_end,
        rss_after,
    })
}

/// `sealdesk_limited_total` by reason, from a `/metrics` exposition.
fn limited(exposition: &str) -> Vec<(String, f64)> {
    exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("sealdesk_limited_total{reason=\"")?;
            let (reason, value) = rest.split_once("\"}")?;
            Some((reason.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// One flooding task: a fresh account per connection, from [`FLOOD_SOURCE`]: connect, sign
/// in, register, open conversations; until `stop` or [`FLOOD_MAX_ATTEMPTS`].
async fn flood(addr: std::net::SocketAddr, org: &Org, task: u64, stop: &AtomicBool, c: &Counts) {
    let mut rng = ChaCha20Rng::seed_from_u64(0x000f_100d_0000 + task);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed)
        && c.attempts.fetch_add(1, Ordering::Relaxed) < FLOOD_MAX_ATTEMPTS
    {
        n += 1;
        // Names are unique on a relay: each account its own.
        let Ok(me) = Party::new(&mut rng, &format!("flood-{task}-{n}"), Role::Customer) else {
            c.other.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let connect = client::connect_from(addr, Kind::Sealdesk.ws_path(), FLOOD_SOURCE, 4 * 1024);
        let Ok(connected) = tokio::time::timeout(client::STEP, connect).await else {
            c.failed_connections.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let mut ws = match connected {
            Ok(ws) => ws,
            Err(e) => {
                let refused = e.chain().any(|e| {
                    matches!(
                        e.downcast_ref::<tungstenite::Error>(),
                        Some(tungstenite::Error::Http(r)) if r.status().as_u16() == 429
                    )
                });
                let counter = if refused {
                    &c.refused_connections
                } else {
                    &c.failed_connections
                };
                counter.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if client::authenticate(&mut ws, &me.keys, &me.card)
            .await
            .is_err()
        {
            c.failed_connections.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match ask(&mut ws, 1, Request::Register).await {
            Some(Response::Ok) => c.registered.fetch_add(1, Ordering::Relaxed),
            Some(Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => {
                c.refused_registrations.fetch_add(1, Ordering::Relaxed);
                let _ = ws.close(None).await;
                continue;
            }
            _ => {
                c.other.fetch_add(1, Ordering::Relaxed);
                let _ = ws.close(None).await;
                continue;
            }
        };
        for id in 0..OPENS_PER_ACCOUNT {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let open = Request::OpenConversation {
                org: org.policy.org.clone(),
                conversation: ConversationId::random(&mut rng),
            };
            let counter = match ask(&mut ws, 2 + id, open).await {
                Some(Response::Opened { .. }) => &c.opened,
                Some(Response::Error {
                    code: ErrorCode::QuotaExceeded | ErrorCode::RateLimited,
                    ..
                }) => &c.refused_opens,
                _ => &c.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let _ = ws.close(None).await;
    }
}

/// Sends a request and returns its answer, error or not (`None` if the connection failed or
/// no answer came in time).
async fn ask(ws: &mut Ws, id: u64, body: Request) -> Option<Response> {
    client::send_frame(ws, &Frame::Request { id, body })
        .await
        .ok()?;
    let wait = async {
        loop {
            match client::recv_frame(ws).await.ok()? {
                Frame::Response { id: got, body } if got == id => return Some(body),
                _ => continue,
            }
        }
    };
    tokio::time::timeout(client::STEP, wait).await.ok()?
}
