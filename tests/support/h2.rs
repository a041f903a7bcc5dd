//! A tiny HTTP/2 frame writer and reader for h2c (prior knowledge) on the plain
//! listener: frames and HPACK literals written by hand, so that tests can send what no
//! well-behaved client would (floods, resets, trickled blocks, zero windows).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    assert_eq!(len[0], 0, "frame too long");
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, v) in values {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub fn rst(stream: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes())
}

/// An HPACK literal without indexing whose name is static-table entry `index`.
pub fn literal(block: &mut Vec<u8>, index: u8, value: &str) {
    assert!(index < 15 && value.len() < 127);
    block.push(index);
    block.push(u8::try_from(value.len()).unwrap());
    block.extend_from_slice(value.as_bytes());
}

/// The header block of `GET path` (`:method GET`, `:scheme http` indexed).
pub fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    literal(&mut b, 4, path);
    literal(&mut b, 1, "localhost");
    b
}

/// A whole `GET path` request on `stream`, without a body.
pub fn get(stream: u32, path: &str) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &get_block(path))
}

#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub async fn read_frame(r: &mut OwnedReadHalf) -> std::io::Result<Frame> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]);
    let mut payload = vec![0; usize::try_from(len).unwrap()];
    r.read_exact(&mut payload).await?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Opens an h2c connection: preface and an initial SETTINGS frame.
pub async fn h2_connect(
    addr: SocketAddr,
    values: &[(u16, u32)],
) -> (OwnedReadHalf, OwnedWriteHalf) {
    h2_connect_from([127, 0, 0, 1].into(), addr, values).await
}

/// [`h2_connect`] from another loopback source address (all of 127/8 is loopback on
/// Linux), to act as a different client address.
pub async fn h2_connect_from(
    local: std::net::Ipv4Addr,
    addr: SocketAddr,
    values: &[(u16, u32)],
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    let s: TcpStream = socket.connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(PREFACE).await.unwrap();
    w.write_all(&settings(values)).await.unwrap();
    (r, w)
}

/// Reads until `stream` ends; returns whether its response head was `:status 200`.
pub async fn read_response(r: &mut OwnedReadHalf, stream: u32) -> bool {
    let mut ok = false;
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), read_frame(r))
            .await
            .expect("no response within 10 s")
            .expect("connection closed before the response");
        if f.stream != stream {
            continue;
        }
        assert_ne!(f.kind, RST_STREAM, "stream {stream} was reset");
        if f.kind == HEADERS && !ok {
            // hyper encodes `:status 200` as static-table entry 8.
            ok = f.payload.first() == Some(&0x88);
        }
        if matches!(f.kind, HEADERS | DATA) && f.flags & END_STREAM != 0 {
            return ok;
        }
    }
}

/// How a connection ended, seen from the client.
#[derive(Debug)]
pub struct Ended {
    pub after: Duration,
    /// Error code of the last GOAWAY, if one came.
    pub goaway: Option<u32>,
    pub pongs: usize,
}

/// Reads (and discards) until the proxy closes the connection; panics after `bound`.
pub async fn until_closed(r: &mut OwnedReadHalf, since: Instant, bound: Duration) -> Ended {
    let mut ended = Ended {
        after: Duration::ZERO,
        goaway: None,
        pongs: 0,
    };
    let read_all = async {
        while let Ok(f) = read_frame(r).await {
            if f.kind == GOAWAY && f.payload.len() >= 8 {
                ended.goaway = Some(u32::from_be_bytes(f.payload[4..8].try_into().unwrap()));
            }
            if f.kind == PING && f.flags & ACK != 0 {
                ended.pongs += 1;
            }
        }
    };
    let left = bound.saturating_sub(since.elapsed());
    assert!(
        tokio::time::timeout(left, read_all).await.is_ok(),
        "connection still open {bound:?} later"
    );
    ended.after = since.elapsed();
    ended
}

/// Reads frames until `stream`'s response head arrives; returns its first header byte
/// (hyper encodes `:status 200` as 0x88) or `None` if the stream was reset.
pub async fn response_head(r: &mut OwnedReadHalf, stream: u32) -> Option<u8> {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), read_frame(r))
            .await
            .expect("no response head within 10 s")
            .expect("connection closed before the response head");
        if f.stream == stream && f.kind == RST_STREAM {
            return None;
        }
        if f.stream == stream && f.kind == HEADERS {
            return f.payload.first().copied();
        }
    }
}
