//! WebSocket abuse against the real relay (in process, on `127.0.0.1:0`): oversized and
//! malformed frames, bad encodings, protocol violations only a hand-made client can commit,
//! oversized handshakes, a thousand slow or idle sockets beside a live conversation, and a
//! connection flood past the limit. After each, the relay keeps serving.
//!
//! Latencies and memory are printed, never asserted against a clock; the one memory
//! assertion is a generous absolute bound on growth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rand::{RngExt as _, SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_protocol::{
    card::Role,
    wire::{self, AuthResponse, Frame, Push, Request, Response},
};
use sealdesk_server::{
    RunningRelay,
    relay::session_codes::{CLOSE_AUTH_FAILED, CLOSE_BAD_FRAME},
};
use sealdesk_tests::{
    Identity, Org, RawClient, STEP, eventually, eventually_within, http_get, metric, spawn_relay,
    spawn_relay_with, stop_relay,
    wsraw::{self, Ending, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, RSV1},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// Raises the open-file soft limit to the hard limit (both ends of every socket live in this
/// process).
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    if let Some(hard) = cur.maximum
        && cur.current != Some(hard)
    {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// This process's resident set size in KiB (the relay runs in process).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The relay still answers a fresh, well-behaved client.
async fn still_serves(relay: &RunningRelay, who: &Identity) {
    let mut c = RawClient::login(&relay.ws_url(), who).await;
    match c.request(Request::GetTreeHead).await {
        Response::TreeHead(_) => {}
        other => panic!("expected a tree head, got {other:?}"),
    }
    c.close().await;
}

/// A raw WebSocket that has read the relay's challenge.
async fn raw_session(relay: &RunningRelay) -> (TcpStream, wire::Challenge) {
    let mut tcp = wsraw::upgrade(relay.local_addr()).await;
    let f = tokio::time::timeout(STEP, wsraw::read_frame(&mut tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.opcode, OP_BINARY);
    match wire::decode(&f.payload).unwrap() {
        Frame::Challenge(ch) => (tcp, ch),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// A raw WebSocket authenticated as `who` (welcome read).
async fn raw_authenticated(relay: &RunningRelay, who: &Identity) -> TcpStream {
    let (mut tcp, ch) = raw_session(relay).await;
    let auth = wire::encode(&Frame::Auth(AuthResponse::answer(
        &who.keys,
        who.card(),
        &ch,
    )))
    .unwrap();
    tcp.write_all(&wsraw::binary(&auth)).await.unwrap();
    let f = tokio::time::timeout(STEP, wsraw::read_frame(&mut tcp))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(wire::decode(&f.payload), Ok(Frame::Welcome(_))),
        "{f:?}"
    );
    tcp
}

// ---- frames ---------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_frames_and_messages_close_with_1009() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(101, "alice", Role::Customer);
    let max = sealdesk_server::config::Limits::default().max_message_size;

    // A header claiming 1 TiB, with no payload behind it, before authentication.
    let (mut tcp, _) = raw_session(&relay).await;
    tcp.write_all(&wsraw::header_claiming(1 << 40))
        .await
        .unwrap();
    assert_eq!(
        wsraw::read_until_close(&mut tcp, STEP).await.0,
        Ending::Close(1009)
    );

    // One byte over the limit, as one frame, after authentication.
    let mut c = RawClient::login(&relay.ws_url(), &alice).await;
    c.send_raw(vec![1; max + 1]).await;
    assert_eq!(c.expect_close().await, Some(1009));

    // Small fragments that add up to more than the limit.
    let mut tcp = raw_authenticated(&relay, &alice).await;
    let chunk = vec![7u8; 16 * 1024];
    let mut bytes = wsraw::frame(false, 0, OP_BINARY, Some([1, 2, 3, 4]), &chunk);
    for _ in 0..(max / chunk.len()) {
        bytes.extend(wsraw::frame(
            false,
            0,
            OP_CONTINUATION,
            Some([1, 2, 3, 4]),
            &chunk,
        ));
    }
    bytes.extend(wsraw::frame(
        true,
        0,
        OP_CONTINUATION,
        Some([1, 2, 3, 4]),
        &chunk,
    ));
    let _ = tcp.write_all(&bytes).await;
    assert_eq!(
        wsraw::read_until_close(&mut tcp, STEP).await.0,
        Ending::Close(1009)
    );

    still_serves(&relay, &alice).await;
    let metrics = http_get(&relay, "/metrics").await;
    assert!(
        metrics.contains("sealdesk_frames_rejected_total{reason=\"too_big\"} 3"),
        "{metrics}"
    );
    stop_relay(relay).await;
}

#[tokio::test]
async fn anything_but_a_valid_answer_before_auth_closes_with_4101() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(102, "alice", Role::Customer);
    let other = wire::Challenge {
        relay_key: alice.key(),
        nonce: [9; 32],
    };
    let frames = [
        (
            "request",
            Frame::Request {
                id: 7,
                body: Request::Register,
            },
        ),
        ("challenge", Frame::Challenge(other.clone())),
        (
            "welcome",
            Frame::Welcome(wire::Welcome {
                registered: true,
                log_key: alice.key(),
            }),
        ),
        (
            "response",
            Frame::Response {
                id: 0,
                body: Response::Ok,
            },
        ),
        (
            "answer to another challenge",
            Frame::Auth(AuthResponse::answer(&alice.keys, alice.card(), &other)),
        ),
    ];
    for (what, frame) in frames {
        let mut c = RawClient::connect(&relay.ws_url()).await;
        c.send_frame(&frame).await;
        let (got, code) = c.frames_until_close().await;
        assert_eq!(code, Some(CLOSE_AUTH_FAILED), "{what}");
        assert!(
            got.iter().all(|f| matches!(
                f,
                Frame::Response {
                    id: 0,
                    body: Response::Error { .. }
                }
            )),
            "{what}: {got:?}"
        );
    }
    // A text message is not even a frame: 1003.
    let (mut tcp, _) = raw_session(&relay).await;
    tcp.write_all(&wsraw::frame(
        true,
        0,
        OP_TEXT,
        Some([5, 6, 7, 8]),
        b"{\"auth\":1}",
    ))
    .await
    .unwrap();
    assert_eq!(
        wsraw::read_until_close(&mut tcp, STEP).await.0,
        Ending::Close(1003)
    );
    // Pings before auth are answered and change nothing: the answer still works after them.
    let (mut tcp, ch) = raw_session(&relay).await;
    tcp.write_all(&wsraw::frame(true, 0, OP_PING, Some([1, 1, 1, 1]), b"hi"))
        .await
        .unwrap();
    let pong = wsraw::read_frame(&mut tcp).await.unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"hi"[..]));
    let auth = wire::encode(&Frame::Auth(AuthResponse::answer(
        &alice.keys,
        alice.card(),
        &ch,
    )))
    .unwrap();
    tcp.write_all(&wsraw::binary(&auth)).await.unwrap();
    let welcome = wsraw::read_frame(&mut tcp).await.unwrap();
    assert!(matches!(
        wire::decode(&welcome.payload),
        Ok(Frame::Welcome(_))
    ));
    still_serves(&relay, &{
        let mut c = RawClient::login(&relay.ws_url(), &alice).await;
        c.ok(Request::Register).await;
        c.close().await;
        alice
    })
    .await;
    stop_relay(relay).await;
}

