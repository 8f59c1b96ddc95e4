//! WebSocket by hand over a plain TCP stream, for sending what no WebSocket library would:
//! unmasked or RSV-flagged frames, lying length headers, half-written handshakes.
//!
//! - [`upgrade`]: connect, send an upgrade request, read the `101` head.
//! - [`frame`]: encode one frame with any flags, opcode, mask and payload.
//! - [`read_frame`] / [`read_until_close`]: parse the relay's (unmasked) frames.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::STEP;

/// The RFC 6455 example key.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Opcode of a continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;

/// RSV1: "per-message compressed" when permessage-deflate was negotiated (it never is here).
pub const RSV1: u8 = 0x40;

/// A well-formed upgrade request for `/v1/ws`.
pub fn upgrade_request() -> String {
    format!(
        "GET /v1/ws HTTP/1.1\r\nHost: relay.test\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    )
}

/// Connects to `addr`, upgrades to a WebSocket by hand, and returns the stream after the
/// `101` response head.
///
/// # Panics
///
/// If the relay does not answer `101 Switching Protocols` within [`STEP`].
pub async fn upgrade(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("TCP connect");
    tcp.write_all(upgrade_request().as_bytes())
        .await
        .expect("send the upgrade");
    let head = read_head(&mut tcp).await.expect("an HTTP response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// Reads an HTTP response head (up to the blank line), at most 16 KiB, within [`STEP`].
///
/// # Errors
///
/// The connection ended, or the head was too long or slow.
pub async fn read_head(tcp: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    tokio::time::timeout(STEP, async {
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(std::io::Error::other("response head too long"));
            }
            head.push(tcp.read_u8().await?);
        }
        Ok(())
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response head"))??;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Encodes one frame. `flags` holds RSV bits (e.g. [`RSV1`]); `mask` `None` sends it
/// unmasked (illegal from a client).
pub fn frame(fin: bool, flags: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (flags & 0x70) | (opcode & 0x0f)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    push_len(&mut out, mask_bit, payload.len() as u64);
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked, final binary frame (what a well-behaved client sends).
pub fn binary(payload: &[u8]) -> Vec<u8> {
    frame(true, 0, OP_BINARY, Some([0x37, 0xfa, 0x21, 0x3d]), payload)
}

/// Only the header of a masked binary frame that claims `len` payload bytes.
pub fn header_claiming(len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | OP_BINARY];
    push_len(&mut out, 0x80, len);
    out.extend_from_slice(&[1, 2, 3, 4]);
    out
}

fn push_len(out: &mut Vec<u8>, mask_bit: u8, len: u64) {
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A frame received from the relay.
#[derive(Debug)]
pub struct ServerFrame {
    /// FIN bit.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Reads one frame (server frames are never masked; payloads are capped at 1 MiB).
///
/// # Errors
///
/// The connection ended or sent something that is not a server frame.
pub async fn read_frame(tcp: &mut TcpStream) -> std::io::Result<ServerFrame> {
    let b0 = tcp.read_u8().await?;
    let b1 = tcp.read_u8().await?;
    if b1 & 0x80 != 0 {
        return Err(std::io::Error::other("masked server frame"));
    }
    let len = match b1 & 0x7f {
        126 => u64::from(tcp.read_u16().await?),
        127 => tcp.read_u64().await?,
        n => u64::from(n),
    };
    if len > 1 << 20 {
        return Err(std::io::Error::other("server frame too large"));
    }
    let mut payload = vec![0; len as usize];
    tcp.read_exact(&mut payload).await?;
    Ok(ServerFrame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload,
    })
}

/// How a raw connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code (1005 if it carried none).
    Close(u16),
    /// The connection ended (EOF or reset) without a close frame.
    Dropped,
    /// Nothing ended it within the wait (or, for [`read_until_close_or`], before the frame
    /// awaited).
    StillOpen,
}

/// Reads frames until a close frame, the end of the stream, or `wait`; returns how it ended
/// and the data frames before it.
pub async fn read_until_close(tcp: &mut TcpStream, wait: Duration) -> (Ending, Vec<ServerFrame>) {
    read_until_close_or(tcp, wait, |_| false).await
}

/// As [`read_until_close`], but also stops, [`Ending::StillOpen`], at the first data frame
/// `enough` accepts (kept last in the frames returned): a test waits for the answer it
/// expects, however long a loaded machine takes, instead of a fixed quiet period.
pub async fn read_until_close_or(
    tcp: &mut TcpStream,
    wait: Duration,
    mut enough: impl FnMut(&ServerFrame) -> bool,
) -> (Ending, Vec<ServerFrame>) {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, read_frame(tcp)).await {
            Err(_) => return (Ending::StillOpen, frames),
            Ok(Err(_)) => return (Ending::Dropped, frames),
            Ok(Ok(f)) if f.opcode == OP_CLOSE => {
                let code = match f.payload.as_slice() {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                return (Ending::Close(code), frames);
            }
            Ok(Ok(f)) if f.opcode >= 0x8 => {}
            Ok(Ok(f)) => {
                let done = enough(&f);
                frames.push(f);
                if done {
                    return (Ending::StillOpen, frames);
                }
            }
        }
    }
}
