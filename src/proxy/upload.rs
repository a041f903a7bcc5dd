//! Timing of the upstream exchange around the request body. The upstream's answer is
//! timed from the end of the request body (`limits.upstream_timeout_seconds`), so an
//! upload that takes longer than that is not cut while it is still sending; while the
//! body is still arriving, the limit is progress instead: a body that delivers nothing
//! for `limits.request_body_timeout_seconds` is abandoned (408).
//!
//! [`Tracked`] wraps the body the upstream client pulls from and records when data last
//! moved and when the body ended; [`Deadline`] turns those into the next instant at
//! which the exchange times out.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// Progress shared between the body (written as the client pulls) and the timer.
#[derive(Debug)]
struct Progress {
    origin: Instant,
    /// Milliseconds after `origin` when data last moved.
    last_ms: AtomicU64,
    /// Milliseconds after `origin` + 1 when the body ended; 0 while it has not.
    ended_ms: AtomicU64,
}

impl Progress {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A request body that records its progress.
pub struct Tracked<B> {
    inner: B,
    progress: Arc<Progress>,
}

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The upstream did not answer within `upstream_timeout` of the body's end (504).
    Upstream,
    /// The request body stalled for `request_body_timeout` (408).
    Body,
}

/// When the exchange times out, as the body progresses.
#[derive(Debug, Clone)]
pub struct Deadline {
    progress: Arc<Progress>,
    upstream: Duration,
    body: Duration,
}

/// Wraps `body`; the [`Deadline`] watches it.
pub fn track<B: Body>(body: B, upstream: Duration, stall: Duration) -> (Tracked<B>, Deadline) {
    let progress = Arc::new(Progress {
        origin: Instant::now(),
        last_ms: AtomicU64::new(0),
        ended_ms: AtomicU64::new(if body.is_end_stream() { 1 } else { 0 }),
    });
    (
        Tracked {
            inner: body,
            progress: Arc::clone(&progress),
        },
        Deadline {
            progress,
            upstream,
            body: stall,
        },
    )
}

impl Deadline {
    /// The instant the exchange times out and why, as things stand now.
    #[must_use]
    pub fn next(&self) -> (Instant, Expired) {
        let p = &self.progress;
        match p.ended_ms.load(Ordering::Acquire) {
            0 => {
                let last = Duration::from_millis(p.last_ms.load(Ordering::Acquire));
                (p.origin + last + self.body, Expired::Body)
            }
            ended => {
                let ended = Duration::from_millis(ended - 1);
                (p.origin + ended + self.upstream, Expired::Upstream)
            }
        }
    }

    /// Resolves when a limit has run out (re-arming while the body makes progress).
    pub async fn expired(&self) -> Expired {
        loop {
            let (at, why) = self.next();
            tokio::time::sleep_until(at).await;
            let (again, why_now) = self.next();
            if again <= Instant::now() && why_now == why {
                return why;
            }
        }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        let p = &this.progress;
        match &r {
            Poll::Ready(Some(Ok(_))) => {
                p.last_ms.store(p.now_ms(), Ordering::Release);
                if this.inner.is_end_stream() {
                    p.ended_ms.store(p.now_ms() + 1, Ordering::Release);
                }
            }
            Poll::Ready(None) => {
                let _ = p.ended_ms.compare_exchange(
                    0,
                    p.now_ms() + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn an_empty_body_starts_the_upstream_clock_at_once() {
        let (_body, deadline) = track(
            Empty::<Bytes>::new(),
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        assert_eq!(deadline.next().1, Expired::Upstream);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(deadline.expired().await, Expired::Upstream);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_moving_upload_is_not_cut_and_the_clock_starts_at_its_end() {
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        let (mut body, deadline) = track(
            StreamBody::new(Box::pin(stream)),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        // 30 s of upload, a chunk every 4 s: longer than the upstream timeout.
        for _ in 0..8 {
            tokio::time::advance(Duration::from_secs(4)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
                .await
                .unwrap();
            assert!(body.frame().await.is_some());
            assert_eq!(deadline.next().1, Expired::Body, "still uploading");
            assert!(deadline.next().0 > Instant::now());
        }
        drop(tx);
        assert!(body.frame().await.is_none());
        let (at, why) = deadline.next();
        assert_eq!(why, Expired::Upstream);
        assert_eq!(at, Instant::now() + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_expires_as_a_body_timeout() {
        let (_body, deadline) = track(
            Full::new(Bytes::from_static(b"never polled")),
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        assert_eq!(deadline.expired().await, Expired::Body);
    }
}