/// CBOR that tries to exhaust the decoder: deep nesting, lying lengths, unterminated
/// indefinite-length items.
fn cbor_bombs() -> Vec<(&'static str, Vec<u8>)> {
    let v = |rest: &[u8]| {
        let mut b = vec![1u8];
        b.extend_from_slice(rest);
        b
    };
    vec![
        ("100k nested arrays", v(&[0x81; 60_000])),
        ("100k nested maps", v(&[0xa1; 60_000])),
        ("nested tags", v(&[0xc6; 60_000])),
        (
            "byte string claiming 2^64-1 bytes",
            v(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ),
        (
            "text string claiming 4 GiB",
            v(&[0x7a, 0xff, 0xff, 0xff, 0xff, 0x61]),
        ),
        (
            "array claiming 2^64-1 items",
            v(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]),
        ),
        (
            "map claiming 2^32 entries",
            v(&[0xba, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]),
        ),
        (
            "unterminated indefinite map",
            v(&[0xbf, 0x61, 0x61, 0x9f, 0x9f, 0x9f]),
        ),
        ("indefinite byte string of 10k chunks", {
            let mut b = v(&[0x5f]);
            for _ in 0..10_000 {
                b.extend_from_slice(&[0x41, 0x00]);
            }
            b
        }),
        ("a lone break", v(&[0xff])),
        ("half a float", v(&[0xfb, 0x40, 0x09])),
    ]
}

