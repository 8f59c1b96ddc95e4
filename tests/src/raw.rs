//! [`RawClient`]: one WebSocket to the relay speaking wire frames directly — no client library
//! in between, so a test sees exactly what the relay sends and can send what a well-behaved
//! client never would. Requests with ids, pushes queued while a response is awaited, waits for
//! a push or for the close (with its code), and raw bytes.

use std::{collections::VecDeque, time::Duration};

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::{
    card::IdentityCard,
    ids::ConversationId,
    keys::IdentityKeys,
    wire::{
        self, AuthResponse, Challenge, ErrorCode, Frame, Push, Request, Response, Sequenced,
        Welcome,
    },
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

use crate::{
    identity::{Identity, rng},
    wait::{QUIET, STEP},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket to the relay, speaking frames directly.
pub struct RawClient {
    ws: Ws,
    challenge: Challenge,
    next_id: u64,
    pushes: VecDeque<Push>,
}

impl RawClient {
    /// Connects and reads the relay's [`Challenge`].
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("WebSocket upgrade");
        let mut c = Self {
            ws,
            challenge: Challenge {
                relay_key: IdentityKeys::generate(&mut rng(0)).signing_public(),
                nonce: [0; 32],
            },
            next_id: 1,
            pushes: VecDeque::new(),
        };
        match c.recv_frame().await {
            Some(Frame::Challenge(ch)) => c.challenge = ch,
            other => panic!("expected a challenge first, got {other:?}"),
        }
        c
    }

    /// Connects, authenticates as `who` and registers if the relay does not know the card yet.
    pub async fn login(url: &str, who: &Identity) -> Self {
        let mut c = Self::connect(url).await;
        let welcome = c.auth(&who.keys, who.card()).await;
        if !welcome.registered {
            c.ok(Request::Register).await;
        }
        c
    }

    /// The challenge this connection received.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// Answers the challenge with `keys` and `card`; expects a [`Welcome`].
    pub async fn auth(&mut self, keys: &IdentityKeys, card: IdentityCard) -> Welcome {
        let answer = AuthResponse::answer(keys, card, &self.challenge);
        self.send_frame(&Frame::Auth(answer)).await;
        match self.recv_frame().await {
            Some(Frame::Welcome(w)) => w,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, frame: &Frame) {
        self.send_raw(wire::encode(frame).expect("frame encodes"))
            .await;
    }

    /// Sends raw bytes as one binary WebSocket message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(STEP, self.ws.send(Message::binary(bytes)))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// The next decoded frame, or `None` once the connection closed.
    pub async fn recv_frame(&mut self) -> Option<Frame> {
        self.recv_frame_within(STEP)
            .await
            .expect("timed out waiting for a frame")
    }

    /// Like [`Self::recv_frame`], but `Err(())` if nothing arrives within `wait`.
    #[allow(clippy::result_unit_err)]
    pub async fn recv_frame_within(&mut self, wait: Duration) -> Result<Option<Frame>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(()),
                Ok(None | Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Ok(None),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Binary(b) => {
                    return Ok(Some(wire::decode(&b).expect("relay frame decodes")));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Text(t) => panic!("the relay sent a text message: {t}"),
                Message::Close(_) => return Ok(None),
            }
        }
    }

    /// Sends a request and waits for its response; pushes that arrive meanwhile are queued.
    pub async fn request(&mut self, body: Request) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&Frame::Request { id, body }).await;
        loop {
            match self.recv_frame().await {
                Some(Frame::Response { id: got, body }) => {
                    assert_eq!(got, id, "response to another request: {body:?}");
                    return body;
                }
                Some(Frame::Push(p)) => self.pushes.push_back(p),
                Some(other) => panic!("unexpected frame while waiting for a response: {other:?}"),
                None => panic!("the relay closed the connection instead of answering"),
            }
        }
    }

    /// Sends a request that must succeed with [`Response::Ok`].
    pub async fn ok(&mut self, body: Request) {
        let what = format!("{body:?}");
        match self.request(body).await {
            Response::Ok => {}
            other => panic!("expected Ok for {}, got {other:?}", short(&what)),
        }
    }

    /// Sends a request that must be stored; returns its sequence number.
    pub async fn stored(&mut self, body: Request) -> u64 {
        let what = format!("{body:?}");
        match self.request(body).await {
            Response::Stored { seq, .. } => seq,
            other => panic!("expected Stored for {}, got {other:?}", short(&what)),
        }
    }

    /// Sends a request that must be refused; returns the error code.
    pub async fn refused(&mut self, body: Request) -> ErrorCode {
        let what = format!("{body:?}");
        match self.request(body).await {
            Response::Error { code, .. } => code,
            other => panic!("expected a refusal of {}, got {other:?}", short(&what)),
        }
    }

    /// The next push (queued first), or `None` if none arrives within `wait`.
    pub async fn next_push(&mut self, wait: Duration) -> Option<Push> {
        if let Some(p) = self.pushes.pop_front() {
            return Some(p);
        }
        match self.recv_frame_within(wait).await {
            Err(()) | Ok(None) => None,
            Ok(Some(Frame::Push(p))) => Some(p),
            Ok(Some(other)) => panic!("unexpected frame while waiting for a push: {other:?}"),
        }
    }

    /// Waits (up to [`STEP`]) for the first push `pick` accepts; other pushes stay queued.
    pub async fn expect_push<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Push) -> Option<T>,
    ) -> T {
        if let Some(i) = self.pushes.iter().position(|p| pick(p).is_some()) {
            let p = self.pushes.remove(i).unwrap();
            return pick(&p).unwrap();
        }
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_frame_within(left).await {
                Err(()) => panic!("timed out waiting for a push: {what}"),
                Ok(None) => panic!("connection closed while waiting for a push: {what}"),
                Ok(Some(Frame::Push(p))) => match pick(&p) {
                    Some(t) => return t,
                    None => self.pushes.push_back(p),
                },
                Ok(Some(other)) => panic!("unexpected frame while waiting for {what}: {other:?}"),
            }
        }
    }

    /// Waits (as [`Self::expect_push`]) for the push of item `seq` of conversation `id`.
    pub async fn expect_item_push(
        &mut self,
        what: &str,
        id: ConversationId,
        seq: u64,
    ) -> Sequenced {
        self.expect_push(what, |p| match p {
            Push::Item(s) if s.conversation == id && s.seq == seq => Some(s.clone()),
            _ => None,
        })
        .await
    }

    /// Checks (as [`Self::expect_no_push`]) that item `seq` of conversation `id` is not pushed.
    pub async fn expect_no_item_push(&mut self, what: &str, id: ConversationId, seq: u64) {
        self.expect_no_push(
            what,
            |p| matches!(p, Push::Item(s) if s.conversation == id && s.seq == seq),
        )
        .await;
    }

    /// Checks that no push `pick` accepts is queued or arrives within [`QUIET`]; other pushes
    /// stay queued.
    pub async fn expect_no_push(&mut self, what: &str, mut pick: impl FnMut(&Push) -> bool) {
        if let Some(p) = self.pushes.iter().find(|p| pick(p)) {
            panic!("unexpected push ({what}): {p:?}");
        }
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_frame_within(left).await {
                Err(()) | Ok(None) => return,
                Ok(Some(Frame::Push(p))) => {
                    assert!(!pick(&p), "unexpected push ({what}): {p:?}");
                    self.pushes.push_back(p);
                }
                Ok(Some(other)) => panic!("unexpected frame while waiting ({what}): {other:?}"),
            }
        }
    }

    /// Reads until the relay closes; returns the close code (`None` if the stream ended without
    /// a close frame). Frames before the close (such as an error response) are skipped.
    pub async fn expect_close(&mut self) -> Option<u16> {
        self.frames_until_close().await.1
    }

    /// Reads until the relay closes; returns the frames received before the close and the
    /// close code (`None` if the stream ended without a close frame).
    pub async fn frames_until_close(&mut self) -> (Vec<Frame>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            let msg = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("timed out waiting for the relay to close");
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(u16::from(CloseCode::Status), |f| u16::from(f.code));
                    return (frames, Some(code));
                }
                Some(Ok(Message::Binary(b))) => {
                    frames.push(wire::decode(&b).expect("relay frame decodes"));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (frames, None),
            }
        }
    }

    /// Closes the WebSocket politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(STEP, self.ws.close(None)).await;
        // Drain until the relay's close reply so the session ends before a shutdown.
        let _ = tokio::time::timeout(STEP, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

fn short(s: &str) -> &str {
    let end = s.char_indices().nth(120).map_or(s.len(), |(i, _)| i);
    &s[..end]
}
