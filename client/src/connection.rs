//! The WebSocket to the relay, before and outside authentication: one binary message per
//! [`Frame`], nothing else.
//!
//! A [`Connection`] is unauthenticated; [`crate::session::Session::establish`] consumes it,
//! runs the challenge–response handshake and gives back a [`crate::session::Session`].
//!
//! `wss://` URLs run TLS (rustls) under the WebSocket, trusting what [`TlsOptions`] says
//! (see [`crate::tls`]); `ws://` URLs are plain TCP.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::wire::{self, Frame, MAX_FRAME, Received};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, http::Uri, protocol::WebSocketConfig},
};

use crate::error::{ClientError, Result};
use crate::tls::{TlsError, TlsOptions};

/// How long opening the TCP connection, the TLS handshake and the WebSocket upgrade may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open, not yet authenticated WebSocket to the relay.
#[derive(Debug)]
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
    /// Pushes of a kind this code does not know, skipped so far ([`Self::unknown_pushes`]).
    unknown_pushes: u64,
    /// The code of the relay's close frame, once it sent one ([`Self::close_code`]).
    close_code: Option<u16>,
}

impl Connection {
    /// Connects to `url` (`ws://HOST:PORT/v1/ws`, or `wss://` trusting the system's root
    /// certificates), with frame and message sizes bounded by [`MAX_FRAME`] so a hostile relay
    /// cannot make the client buffer megabytes.
    ///
    /// # Errors
    /// As [`Self::connect_with`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &TlsOptions::default()).await
    }

    /// Connects to `url`; for a `wss://` URL the relay's certificate must chain to a root that
    /// `tls` trusts and name the URL's host.
    ///
    /// # Errors
    /// [`ClientError::Tls`] when the relay's certificate is refused, the TLS handshake fails or
    /// `tls` names a CA file that cannot be used; [`ClientError::BadRelayUrl`] for a URL that does
    /// not parse; [`ClientError::Transport`] or [`ClientError::Timeout`].
    pub async fn connect_with(url: &str, tls: &TlsOptions) -> Result<Self> {
        let uri: Uri = url.parse().map_err(|_| ClientError::BadRelayUrl {
            url: url.to_owned(),
        })?;
        let host = uri.host().unwrap_or_default().to_owned();
        let wss = uri.scheme_str() == Some("wss");
        let connector = if wss {
            Connector::Rustls(tls.client_config()?)
        } else {
            Connector::Plain
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME))
            // Write each frame out at once (chat is latency-bound), and bound what may queue
            // up behind a slow socket.
            .write_buffer_size(0)
            .max_write_buffer_size(4 * MAX_FRAME)
            .read_buffer_size(16 * 1024);
        let fut = tokio_tungstenite::connect_async_tls_with_config(
            uri,
            Some(config),
            true,
            Some(connector),
        );
        let (ws, _response) = tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                what: "the connection",
                secs: CONNECT_TIMEOUT.as_secs(),
            })?
            .map_err(|e| connect_error(&host, wss, e))?;
        Ok(Self {
            ws,
            url: url.to_owned(),
            unknown_pushes: 0,
            close_code: None,
        })
    }

    /// The relay URL this connection was opened to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The code of the close frame the relay ended the connection with (PROTOCOL.md §13.6),
    /// once [`Self::recv`] has read one.
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// How many pushes of a kind this code does not know [`Self::recv`] skipped.
    pub fn unknown_pushes(&self) -> u64 {
        self.unknown_pushes
    }

    /// The next frame, or `None` once the relay closed the connection. Ping and pong messages
    /// are answered by the WebSocket layer and skipped here, and so is a push of a kind this
    /// code does not know (a newer relay's, [`wire::decode_received`]: its tag names no kind
    /// of [`wire::Push`]), with a debug log, counted ([`Self::unknown_pushes`]).
    ///
    /// # Errors
    /// [`ClientError::Transport`] for a broken socket, [`ClientError::UnexpectedResponse`] for a
    /// text message, [`ClientError::Protocol`] for a frame that does not decode;
    /// [`ClientError::RefusedAnswer`] for an answer refused for a fault of its own (a malformed
    /// audit entry, [`Received::Refused`]): only that request fails, the connection goes on.
    pub async fn recv(&mut self) -> Result<Option<Frame>> {
        loop {
            let Some(msg) = self.ws.next().await else {
                return Ok(None);
            };
            match msg.map_err(|e| ClientError::Transport(e.to_string()))? {
                // A push of a kind a newer relay added is skipped, not an error (§13.5).
                Message::Binary(bytes) => match wire::decode_received(&bytes)? {
                    Received::Frame(frame) => return Ok(Some(frame)),
                    Received::Refused { id, error } => {
                        return Err(ClientError::RefusedAnswer { id, error });
                    }
                    Received::UnknownPush { kind } => {
                        self.unknown_pushes = self.unknown_pushes.saturating_add(1);
                        tracing::debug!(kind, "skipped a push of a kind this client does not know");
                    }
                },
                Message::Close(frame) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    return Ok(None);
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Text(_) => {
                    return Err(ClientError::UnexpectedResponse(
                        "a text message (only binary frames are allowed)".into(),
                    ));
                }
            }
        }
    }

    /// Sends one frame.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] if the frame is too large, [`ClientError::Transport`].
    pub async fn send(&mut self, frame: &Frame) -> Result<()> {
        let bytes = wire::encode(frame)?;
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// Closes the connection politely (errors are ignored: the socket is going away anyway).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A failed connection attempt as a [`ClientError`]: a rustls error — which tokio-rustls hands
/// up inside an `io::Error` — becomes a [`TlsError`] naming `host`, anything else stays a
/// transport error.
fn connect_error(host: &str, wss: bool, error: tungstenite::Error) -> ClientError {
    use tungstenite::error::TlsError as WsTlsError;
    let rustls_error = match &error {
        tungstenite::Error::Tls(WsTlsError::Rustls(e)) => Some(&**e),
        tungstenite::Error::Tls(WsTlsError::InvalidDnsName) => {
            return TlsError::InvalidHost {
                host: host.to_owned(),
            }
            .into();
        }
        tungstenite::Error::Io(e) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let tungstenite::Error::Http(response) = &error
        && response.status() == tungstenite::http::StatusCode::TOO_MANY_REQUESTS
    {
        // The relay's per-address connection limit: its own words, or the header's wait.
        let body = response
            .body()
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.trim().strip_prefix("rate_limited: "))
            .map(str::to_owned);
        let secs = response
            .headers()
            .get(tungstenite::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        let message = body.unwrap_or_else(|| "too many connections from your address".into());
        return ClientError::Relay {
            code: sealdesk_protocol::wire::ErrorCode::RateLimited,
            message,
            retry_after: Some(std::time::Duration::from_secs(secs)),
        };
    }
    match rustls_error {
        Some(e) => TlsError::from_handshake(host, e).into(),
        // A plain WebSocket upgrade answered by a TLS listener reads as a broken HTTP response.
        None if !wss
            && matches!(
                error,
                tungstenite::Error::Protocol(tungstenite::error::ProtocolError::HttparseError(_))
            ) =>
        {
            ClientError::Transport(format!(
                "{error} (if the relay serves TLS, use a wss:// URL)"
            ))
        }
        None => ClientError::Transport(error.to_string()),
    }
}