#[tokio::test]
async fn garbage_truncated_and_hostile_encodings_close_only_that_connection() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let alice = Identity::new(103, "alice", Role::Customer);
    RawClient::login(&url, &alice).await.close().await;
    {
        let mut c = RawClient::login(&url, &alice).await;
        c.ok(Request::Register).await;
        c.close().await;
    }
    // A session that stays open throughout must never notice.
    let mut bystander = RawClient::login(&url, &alice).await;

    // Before auth: CBOR bombs are refused with 4101.
    for (what, bytes) in cbor_bombs() {
        let mut c = RawClient::connect(&url).await;
        c.send_raw(bytes).await;
        assert_eq!(
            c.expect_close().await,
            Some(CLOSE_AUTH_FAILED),
            "before auth: {what}"
        );
    }
    // After auth: the same bombs, and every prefix of valid request frames, get 4102.
    for (what, bytes) in cbor_bombs() {
        let mut c = RawClient::login(&url, &alice).await;
        c.send_raw(bytes).await;
        assert_eq!(
            c.expect_close().await,
            Some(CLOSE_BAD_FRAME),
            "after auth: {what}"
        );
    }
    let valid: Vec<Vec<u8>> = [
        Request::GetCard {
            name: "alice".into(),
        },
        Request::GetEntries { from: 0, limit: 10 },
        Request::ListConversations,
    ]
    .into_iter()
    .map(|body| wire::encode(&Frame::Request { id: 3, body }).unwrap())
    .collect();
    let mut truncations = 0;
    for frame in &valid {
        // Every proper prefix from 1 byte on (the empty one is covered by handshake.rs).
        for len in 1..frame.len() {
            let mut c = RawClient::login(&url, &alice).await;
            c.send_raw(frame[..len].to_vec()).await;
            assert_eq!(
                c.expect_close().await,
                Some(CLOSE_BAD_FRAME),
                "prefix {len} of {}",
                frame.len()
            );
            truncations += 1;
        }
    }
    // Seeded random mutations: each either decodes to some request (and is answered) or is
    // refused with 4102; never a dropped connection, never a dead relay.
    let mut r = ChaCha20Rng::seed_from_u64(103);
    let (mut answered, mut refused) = (0, 0);
    for i in 0..150 {
        let mut bytes = valid[i % valid.len()].clone();
        for _ in 0..r.random_range(1..4) {
            let at = r.random_range(1..bytes.len());
            bytes[at] = r.random();
        }
        let mut tcp = raw_authenticated(&relay, &alice).await;
        tcp.write_all(&wsraw::binary(&bytes)).await.unwrap();
        // Something is always answered or refused: follow with a valid request, and wait for
        // the first answer or the close (the relay handles a connection's frames in order, so
        // a refused mutation closes before any answer).
        tcp.write_all(&wsraw::binary(&valid[0])).await.unwrap();
        let answer =
            |f: &wsraw::ServerFrame| matches!(wire::decode(&f.payload), Ok(Frame::Response { .. }));
        match wsraw::read_until_close_or(&mut tcp, STEP, answer).await {
            (Ending::Close(code), _) => {
                assert_eq!(code, CLOSE_BAD_FRAME, "mutation {i}: {bytes:02x?}");
                refused += 1;
            }
            (Ending::StillOpen, frames) => {
                assert!(
                    frames
                        .iter()
                        .any(|f| matches!(wire::decode(&f.payload), Ok(Frame::Response { .. }))),
                    "mutation {i} neither answered nor refused: {frames:?}"
                );
                answered += 1;
            }
            (Ending::Dropped, _) => panic!("mutation {i} dropped the connection: {bytes:02x?}"),
        }
    }
    println!(
        "hostile encodings: {} CBOR bombs ×2, {truncations} truncations, random mutations: {answered} answered, {refused} refused (4102)",
        cbor_bombs().len()
    );
    match bystander.request(Request::GetTreeHead).await {
        Response::TreeHead(_) => {}
        other => panic!("the bystander was disturbed: {other:?}"),
    }
    bystander.close().await;
    still_serves(&relay, &alice).await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn unmasked_rsv_and_malformed_frames_close_with_1002() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(104, "alice", Role::Customer);
    let m = Some([0xa1, 0xb2, 0xc3, 0xd4]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unmasked binary",
            wsraw::frame(true, 0, OP_BINARY, None, b"\x01\xa0"),
        ),
        ("unmasked ping", wsraw::frame(true, 0, OP_PING, None, b"")),
        (
            "RSV1 (compressed) binary",
            wsraw::frame(true, RSV1, OP_BINARY, m, b"\x01\xa0"),
        ),
        (
            "RSV2 binary",
            wsraw::frame(true, 0x20, OP_BINARY, m, b"\x01\xa0"),
        ),
        (
            "RSV3 binary",
            wsraw::frame(true, 0x10, OP_BINARY, m, b"\x01\xa0"),
        ),
        ("RSV1 on a ping", wsraw::frame(true, RSV1, OP_PING, m, b"")),
        (
            "reserved data opcode 0x3",
            wsraw::frame(true, 0, 0x3, m, b"x"),
        ),
        (
            "reserved control opcode 0xB",
            wsraw::frame(true, 0, 0xB, m, b""),
        ),
        ("fragmented ping", wsraw::frame(false, 0, OP_PING, m, b"p")),
        (
            "ping with 126-byte payload",
            wsraw::frame(true, 0, OP_PING, m, &[0; 126]),
        ),
        (
            "continuation without a start",
            wsraw::frame(true, 0, OP_CONTINUATION, m, b"x"),
        ),
        ("new message inside a fragmented one", {
            let mut b = wsraw::frame(false, 0, OP_BINARY, m, b"\x01");
            b.extend(wsraw::frame(true, 0, OP_BINARY, m, b"\x01"));
            b
        }),
        (
            "close with a 1-byte payload",
            wsraw::frame(true, 0, OP_CLOSE, m, &[3]),
        ),
    ];
    let mut summary = Vec::new();
    for (what, bytes) in cases {
        for authenticated in [false, true] {
            let mut tcp = if authenticated {
                raw_authenticated(&relay, &alice).await
            } else {
                raw_session(&relay).await.0
            };
            let _ = tcp.write_all(&bytes).await;
            let (ending, _) = wsraw::read_until_close(&mut tcp, STEP).await;
            assert_eq!(
                ending,
                Ending::Close(1002),
                "{what} (authenticated: {authenticated})"
            );
        }
        summary.push(what);
    }
    println!("1002 for: {}", summary.join(", "));
    // Invalid close codes in a close frame: the relay ends the connection either way.
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        let (mut tcp, _) = raw_session(&relay).await;
        tcp.write_all(&wsraw::frame(true, 0, OP_CLOSE, m, &code.to_be_bytes()))
            .await
            .unwrap();
        let (ending, _) = wsraw::read_until_close(&mut tcp, STEP).await;
        assert_eq!(ending, Ending::Close(1002), "close code {code}");
    }
    still_serves(&relay, &{
        let mut c = RawClient::login(&relay.ws_url(), &alice).await;
        c.ok(Request::Register).await;
        c.close().await;
        alice
    })
    .await;
    stop_relay(relay).await;
}

