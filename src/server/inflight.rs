//! Requests in flight, from the moment hyper hands a request head over until its
//! response body has ended, failed or been dropped:
//!
//! - [`Permits`]: the global cap (`limits.max_in_flight_requests`) on requests and
//!   HTTP/2 streams in flight across every connection, and the share one client
//!   address may hold (`limits.max_in_flight_requests_per_ip`). A request over either
//!   is answered 503 at once, before any work, so stalled clients cannot pile up
//!   upstream connections and buffers without bound, nor one address starve others.
//! - [`InFlight`]: counts one request on its connection's [`ConnWatch`] and in the
//!   `requests_in_flight` gauge, and holds its permit, until dropped (a client that
//!   disconnects mid-request cannot leak the count).
//! - [`GuardedBody`]: the response body, carrying the guard. hyper asks it for the next
//!   frame only when the client can take more, so between handing out a frame (or the
//!   response head) and the next poll the request waits on the client.
//! - [`Streams`]: one connection's responses. The serve loop calls
//!   [`Streams::abandon_stalled`]: a response the client has taken nothing of for
//!   `limits.send_timeout_seconds` has its upstream body and guard dropped at once
//!   (upstream connection, buffers and permit released); hyper resets its stream
//!   (HTTP/2) or closes the connection (HTTP/1) when it next looks at it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntGauge;
use std::net::IpAddr;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::conn::ConnWatch;
use super::per_ip::{PerIp, Slot as AddressSlot};
use crate::proxy::ProxyBody;

/// The caps on requests in flight: global, and per client address.
#[derive(Debug, Clone)]
pub(crate) struct Permits {
    global: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
}

/// A request's place under the caps; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    _global: OwnedSemaphorePermit,
    _per_ip: Option<AddressSlot>,
}

/// Which cap refused a request (its metric reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `limits.max_in_flight_requests`.
    Global,
    /// `limits.max_in_flight_requests_per_ip`.
    PerIp,
}

impl Refused {
    /// The reason logged and counted.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Global => "in_flight_limit",
            Self::PerIp => "per_ip_in_flight_limit",
        }
    }
}

impl Permits {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max)),
            per_ip: Arc::new(PerIp::default()),
        }
    }

    /// A place for one more request from `ip` (`None`: exempt from the per-address
    /// cap), at most `per_ip_cap` from one address.
    pub(crate) fn try_take(
        &self,
        ip: Option<IpAddr>,
        per_ip_cap: Option<usize>,
    ) -> Result<Permit, Refused> {
        let global = Arc::clone(&self.global)
            .try_acquire_owned()
            .map_err(|_| Refused::Global)?;
        let per_ip = match (ip, per_ip_cap) {
            (Some(ip), Some(cap)) => Some(self.per_ip.try_enter(ip, cap).ok_or(Refused::PerIp)?),
            _ => None,
        };
        Ok(Permit {
            _global: global,
            _per_ip: per_ip,
        })
    }
}

/// One request in progress (see the module docs).
pub(crate) struct InFlight {
    watch: Arc<ConnWatch>,
    gauge: IntGauge,
    /// Since when the proxy has held response data the client has not taken; `None`
    /// while the request progresses (the send timeout and the idle rule read this).
    waiting_since: Option<Instant>,
    _permit: Option<Permit>,
}

impl InFlight {
    /// Counts a request whose head has just arrived.
    pub(crate) fn enter(watch: &Arc<ConnWatch>, gauge: IntGauge, permit: Option<Permit>) -> Self {
        watch.request_entered();
        gauge.inc();
        Self {
            watch: Arc::clone(watch),
            gauge,
            waiting_since: None,
            _permit: permit,
        }
    }

    /// The proxy holds response data for the client (or is about to send the first);
    /// the idle clock runs from now until the client takes it.
    fn wait_on_client(&mut self) {
        if self.waiting_since.is_none() {
            let now = Instant::now();
            self.waiting_since = Some(now);
            self.watch.stopped_progressing(now);
        }
    }

