//! The WebSocket to the relay, before and outside authentication: one binary message per
//! [`Frame`], nothing else.
//!
//! A [`Connection`] is unauthenticated; [`crate::session::Session::establish`] consumes it,
//! runs the challenge–response handshake and gives back a [`crate::session::Session`].

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::wire::{self, Frame, MAX_FRAME};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

use crate::error::{ClientError, Result};

/// How long opening the TCP connection and the WebSocket upgrade may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open, not yet authenticated WebSocket to the relay.
#[derive(Debug)]
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
}

impl Connection {
    /// Connects to `url` (`ws://HOST:PORT/v1/ws`), with frame and message sizes bounded by
    /// [`MAX_FRAME`] so a hostile relay cannot make the client buffer megabytes.
    ///
    /// # Errors
    /// [`ClientError::Transport`] or [`ClientError::Timeout`].
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("wss://") {
            return Err(ClientError::Invalid(
                "wss:// relays are not supported by this client build yet; use ws:// on a \
                 trusted network or through a TLS tunnel"
                    .into(),
            ));
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME))
            // Write each frame out at once (chat is latency-bound), and bound what may queue
            // up behind a slow socket.
            .write_buffer_size(0)
            .max_write_buffer_size(4 * MAX_FRAME)
            .read_buffer_size(16 * 1024);
        let fut = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
        let (ws, _response) = tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                what: "the connection",
                secs: CONNECT_TIMEOUT.as_secs(),
            })?
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self {
            ws,
            url: url.to_owned(),
        })
    }

    /// The relay URL this connection was opened to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next frame, or `None` once the relay closed the connection. Ping and pong messages
    /// are answered by the WebSocket layer and skipped here.
    ///
    /// # Errors
    /// [`ClientError::Transport`] for a broken socket, [`ClientError::UnexpectedResponse`] for a
    /// text message, [`ClientError::Protocol`] for a frame that does not decode.
    pub async fn recv(&mut self) -> Result<Option<Frame>> {
        loop {
            let Some(msg) = self.ws.next().await else {
                return Ok(None);
            };
            match msg.map_err(|e| ClientError::Transport(e.to_string()))? {
                Message::Binary(bytes) => return Ok(Some(wire::decode(&bytes)?)),
                Message::Close(_) => return Ok(None),
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
