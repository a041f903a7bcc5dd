//! What a client connection is doing, watched from below hyper, so the serve loop can
//! enforce the rules hyper itself does not:
//!
//! 1. **First request head.** A connection must deliver a complete request head within
//!    `header_read_timeout` of its start, on every protocol. Reading the first bytes to
//!    choose the protocol (`server/proto.rs`) has no deadline of its own, so without
//!    this a silent connection, or an HTTP/2 preface trickled byte by byte, would live
//!    until the idle timeout.
//! 2. **HTTP/2 header blocks.** A header block (HEADERS, then CONTINUATION frames up to
//!    END_HEADERS) still open `header_read_timeout` after its HEADERS frame arrived gets
//!    the whole connection closed. RFC 9113 §6.10 forbids any other frame inside a header
//!    block, so every stream of that connection is stuck behind it anyway.
//! 3. **Idle.** No request progressing and no request-bearing bytes for `idle_timeout`:
//!    the connection is closed gracefully (GOAWAY on HTTP/2), and dropped once the grace
//!    is over. A request progresses from its head until its response body has been sent,
//!    except while the proxy holds response data the client does not take (a zero
//!    flow-control window, a full socket): a response waiting on its upstream is never
//!    cut (long polls, server-sent events), one waiting on its client for `idle_timeout`
//!    is (the send timeout of other proxies). On HTTP/2 only HEADERS, CONTINUATION and
//!    DATA frames bear requests; PING, SETTINGS, WINDOW_UPDATE, PRIORITY, RST_STREAM and
//!    GOAWAY are control traffic and keep nothing alive. On HTTP/1 every byte counts.
//!
//! [`Watched`] wraps the (decrypted) client stream and feeds each read to a [`Sniffer`],
//! which parses nothing but the 24-byte HTTP/2 preface and the 9-byte frame headers;
//! payloads are skipped, never buffered. Requests in flight report to the watch through
//! `server/inflight.rs`, including when they wait on the client.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Where the sniffer is in the inbound byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Comparing the first bytes with the HTTP/2 preface; this many matched so far.
    Preface(usize),
    /// Not HTTP/2: every byte bears a request.
    Http1,
    /// Collecting a frame header; `have` bytes of it so far.
    FrameHeader {
        buf: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    /// Skipping a frame payload.
    Payload {
        left: u32,
        bearing: bool,
        ends_block: bool,
    },
}

/// The protocol a connection's first bytes chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Anything but the HTTP/2 preface.
    Http1,
    /// The HTTP/2 preface (prior knowledge).
    Http2,
}

/// What one chunk of inbound bytes contained.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Request-bearing bytes: any byte on HTTP/1, HEADERS / CONTINUATION / DATA frame
    /// bytes on HTTP/2.
    pub request_bytes: bool,
    /// An HTTP/2 header block began (a HEADERS frame header arrived).
    pub block_started: bool,
    /// An HTTP/2 header block was completed (the last byte of its END_HEADERS frame).
    pub block_completed: bool,
}

/// A streaming parser of the inbound side of a connection: the HTTP/2 preface, then
/// frame headers only. It holds at most one frame header (9 bytes) and copes with any
/// split of the stream into reads.
#[derive(Debug)]
pub(crate) struct Sniffer {
    phase: Phase,
    block_open: bool,
}

impl Default for Sniffer {
    fn default() -> Self {
        Self {
            phase: Phase::Preface(0),
            block_open: false,
        }
    }
}

impl Sniffer {
    /// The protocol the first bytes chose: `None` while they still match a part of the
    /// HTTP/2 preface.
    pub(crate) fn protocol(&self) -> Option<Protocol> {
        match self.phase {
            Phase::Preface(_) => None,
            Phase::Http1 => Some(Protocol::Http1),
            Phase::FrameHeader { .. } | Phase::Payload { .. } => Some(Protocol::Http2),
        }
    }

    /// Whether an HTTP/2 header block is open now.
    pub(crate) fn block_open(&self) -> bool {
        self.block_open
    }