    /// The client took what it was given: the request progresses again.
    fn progress(&mut self) {
        if self.waiting_since.take().is_some() {
            self.watch.progressing_again();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.watch
            .request_left(self.waiting_since.is_none(), Instant::now());
        self.gauge.dec();
    }
}

/// Why a response body ended early.
#[derive(Debug, thiserror::Error)]
enum Abandoned {
    /// The send timeout passed with the client taking nothing.
    #[error("the client took nothing of the response for the send timeout")]
    SendTimeout,
}

/// What a response still holds while it lives: the upstream body and its guard.
struct Held {
    body: ProxyBody,
    guard: InFlight,
}

/// One response, shared by its body (polled by hyper) and the connection's [`Streams`]:
/// the upstream body and guard, `None` once ended or abandoned.
#[derive(Default)]
struct Stream(Mutex<Option<Held>>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The responses of one connection, for the send timeout.
#[derive(Default)]
pub(crate) struct Streams {
    list: Mutex<List>,
}

#[derive(Default)]
struct List {
    entries: Vec<Weak<Stream>>,
    /// Length after the last sweep.
    swept: usize,
}

impl List {
    fn sweep(&mut self) {
        self.entries.retain(|w| w.strong_count() > 0);
        self.swept = self.entries.len();
    }
}

impl Streams {
    fn register(&self, stream: &Arc<Stream>) {
        let mut list = lock(&self.list);
        // Finished responses leave dead entries: sweep once the list has doubled since
        // the last sweep, so it stays within twice the live responses (plus a
        // constant) at an amortized constant cost per response.
        if list.entries.len() >= 16.max(2 * list.swept) {
            list.sweep();
        }
        list.entries.push(Arc::downgrade(stream));
    }

    /// Abandons every response that has waited on its client for `timeout` by `now`;
    /// returns how many it abandoned and when the next one would be due.
    pub(crate) fn abandon_stalled(
        &self,
        timeout: Duration,
        now: Instant,
    ) -> (usize, Option<Instant>) {
        let live: Vec<Arc<Stream>> = {
            let mut list = lock(&self.list);
            list.sweep();
            list.entries.iter().filter_map(Weak::upgrade).collect()
        };
        let mut abandoned = 0;
        let mut next: Option<Instant> = None;
        for stream in live {
            let mut slot = lock(&stream.0);
            let Some(since) = slot.as_ref().and_then(|h| h.guard.waiting_since) else {
                continue;
            };
            let due = since + timeout;
            if now >= due {
                let held = slot.take();
                // Dropped outside the lock: the body's drop releases the upstream.
                drop(slot);
                drop(held);
                abandoned += 1;
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        (abandoned, next)
    }
}

/// A response body that keeps its request's [`InFlight`] guard until the body has
/// ended, failed, been dropped, or been abandoned by the send timeout.
pub(crate) struct GuardedBody {
    stream: Arc<Stream>,
    end_stream: bool,
    hint: SizeHint,
}

impl GuardedBody {
    /// Wraps `body`; the request now waits on the client for its response head.
    pub(crate) fn new(body: ProxyBody, mut guard: InFlight, streams: &Streams) -> Self {
        guard.wait_on_client();
        let end_stream = body.is_end_stream();
        let hint = body.size_hint();
        let stream = Arc::new(Stream(Mutex::new(Some(Held { body, guard }))));
        streams.register(&stream);
        Self {
            stream,
            end_stream,
            hint,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut slot = lock(&this.stream.0);
        let Some(held) = slot.as_mut() else {
            this.end_stream = true;
            return Poll::Ready(Some(Err(Abandoned::SendTimeout.into())));
        };
        held.guard.progress();
        let r = Pin::new(&mut held.body).poll_frame(cx);
        match r {
            Poll::Ready(Some(Ok(frame))) => {
                held.guard.wait_on_client();
                this.hint = held.body.size_hint();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                let done = slot.take();
                drop(slot);
                drop(done);
                this.end_stream = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let done = slot.take();
                drop(slot);
                drop(done);
                this.end_stream = true;
                Poll::Ready(Some(Err(e.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_stream
            || lock(&self.stream.0)
                .as_ref()
                .is_some_and(|h| h.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::conn::Rules;
    use http_body_util::BodyExt;

    fn rules() -> Rules {
        Rules {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    fn gauge() -> IntGauge {
        IntGauge::new("g", "g").unwrap()
    }

    fn full(data: &'static [u8]) -> ProxyBody {
        http_body_util::Full::new(Bytes::from_static(data))
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed()
    }

    /// A response body whose upstream never sends anything.
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            Poll::Pending
        }
    }

    fn poll(body: &mut GuardedBody) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(body).poll_frame(&mut cx)
    }

    #[test]
    fn control_frames_do_not_hold_off_the_idle_rule_but_requests_in_flight_do() {
        let t0 = Instant::now();
        let w = ConnWatch::new(t0);
        let guard = InFlight::enter(&w, gauge(), None);
        assert_eq!(w.in_flight(), 1);
        // A long response: never idle while it lasts.
        assert!(!w.is_idle(&rules(), t0 + Duration::from_secs(600)));
        drop(guard);
        assert_eq!(w.in_flight(), 0);
        assert!(w.is_idle(&rules(), Instant::now() + Duration::from_secs(61)));
    }

    #[test]
    fn the_in_flight_gauge_and_permit_return_when_a_guarded_body_is_dropped_unfinished() {
        let gauge = gauge();
        let permits = Permits::new(1);
        let w = ConnWatch::new(Instant::now());
        let streams = Streams::default();
        let permit = permits.try_take(None, None).ok();
        assert!(permit.is_some());
        let body = GuardedBody::new(
            full(b"x"),
            InFlight::enter(&w, gauge.clone(), permit),
            &streams,
        );
        assert_eq!(gauge.get(), 1);
        assert!(
            permits.try_take(None, None).ok().is_none(),
            "the cap is reached"
        );
        drop(body);
        assert_eq!((gauge.get(), w.in_flight()), (0, 0));
        assert!(
            permits.try_take(None, None).ok().is_some(),
            "the permit came back"
        );
    }

    #[test]
    fn a_response_waiting_on_its_upstream_progresses_but_one_waiting_on_its_client_idles() {
        let w = ConnWatch::new(Instant::now());
        let gauge = gauge();
        let streams = Streams::default();
        let mut body = GuardedBody::new(
            Silent.boxed(),
            InFlight::enter(&w, gauge.clone(), None),
            &streams,
        );
        // The head is out but the body was never asked for (a zero window): the
        // client takes nothing, so the idle clock runs.
        assert!(w.is_idle(&rules(), Instant::now() + Duration::from_secs(61)));
        // Asked for, with the upstream silent (server-sent events): never idle.
        assert!(poll(&mut body).is_pending());
        assert!(!w.is_idle(&rules(), Instant::now() + Duration::from_secs(3600)));
        assert_eq!(gauge.get(), 1);

        let mut data = GuardedBody::new(
            full(b"data"),
            InFlight::enter(&w, gauge.clone(), None),
            &streams,
        );
        assert!(matches!(poll(&mut data), Poll::Ready(Some(Ok(_)))));
        drop(body);
        // Data handed out and not asked for again: waiting on the client.
        assert!(w.is_idle(&rules(), Instant::now() + Duration::from_secs(61)));
        assert!(matches!(poll(&mut data), Poll::Ready(None)));
        assert_eq!((w.in_flight(), gauge.get()), (0, 0), "the end of the body");
    }

    #[test]
    fn a_response_its_client_takes_nothing_of_is_abandoned_after_the_send_timeout() {
        let w = ConnWatch::new(Instant::now());
        let gauge = gauge();
        let permits = Permits::new(2);
        let streams = Streams::default();
        let timeout = Duration::from_secs(30);
        let mut stalled = GuardedBody::new(
            full(b"never taken"),
            InFlight::enter(&w, gauge.clone(), permits.try_take(None, None).ok()),
            &streams,
        );
        let mut waiting_upstream = GuardedBody::new(
            Silent.boxed(),
            InFlight::enter(&w, gauge.clone(), permits.try_take(None, None).ok()),
            &streams,
        );
        assert!(poll(&mut waiting_upstream).is_pending());
        let soon = Instant::now() + Duration::from_secs(1);
        let (n, next) = streams.abandon_stalled(timeout, soon);
        assert_eq!(n, 0);
        assert!(
            next.is_some_and(|d| d > soon),
            "the stalled one is due later"
        );

        let late = Instant::now() + Duration::from_secs(31);
        assert_eq!(streams.abandon_stalled(timeout, late), (1, None));
        // Its permit and count are back at once, before hyper looks at it again.
        assert_eq!((w.in_flight(), gauge.get()), (1, 1));
        assert!(permits.try_take(None, None).ok().is_some());
        assert!(matches!(poll(&mut stalled), Poll::Ready(Some(Err(_)))));
        // The response waiting on its upstream (a long poll) is never abandoned.
        assert!(poll(&mut waiting_upstream).is_pending());
    }

    #[test]
    fn finished_responses_do_not_accumulate_in_the_connection_list() {
        let w = ConnWatch::new(Instant::now());
        let streams = Streams::default();
        for _ in 0..10_000 {
            let mut b = GuardedBody::new(full(b"x"), InFlight::enter(&w, gauge(), None), &streams);
            while let Poll::Ready(Some(_)) = poll(&mut b) {}
        }
        assert!(lock(&streams.list).entries.len() <= 32);
    }
}