// ---- handshake --------------------------------------------------------------------------------

/// Sends `request` on a fresh TCP connection and returns the relay's answer: the status line,
/// or `None` if it closed (or reset) without one.
async fn http_status(relay: &RunningRelay, request: &[u8]) -> Option<String> {
    let mut tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
    // The relay may answer and close before it has read everything: ignore write errors.
    let _ = tcp.write_all(request).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(STEP, async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 || got.len() > 64 * 1024 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn huge_handshakes_get_431_or_are_closed() {
    let (relay, _dir) = spawn_relay_with(|c| c.limits.handshake_timeout_ms = 2_000).await;
    let alice = Identity::new(105, "alice", Role::Customer);
    let base = wsraw::upgrade_request();
    let head = base.trim_end_matches("\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "one 100 KiB header",
            format!("{head}\r\nX-Big: {}\r\n\r\n", "a".repeat(100 * 1024)).into_bytes(),
        ),
        ("10,000 small headers", {
            let mut s = head.to_owned();
            for i in 0..10_000 {
                s.push_str(&format!("\r\nX-{i}: v"));
            }
            s.push_str("\r\n\r\n");
            s.into_bytes()
        }),
        (
            "a 100 KiB request target",
            format!(
                "GET /v1/ws?{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "q".repeat(100 * 1024)
            )
            .into_bytes(),
        ),
        (
            "1 MiB of header without an end",
            format!("{head}\r\nX-Endless: {}", "b".repeat(1 << 20)).into_bytes(),
        ),
    ];
    for (what, request) in cases {
        let status = http_status(&relay, &request).await;
        match status.as_deref() {
            None => println!("{what}: connection closed"),
            Some(s)
                if s.starts_with("HTTP/1.1 431")
                    || s.starts_with("HTTP/1.1 414")
                    || s.starts_with("HTTP/1.1 400") =>
            {
                println!("{what}: {s}")
            }
            Some(s) => panic!("{what}: unexpected answer {s:?}"),
        }
    }
    // A head that never ends (a few bytes, then silence) is closed by the header timeout.
    let mut tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
    tcp.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let ended = tokio::time::timeout(STEP, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a never-ending request head was not closed");
    still_serves(&relay, &{
        let mut c = RawClient::login(&relay.ws_url(), &alice).await;
        c.ok(Request::Register).await;
        c.close().await;
        alice
    })
    .await;
    stop_relay(relay).await;
}

// ---- load -------------------------------------------------------------------------------------

/// Percentile of sorted durations, in milliseconds.
fn pct(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted[i].as_secs_f64() * 1e3
}

/// Idle TCP sockets, half-written HTTP heads, unread upgrades, and authenticated WebSockets
/// that send requests and never read the answers. Dropping it closes them all.
struct Hostile {
    sockets: Vec<TcpStream>,
    unread: Vec<tokio::net::tcp::OwnedReadHalf>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        for w in &self.writers {
            w.abort();
        }
    }
}

impl Hostile {
    /// `per_kind` sockets of each of four kinds, plus one never-reading History reader per
    /// entry of `heavy`.
    async fn open(
        relay: &RunningRelay,
        per_kind: usize,
        heavy: &[(&Identity, sealdesk_protocol::ids::ConversationId)],
    ) -> Self {
        let addr = relay.local_addr();
        let mut h = Self {
            sockets: Vec::new(),
            unread: Vec::new(),
            writers: Vec::new(),
        };
        // 1. Connected, silent.
        for _ in 0..per_kind {
            h.sockets.push(TcpStream::connect(addr).await.unwrap());
        }
        // 2. Half an HTTP head (slowloris).
        for _ in 0..per_kind {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: relay.test\r\nUpgrade: websock")
                .await
                .unwrap();
            h.sockets.push(s);
        }
        // 3. A complete upgrade request whose answer (101, then the challenge) is never read.
        for _ in 0..per_kind {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(wsraw::upgrade_request().as_bytes())
                .await
                .unwrap();
            h.sockets.push(s);
        }
        // 4. Authenticated (unregistered) WebSockets that fire 100 requests and stop reading.
        let burst: Vec<u8> = (0..100u64)
            .flat_map(|id| {
                wsraw::binary(
                    &wire::encode(&Frame::Request {
                        id,
                        body: Request::GetTreeHead,
                    })
                    .unwrap(),
                )
            })
            .collect();
        for i in 0..per_kind {
            let who = Identity::new(50_000 + i as u64, &format!("mute{i}"), Role::Customer);
            let mut s = raw_authenticated(relay, &who).await;
            s.write_all(&burst).await.unwrap();
            h.sockets.push(s);
        }
        // 5. Registered readers that ask for 300 full history pages (~48 KiB each) and never
        //    read: the most a peer can make the relay hold for it.
        for (who, conversation) in heavy {
            let s = raw_authenticated(relay, who).await;
            let pages: Vec<u8> = (0..300u64)
                .flat_map(|id| {
                    wsraw::binary(
                        &wire::encode(&Frame::Request {
                            id,
                            body: Request::History {
                                conversation: *conversation,
                                after: 0,
                                limit: 200,
                            },
                        })
                        .unwrap(),
                    )
                })
                .collect();
            let (rd, mut wr) = s.into_split();
            // The relay stops reading once this session's queue is full, so the write may
            // never finish: it runs in the background, and is aborted on drop.
            h.writers.push(tokio::spawn(async move {
                let _ = wr.write_all(&pages).await;
                std::future::pending::<()>().await;
            }));
            h.unread.push(rd);
        }
        h
    }

    fn len(&self) -> usize {
        self.sockets.len() + self.unread.len()
    }
}

/// Fills conversations with large messages, so a history page is ~48 KiB.
async fn big_history(url: &str, org: &Org, customer: usize, seed: u64) -> sealdesk_tests::Chat {
    let mut c = RawClient::login(url, &org.customers[customer]).await;
    let chat = org.start_chat(&mut c, customer, seed).await;
    let body = "x".repeat(15 * 1024);
    for i in 0..12 {
        c.stored(Request::Send(chat.seal(&org.customers[customer], i, &body)))
            .await;
    }
    c.close().await;
    chat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_and_slow_sockets_do_not_stop_a_conversation() {
    const PER_KIND: usize = 248;
    const HEAVY: usize = 8;
    let nofile = raise_nofile();
    assert!(
        nofile >= 4_000,
        "RLIMIT_NOFILE {nofile} is too low for this test"
    );
    // Long handshake and auth timeouts: the hostile sockets stay for the whole conversation.
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.handshake_timeout_ms = 120_000;
        c.limits.auth_timeout_ms = 120_000;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 106, "busy", 1, HEAVY + 1).await;
    let mut heavy_chats = Vec::new();
    for c in 1..=HEAVY {
        heavy_chats.push(big_history(&url, &org, c, 1060 + c as u64).await);
    }
    let rss_before = rss_kib();

    let heavy: Vec<_> = heavy_chats
        .iter()
        .map(|chat| (&org.customers[chat.customer], chat.id))
        .collect();
    let hostile = Hostile::open(&relay, PER_KIND, &heavy).await;
    let open_now = metric(
        &http_get(&relay, "/metrics").await,
        "sealdesk_connections_open",
    );
    let rss_peak_start = rss_kib();

    // The well-behaved conversation: 60 exchanges, every request timed.
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 2061).await;
    let agent = &org.agents[chat.agent];
    let mut a = RawClient::login(&url, agent).await;
    let mut latencies = Vec::new();
    let mut timed = async |client: &mut RawClient, body: Request| {
        let t = Instant::now();
        let r = client.request(body).await;
        latencies.push(t.elapsed());
        r
    };
    for i in 0..60u64 {
        let r = timed(
            &mut c,
            Request::Send(chat.seal(customer, i, &format!("question {i}"))),
        )
        .await;
        assert!(matches!(r, Response::Stored { .. }), "{r:?}");
        let got = a
            .expect_push("the customer's message", |p| match p {
                Push::Item(s) if s.conversation == chat.id => Some(s.clone()),
                _ => None,
            })
            .await;
        let r = timed(
            &mut a,
            Request::Send(chat.seal(agent, i, &format!("answer {i}"))),
        )
        .await;
        assert!(matches!(r, Response::Stored { .. }), "{r:?}");
        let r = timed(
            &mut a,
            Request::Delivered {
                conversation: chat.id,
                seq: got.seq,
            },
        )
        .await;
        assert_eq!(r, Response::Ok);
        c.expect_push("the agent's answer", |p| match p {
            Push::Item(s) if s.conversation == chat.id => Some(()),
            _ => None,
        })
        .await;
    }
    match timed(
        &mut c,
        Request::History {
            conversation: chat.id,
            after: 0,
            limit: 200,
        },
    )
    .await
    {
        Response::Items { items, .. } => assert_eq!(items.len(), 121, "epoch + 120 messages"),
        other => panic!("{other:?}"),
    }
    let rss_peak = rss_kib();
    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "well-behaved client beside {} hostile sockets ({PER_KIND} idle TCP, {PER_KIND} half heads, \
         {PER_KIND} unread upgrades, {PER_KIND} never-reading sessions, {HEAVY} never-reading 48 KiB \
         history readers; relay reported {open_now:?} open): {} requests, p50 {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms",
        hostile.len(),
        sorted.len(),
        pct(&sorted, 50),
        pct(&sorted, 99),
        pct(&sorted, 100),
    );
    c.close().await;
    a.close().await;

    // Everything hostile goes away; the relay serves and its memory stays bounded.
    drop(hostile);
    // The gauge counts the /metrics request's own connection, hence `<= 1`.
    let open = eventually("the hostile connections to close", async || {
        let open = metric(
            &http_get(&relay, "/metrics").await,
            "sealdesk_connections_open",
        )
        .unwrap();
        (open <= 1.0).then_some(open)
    })
    .await;
    println!("connections open after the hostile sockets closed: {open}");
    still_serves(&relay, &org.customers[0]).await;
    let rss_after = rss_kib();
    println!(
        "RSS (test process, relay in process): before {} MiB, with sockets {} MiB, peak after \
         the conversation {} MiB, after closing {} MiB",
        rss_before / 1024,
        rss_peak_start / 1024,
        rss_peak / 1024,
        rss_after / 1024
    );
    let growth = rss_peak.max(rss_after).saturating_sub(rss_before);
    assert!(
        growth < 200 * 1024,
        "RSS grew by {} MiB with {} hostile sockets",
        growth / 1024,
        PER_KIND * 4 + HEAVY
    );
    stop_relay(relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_past_the_limit_gets_503_while_sessions_keep_working() {
    const LIMIT: usize = 50;
    const SESSIONS: usize = 10;
    const FLOOD: usize = 300;
    raise_nofile();
    let (relay, _dir) = spawn_relay_with(|c| c.limits.max_connections = LIMIT).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 107, "flood", 1, SESSIONS).await;
    let mut sessions = Vec::new();
    for who in &org.customers {
        sessions.push(RawClient::login(&url, who).await);
    }

    // The flood: upgrade requests that are kept open, whatever the answer.
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        match TcpStream::connect(relay.local_addr()).await {
            Ok(mut s) => {
                let _ = s.write_all(wsraw::upgrade_request().as_bytes()).await;
                flood.push(s);
            }
            Err(e) => panic!("connect failed: {e}"),
        }
    }
    let (mut upgraded, mut busy, mut dropped) = (0, 0, 0);
    for s in &mut flood {
        match wsraw::read_head(s).await {
            Ok(head) if head.starts_with("HTTP/1.1 101") => upgraded += 1,
            Ok(head) if head.starts_with("HTTP/1.1 503") => busy += 1,
            Ok(head) => panic!("unexpected answer to the flood: {head}"),
            Err(_) => dropped += 1,
        }
    }
    println!(
        "flood of {FLOOD} past max_connections = {LIMIT} with {SESSIONS} sessions open: \
         {upgraded} upgraded, {busy} got 503, {dropped} closed without an answer"
    );
    assert!(
        upgraded <= LIMIT - SESSIONS,
        "{upgraded} admitted past the limit"
    );
    assert!(busy >= 1, "nobody was told 503");
    assert_eq!(upgraded + busy + dropped, FLOOD);

    // The sessions admitted before the flood keep working, and can chat.
    for (i, c) in sessions.iter_mut().enumerate() {
        match c.request(Request::GetTreeHead).await {
            Response::TreeHead(_) => {}
            other => panic!("session {i}: {other:?}"),
        }
    }
    let chat = org.start_chat(&mut sessions[0], 0, 1071).await;
    sessions[0]
        .stored(Request::Send(chat.seal(&org.customers[0], 0, "still here")))
        .await;
    // Once the flood is gone, newcomers get in again.
    drop(flood);
    eventually("the relay to admit a connection again", async || {
        let mut s = TcpStream::connect(relay.local_addr()).await.unwrap();
        s.write_all(wsraw::upgrade_request().as_bytes())
            .await
            .unwrap();
        wsraw::read_head(&mut s)
            .await
            .is_ok_and(|h| h.starts_with("HTTP/1.1 101"))
            .then_some(())
    })
    .await;
    let metrics = http_get_retry(&relay).await;
    println!(
        "rejected at the limit: {:?}",
        metrics
            .lines()
            .find(|l| l.starts_with("sealdesk_connections_rejected_total{reason=\"limit\"}"))
    );

    still_serves(&relay, &org.customers[1]).await;
    for c in sessions {
        c.close().await;
    }
    stop_relay(relay).await;
}