    /// Consumes the next inbound bytes.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Seen {
        let mut seen = Seen::default();
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Preface(matched) => {
                    let want = &PREFACE[*matched..];
                    let n = want.len().min(bytes.len());
                    if bytes[..n] != want[..n] {
                        self.phase = Phase::Http1;
                        continue;
                    }
                    *matched += n;
                    bytes = &bytes[n..];
                    if *matched == PREFACE.len() {
                        self.phase = Phase::FrameHeader {
                            buf: [0; FRAME_HEADER_LEN],
                            have: 0,
                        };
                    }
                }
                Phase::Http1 => {
                    seen.request_bytes = true;
                    return seen;
                }
                Phase::FrameHeader { buf, have } => {
                    let n = (FRAME_HEADER_LEN - *have).min(bytes.len());
                    buf[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == FRAME_HEADER_LEN {
                        let buf = *buf;
                        self.frame_header(&buf, &mut seen);
                    }
                }
                Phase::Payload {
                    left,
                    bearing,
                    ends_block,
                } => {
                    let n = bytes
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    // n <= left, which is a u32.
                    *left -= u32::try_from(n).unwrap_or(*left);
                    bytes = &bytes[n..];
                    seen.request_bytes |= *bearing;
                    if *left == 0 {
                        let ends_block = *ends_block;
                        self.frame_done(ends_block, &mut seen);
                    }
                }
            }
        }
        seen
    }

    fn frame_header(&mut self, h: &[u8; FRAME_HEADER_LEN], seen: &mut Seen) {
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let (kind, flags) = (h[3], h[4]);
        let bearing = matches!(kind, DATA | HEADERS | CONTINUATION);
        seen.request_bytes |= bearing;
        let ends_block = match kind {
            HEADERS => {
                self.block_open = true;
                seen.block_started = true;
                flags & END_HEADERS != 0
            }
            CONTINUATION => flags & END_HEADERS != 0,
            _ => false,
        };
        if len == 0 {
            self.frame_done(ends_block, seen);
        } else {
            self.phase = Phase::Payload {
                left: len,
                bearing,
                ends_block,
            };
        }
    }

    fn frame_done(&mut self, ends_block: bool, seen: &mut Seen) {
        if ends_block && self.block_open {
            self.block_open = false;
            seen.block_completed = true;
        }
        self.phase = Phase::FrameHeader {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        };
    }
}

/// The connection-level timeouts the watch enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Rules 1 and 2.
    pub header_read_timeout: Duration,
    /// Rule 3.
    pub idle_timeout: Duration,
}

/// Why a connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// Rule 1: no complete request head within the header read timeout.
    NoRequestHead,
    /// Rule 2: an HTTP/2 header block stayed open past the header read timeout.
    SlowHeaderBlock,
    /// Rule 3: nothing progressing and no request bytes for the idle timeout.
    Idle,
}

impl Close {
    /// Whether the connection is dropped at once rather than closed gracefully.
    pub(crate) fn is_abrupt(self) -> bool {
        matches!(self, Self::SlowHeaderBlock)
    }
}

/// The verdict on a connection at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep serving; look again at this instant (or when the connection ends).
    Open(Instant),
    /// Close it.
    Close(Close),
}

const NONE: u64 = u64::MAX;

/// Shared state of one connection: written by [`Watched`] and [`InFlight`], read by the
/// serve loop. Times are milliseconds since the connection started.
#[derive(Debug)]
pub(crate) struct ConnWatch {
    origin: Instant,
    /// Request bytes arrived, or a request finished or began waiting on the client.
    last_activity_ms: AtomicU64,
    block_since_ms: AtomicU64,
    first_head: AtomicBool,
    /// The connection speaks HTTP/1 (one response at a time).
    http1: AtomicBool,
    in_flight: AtomicUsize,
    /// Requests in flight that are not waiting on the client.
    progressing: AtomicUsize,
}

