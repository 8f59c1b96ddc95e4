//! WebSockets to a relay (or a cluster node) as its trusted reverse proxy opens them, naming the
//! client in `X-Forwarded-For`, for the abuse-limit tests: a source other than 127.0.0.1 is a
//! header here, once the relay is configured to trust 127.0.0.1 as a proxy. The frames are
//! read and written by hand, so that a test sees what [`crate::RawClient`] hides: a refusal
//! before the challenge, an HTTP refusal of the upgrade, the close frame's code and reason.

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::wire::{self, AuthResponse, Frame, Request, Response};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest as _, http::HeaderValue},
};

use crate::{STEP, identity::visitor};

/// A WebSocket opened by [`connect`].
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url`, through the "proxy" naming `client` if given (without, the
/// connection's own address, 127.0.0.1, is its source).
///
/// # Errors
///
/// The upgrade was refused (an HTTP 429, say) or the connection failed.
///
/// # Panics
///
/// If the upgrade takes longer than [`STEP`].
pub async fn connect(url: &str, client: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut request = url.into_client_request().expect("request");
    if let Some(ip) = client {
        request.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_str(ip).expect("header"),
        );
    }
    tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .map(|(ws, _)| ws)
}

/// The next frame the relay sends on `ws` (pings and pongs passed over), or `None` once it
/// sends anything else (a close) or the connection ends.
///
/// # Panics
///
/// If nothing comes within [`STEP`], or a binary message does not decode.
pub async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("timed out waiting for a frame")
        {
            Some(Ok(Message::Binary(b))) => return Some(wire::decode(&b).expect("decodes")),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => return None,
        }
    }
}

/// Sends `frame` on `ws`.
///
/// # Panics
///
/// If the frame does not encode or the send fails.
pub async fn send(ws: &mut Ws, frame: &Frame) {
    ws.send(Message::binary(wire::encode(frame).expect("encodes")))
        .await
        .expect("send");
}

/// The code and reason of the close frame the relay ends `ws` with (frames before it passed
/// over), or `None` if the connection ended without one.
///
/// # Panics
///
/// If nothing ends the connection within [`STEP`].
pub async fn close_frame(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("timed out waiting for the close")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// The code of the close frame the relay ends `ws` with (see [`close_frame`]).
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    close_frame(ws).await.map(|(code, _)| code)
}

/// Signs in as `who` on `url` over a connection from `client` (see [`connect`]), checks that
/// the welcome says the card is not registered, and asks to register; the answer to
/// `register`. The connection is closed after it.
///
/// # Panics
///
/// If the upgrade is refused, or the relay does not challenge, welcome and answer in turn.
pub async fn register_from(url: &str, client: Option<&str>, who: &crate::Identity) -> Response {
    let mut ws = connect(url, client).await.expect("upgrade");
    let Some(Frame::Challenge(challenge)) = next_frame(&mut ws).await else {
        panic!("expected a challenge");
    };
    send(
        &mut ws,
        &Frame::Auth(AuthResponse::answer(&who.keys, who.card(), &challenge)),
    )
    .await;
    let Some(Frame::Welcome(w)) = next_frame(&mut ws).await else {
        panic!("expected a welcome");
    };
    assert!(!w.registered);
    send(
        &mut ws,
        &Frame::Request {
            id: 1,
            body: Request::Register,
        },
    )
    .await;
    let body = match next_frame(&mut ws).await {
        Some(Frame::Response { id: 1, body }) => body,
        other => panic!("expected the answer to register, got {other:?}"),
    };
    let _ = ws.close(None).await;
    body
}

/// Answers the challenge on a connection from `client` to `url` with a signature of another
/// key than the card's (a visitor's card, signed by another visitor's key); the code of the
/// close the relay then ends the connection with (4101 when it refuses the authentication).
///
/// # Panics
///
/// If the upgrade is refused or the relay does not challenge.
pub async fn fail_authentication(url: &str, client: Option<&str>) -> Option<u16> {
    let (liar, other) = (visitor(1), visitor(2));
    let mut ws = connect(url, client).await.expect("upgrade");
    let Some(Frame::Challenge(challenge)) = next_frame(&mut ws).await else {
        panic!("expected a challenge for {client:?}");
    };
    let mut bad = AuthResponse::answer(&other.keys, liar.card(), &challenge);
    bad.card = liar.card();
    send(&mut ws, &Frame::Auth(bad)).await;
    close_code(&mut ws).await
}