/// `GET /metrics`, retried while the relay is at its connection limit.
async fn http_get_retry(relay: &RunningRelay) -> String {
    eventually("/metrics to answer", async || {
        let mut tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        // A connection turned away at the limit may be reset: that is a "not yet".
        let _ = tokio::time::timeout(STEP, tcp.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.starts_with("HTTP/1.1 200").then_some(text)
    })
    .await
}

/// A peer that sends requests and never reads the answers is never disconnected, and pins up
/// to `outbound_queue` answers (256 × up to 64 KiB = 16 MiB by default) in the relay for as
/// long as it keeps the TCP connection open: the session waits for queue room without a
/// bound, its `recv` (and with it the idle timeout) is not polled meanwhile, and the writer's
/// blocked socket write only ends on a close signal that nothing sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Fixed (server/src/connection.rs): bound every wait on the peer by `limits.idle_timeout()`:
// in `write_loop`, wrap the `write_burst` / ping write in `tokio::time::timeout` and end with
// `CloseReason::SlowConsumer` when it expires; in `Outbox::send`, wait for queue room at most
// that long, then `self.close(CloseReason::SlowConsumer)` and return `Error::Closed`.
// Optionally also cap the queue in bytes (e.g. a `limits.outbound_queue_bytes` of 1 MiB) so
// the worst case per connection is small, not 16 MiB.
async fn a_peer_that_never_reads_is_eventually_closed() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.idle_timeout_ms = 2_000;
        c.limits.ping_interval_ms = 500;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 108, "stall", 1, 1).await;
    let chat = big_history(&url, &org, 0, 1080).await;
    let open = |m: &str| metric(m, "sealdesk_connections_open").unwrap_or(-1.0);
    let before = rss_kib();
    let hostile = Hostile::open(&relay, 0, &[(&org.customers[0], chat.id)]).await;
    assert_eq!(hostile.len(), 1);
    // Within ten idle timeouts: the relay has heard nothing from the peer (not even a pong)
    // since its last request. The gauge counts the /metrics request's own connection, hence
    // `<= 1`.
    eventually_within(
        Duration::from_secs(20),
        "the relay to close the never-reading peer (10 idle timeouts)",
        async || (open(&http_get(&relay, "/metrics").await) <= 1.0).then_some(()),
    )
    .await;
    let pinned = rss_kib().saturating_sub(before);
    println!(
        "never-reading peer closed, RSS growth {} MiB",
        pinned / 1024
    );
    drop(hostile);
    stop_relay(relay).await;
}