impl ConnWatch {
    pub(crate) fn new(origin: Instant) -> Arc<Self> {
        Arc::new(Self {
            origin,
            last_activity_ms: AtomicU64::new(0),
            block_since_ms: AtomicU64::new(NONE),
            first_head: AtomicBool::new(false),
            http1: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            progressing: AtomicUsize::new(0),
        })
    }

    fn touch(&self, now: Instant) {
        self.last_activity_ms
            .fetch_max(self.ms(now), Ordering::Relaxed);
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// Records what a read contained; `block_open` is the sniffer's state after it.
    pub(crate) fn observe(&self, seen: Seen, block_open: bool, now: Instant) {
        let ms = self.ms(now);
        if seen.request_bytes {
            self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
        }
        if seen.block_completed {
            self.first_head.store(true, Ordering::Relaxed);
        }
        if !block_open {
            self.block_since_ms.store(NONE, Ordering::Relaxed);
        } else if seen.block_started {
            self.block_since_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// A request head arrived and is now in flight.
    pub(crate) fn request_entered(&self) {
        self.first_head.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.progressing.fetch_add(1, Ordering::Relaxed);
    }

    /// A request in flight began waiting on the client: the idle clock runs from `now`.
    pub(crate) fn stopped_progressing(&self, now: Instant) {
        self.touch(now);
        self.progressing.fetch_sub(1, Ordering::Release);
    }

    /// A request waiting on the client progresses again.
    pub(crate) fn progressing_again(&self) {
        self.progressing.fetch_add(1, Ordering::Relaxed);
    }

    /// A request left (`progressing`: it was not waiting on the client); its end is
    /// activity, so the idle clock starts at `now`.
    pub(crate) fn request_left(&self, progressing: bool, now: Instant) {
        self.touch(now);
        if progressing {
            self.progressing.fetch_sub(1, Ordering::Release);
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the connection speaks HTTP/1 (known once its first bytes arrived).
    pub(crate) fn is_http1(&self) -> bool {
        self.http1.load(Ordering::Relaxed)
    }

    /// Requests in flight on this connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// When rule 3 closes the connection, if nothing changes; `None` while a request
    /// progresses.
    fn idle_deadline(&self, rules: &Rules) -> Option<Instant> {
        // Acquire pairs with the Release in `InFlight`: the touch made before a request
        // stopped progressing is visible here.
        if self.progressing.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = self.at(self.last_activity_ms.load(Ordering::Relaxed));
        Some(last + rules.idle_timeout)
    }

    /// Rule 3 holds at `now`.
    pub(crate) fn is_idle(&self, rules: &Rules, now: Instant) -> bool {
        self.idle_deadline(rules).is_some_and(|d| now >= d)
    }

    /// Applies the three rules at `now`.
    pub(crate) fn verdict(&self, rules: &Rules, now: Instant) -> Verdict {
        let hrt = rules.header_read_timeout;
        // Never sleep past one header read timeout: a header block opening meanwhile
        // must be looked at in time. Later deadlines are recomputed on waking.
        let mut next = now + hrt.min(rules.idle_timeout);
        if !self.first_head.load(Ordering::Relaxed) {
            let deadline = self.origin + hrt;
            if now >= deadline {
                return Verdict::Close(Close::NoRequestHead);
            }
            next = next.min(deadline);
        }
        let since = self.block_since_ms.load(Ordering::Relaxed);
        if since != NONE {
            let deadline = self.at(since) + hrt;
            if now >= deadline {
                return Verdict::Close(Close::SlowHeaderBlock);
            }
            next = next.min(deadline);
        }
        if let Some(deadline) = self.idle_deadline(rules) {
            if now >= deadline {
                return Verdict::Close(Close::Idle);
            }
            next = next.min(deadline);
        }
        Verdict::Open(next)
    }
}

/// The client stream, reporting what arrives to the connection's [`ConnWatch`].
/// Writes pass through untouched: what the proxy sends is never client activity. The
/// first bytes, read to choose the protocol (`server/proto.rs`), are replayed to hyper
/// from here, and not reported twice.
pub(crate) struct Watched<T> {
    inner: T,
    sniffer: Sniffer,
    watch: Arc<ConnWatch>,
    replay: [u8; PREFACE.len()],
    /// Bytes of `replay` handed out so far, and how many there are.
    replayed: u8,
    replay_len: u8,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, watch: Arc<ConnWatch>) -> Self {
        Self {
            inner,
            sniffer: Sniffer::default(),
            watch,
            replay: [0; PREFACE.len()],
            replayed: 0,
            replay_len: 0,
        }
    }

    /// The next reads return the first `len` bytes of `bytes` before anything else.
    /// The protocol the bytes read so far chose (see [`Sniffer::protocol`]).
    pub(crate) fn protocol(&self) -> Option<Protocol> {
        self.sniffer.protocol()
    }

    pub(crate) fn replay(&mut self, bytes: [u8; PREFACE.len()], len: u8) {
        self.replay = bytes;
        self.replayed = 0;
        self.replay_len = len;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.replay_len {
            let end = usize::from(this.replay_len).min(PREFACE.len());
            let rest = this
                .replay
                .get(usize::from(this.replayed)..end)
                .unwrap_or(&[]);
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            // n <= rest.len() <= 24.
            this.replayed += u8::try_from(n).unwrap_or(0);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            let seen = this.sniffer.feed(new);
            if seen != Seen::default() {
                this.watch
                    .observe(seen, this.sniffer.block_open(), Instant::now());
            }
            if this.sniffer.protocol() == Some(Protocol::Http1) && !this.watch.is_http1() {
                this.watch.http1.store(true, Ordering::Relaxed);
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `bytes` in pieces of `split` bytes and merges what was seen.
    fn feed_split(s: &mut Sniffer, bytes: &[u8], split: usize) -> Seen {
        let mut all = Seen::default();
        for chunk in bytes.chunks(split) {
            let seen = s.feed(chunk);
            all.request_bytes |= seen.request_bytes;
            all.block_started |= seen.block_started;
            all.block_completed |= seen.block_completed;
        }
        all
    }

    fn h2(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    const PING: u8 = 0x6;
    const SETTINGS: u8 = 0x4;
    const WINDOW_UPDATE: u8 = 0x8;
    const RST_STREAM: u8 = 0x3;

    #[test]
    fn control_frames_are_not_request_bytes_at_any_split() {
        let bytes = h2(&[
            frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]),
            frame(PING, 0, 0, &[7; 8]),
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]),
            frame(SETTINGS, 1, 0, &[]),
            frame(PING, 0, 0, &[8; 8]),
        ]);
        for split in 1..=bytes.len() {
            let mut s = Sniffer::default();
            assert_eq!(
                feed_split(&mut s, &bytes, split),
                Seen::default(),
                "split {split}"
            );
            assert!(!s.block_open());
        }
    }

    #[test]
    fn headers_and_data_are_request_bytes_and_a_complete_block_closes() {
        let bytes = h2(&[
            frame(SETTINGS, 0, 0, &[]),
            frame(HEADERS, END_HEADERS, 1, &[0x82; 20]),
            frame(DATA, 1, 1, b"hello"),
        ]);
        for split in 1..=bytes.len() {
            let mut s = Sniffer::default();
            let seen = feed_split(&mut s, &bytes, split);
            assert!(seen.request_bytes && seen.block_started && seen.block_completed);
            assert!(!s.block_open(), "split {split}");
        }
    }

    #[test]
    fn a_header_block_stays_open_until_the_end_headers_frame_has_fully_arrived() {
        let mut s = Sniffer::default();
        let start = h2(&[
            frame(HEADERS, 0, 1, &[0x82; 10]),
            frame(CONTINUATION, 0, 1, &[0x84; 10]),
        ]);
        let seen = feed_split(&mut s, &start, 3);
        assert!(seen.block_started && !seen.block_completed);
        assert!(s.block_open());
        let last = frame(CONTINUATION, END_HEADERS, 1, &[0x86; 10]);
        // Everything but the last payload byte: still open.
        assert!(!s.feed(&last[..last.len() - 1]).block_completed);
        assert!(s.block_open());
        assert!(s.feed(&last[last.len() - 1..]).block_completed);
        assert!(!s.block_open());
    }

    #[test]
    fn an_empty_end_headers_continuation_closes_the_block() {
        let mut s = Sniffer::default();
        s.feed(&h2(&[frame(HEADERS, 0, 1, &[0x82])]));
        assert!(s.block_open());
        assert!(
            s.feed(&frame(CONTINUATION, END_HEADERS, 1, &[]))
                .block_completed
        );
        assert!(!s.block_open());
    }

    #[test]
    fn rst_stream_after_headers_is_not_activity() {
        let mut s = Sniffer::default();
        s.feed(&h2(&[frame(HEADERS, END_HEADERS | 1, 1, &[0x82])]));
        assert_eq!(
            s.feed(&frame(RST_STREAM, 0, 1, &[0, 0, 0, 8])),
            Seen::default()
        );
    }

    #[test]
    fn anything_but_the_preface_is_http1_and_every_byte_counts() {
        for input in [&b"GET / HTTP/1.1\r\n"[..], b"P", b"PRI * HTTP/1.1"] {
            let mut s = Sniffer::default();
            let seen = feed_split(&mut s, input, 1);
            // A prefix of the preface (b"P") is not yet known to be HTTP/1.
            assert_eq!(seen.request_bytes, input != b"P", "{input:?}");
            assert!(!s.block_open());
        }
        let mut s = Sniffer::default();
        s.feed(b"PRI * HTTP/2");
        assert!(s.feed(b"x").request_bytes, "a wrong byte mid-preface");
    }

    #[tokio::test]
    async fn replayed_bytes_come_first_and_are_reported_once() {
        use tokio::io::AsyncReadExt;
        let w = ConnWatch::new(Instant::now());
        let mut io = Watched::new(&b"GET / HTTP/1.1\r\n"[..], Arc::clone(&w));
        let mut first = [0; PREFACE.len()];
        let n = io.read(&mut first[..3]).await.unwrap();
        assert_eq!(&first[..n], b"GET");
        io.replay(first, 3);
        let mut out = Vec::new();
        io.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"GET / HTTP/1.1\r\n");
        assert!(w.is_http1());
    }

    #[test]
    fn a_trickled_preface_is_not_activity() {
        let mut s = Sniffer::default();
        for b in PREFACE {
            assert_eq!(s.feed(&[*b]), Seen::default());
        }
    }

    fn rules() -> Rules {
        Rules {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_connection_without_a_request_head_closes_after_the_header_read_timeout() {
        let t0 = Instant::now();
        let w = ConnWatch::new(t0);
        assert_eq!(
            w.verdict(&rules(), t0),
            Verdict::Open(t0 + Duration::from_secs(10))
        );
        assert_eq!(
            w.verdict(&rules(), t0 + Duration::from_secs(10)),
            Verdict::Close(Close::NoRequestHead)
        );
    }

    #[test]
    fn an_open_header_block_closes_the_connection_after_the_header_read_timeout() {
        let t0 = Instant::now();
        let w = ConnWatch::new(t0);
        // An earlier request on the connection completed its head.
        w.first_head.store(true, Ordering::Relaxed);
        let started = Seen {
            request_bytes: true,
            block_started: true,
            block_completed: false,
        };
        let t1 = t0 + Duration::from_secs(3);
        w.observe(started, true, t1);
        // More CONTINUATION bytes do not move the block's start.
        let more = Seen {
            request_bytes: true,
            ..Seen::default()
        };
        w.observe(more, true, t1 + Duration::from_secs(5));
        let verdict = w.verdict(&rules(), t1 + Duration::from_secs(9));
        assert_eq!(verdict, Verdict::Open(t1 + Duration::from_secs(10)));
        assert_eq!(
            w.verdict(&rules(), t1 + Duration::from_secs(10)),
            Verdict::Close(Close::SlowHeaderBlock)
        );
    }
}
