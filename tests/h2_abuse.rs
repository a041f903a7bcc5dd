//! Connection abuse over real sockets, HTTP/2 frames written by hand (h2c prior
//! knowledge on the plain listener): connections that never send a request, PING-only
//! and trickled connections, trickled and flooded header blocks, rapid reset
//! (CVE-2023-44487), CONTINUATION floods (CVE-2024-27316), SETTINGS and PING floods,
//! zero-window stalls, the per-address connection cap, and the in-flight gauge when
//! clients vanish mid-request, and the idle rule's line between a response waiting on
//! its upstream (kept) and one waiting on its client (cut). The floods that claim
//! bounded memory run against the real binary and read its VmRSS from /proc.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame as BodyFrame;
use support::h2::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

/// Waits until a plain socket is closed by the proxy (EOF or reset); returns when.
async fn until_eof(s: &mut TcpStream, since: Instant, bound: Duration) -> Duration {
    let mut buf = [0u8; 4096];
    let read_all = async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    };
    let left = bound.saturating_sub(since.elapsed());
    assert!(
        tokio::time::timeout(left, read_all).await.is_ok(),
        "connection still open {bound:?} later"
    );
    since.elapsed()
}

// ---------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------

/// An in-process sidecar with short timeouts: header read 1 s, idle 2 s.
async fn short_timeouts() -> Env {
    Env::configured(
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 2\n",
    )
    .await
}

/// An upstream answering every request with `size` bytes; counts requests.
async fn big_upstream(size: usize) -> (SocketAddr, Arc<AtomicUsize>, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(Notify::new());
    let body = Bytes::from(vec![b'z'; size]);
    let (c, a) = (Arc::clone(&count), Arc::clone(&arrived));
    cognito_sidecar::demo::spawn_server(listener, move |_req| {
        let (c, a, body) = (Arc::clone(&c), Arc::clone(&a), body.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            a.notify_waiters();
            Response::new(Full::new(body))
        }
    });
    (addr, count, arrived)
}

async fn wait_count(count: &AtomicUsize, arrived: &Notify, n: usize) {
    wait_notified(arrived, "requests at the upstream", || {
        count.load(Ordering::SeqCst) >= n
    })
    .await;
}

/// Growth allowed for a flood against the real binary.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// A normal client's request during an attack: must still get its answer.
async fn served(client: &reqwest::Client, url: &str) {
    let r = tokio::time::timeout(Duration::from_secs(10), client.get(url).send())
        .await
        .expect("a normal client waited 10 s during the attack")
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------
// Class 8: connections held open (PING-only, silent, trickled)
// ---------------------------------------------------------------------------

/// Sends a PING every 100 ms until the connection fails.
fn spawn_pinger(mut w: OwnedWriteHalf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 0u64.. {
            let ping = frame(PING, 0, 0, &i.to_be_bytes());
            if w.write_all(&ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test]
async fn an_h2_connection_that_only_pings_after_its_request_is_closed_after_the_idle_timeout() {
    let env = short_timeouts().await;
    let (mut r, mut w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    w.write_all(&get(1, "/public/x")).await.unwrap();
    assert!(read_response(&mut r, 1).await, "first request not served");
    let served_at = Instant::now();
    // PINGs keep coming and are answered, but they are not requests.
    let pinger = spawn_pinger(w);
    let ended = until_closed(&mut r, served_at, Duration::from_secs(10)).await;
    pinger.abort();
    assert!(ended.goaway.is_some(), "closed without GOAWAY: {ended:?}");
    assert!(ended.pongs > 5, "PINGs were not answered: {ended:?}");
    assert!(
        ended.after >= Duration::from_millis(1500),
        "closed before the idle timeout: {ended:?}"
    );
}

#[tokio::test]
async fn an_h2_connection_that_sends_only_pings_is_closed_after_the_header_read_timeout() {
    let env = short_timeouts().await;
    let started = Instant::now();
    let (mut r, w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    let pinger = spawn_pinger(w);
    let ended = until_closed(&mut r, started, Duration::from_secs(8)).await;
    pinger.abort();
    assert!(ended.goaway.is_some(), "closed without GOAWAY: {ended:?}");
    assert!(ended.after >= Duration::from_millis(900), "{ended:?}");
}

#[tokio::test]
async fn a_silent_tcp_connection_is_closed_after_the_header_read_timeout() {
    let env = Env::configured(
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 30\n",
    )
    .await;
    let started = Instant::now();
    let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let after = until_eof(&mut s, started, Duration::from_secs(8)).await;
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_byte_trickled_h2_preface_is_closed_after_the_header_read_timeout() {
    let env = Env::configured(
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 30\n",
    )
    .await;
    let started = Instant::now();
    let s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    // One byte every 300 ms: the whole preface would take 7 s.
    let trickle = tokio::spawn(async move {
        for b in PREFACE {
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        std::future::pending::<()>().await;
    });
    let ended = until_closed(&mut r, started, Duration::from_secs(6)).await;
    trickle.abort();
    assert!(ended.after >= Duration::from_millis(900), "{ended:?}");
}

#[tokio::test]
async fn a_trickled_continuation_header_block_is_cut_after_the_header_read_timeout() {
    let env = Env::configured(
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 30\n",
    )
    .await;
    let (mut r, mut w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    w.write_all(&get(1, "/public/first")).await.unwrap();
    assert!(read_response(&mut r, 1).await);
    // HEADERS without END_HEADERS, then a CONTINUATION whose payload arrives one byte
    // every 100 ms (6.4 s for all of it).
    let started = Instant::now();
    let block = get_block("/public/slow");
    w.write_all(&frame(HEADERS, END_STREAM, 3, &block[..4]))
        .await
        .unwrap();
    let rest = [&block[4..], &[0x40, 1, b'a', 60][..], &[b'b'; 60][..]].concat();
    let mut cont = frame(CONTINUATION, END_HEADERS, 3, &rest);
    cont.truncate(9);
    w.write_all(&cont).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in rest {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    });
    let ended = until_closed(&mut r, started, Duration::from_secs(5)).await;
    trickle.abort();
    assert!(ended.after >= Duration::from_millis(900), "{ended:?}");
    assert_eq!(
        env.upstream.count(),
        1,
        "the trickled request reached the backend"
    );
}

/// An upstream answering with "first " at once, then "second" after `gap`.
async fn streaming_upstream(gap: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(move |_req| async move {
                let chunks = futures_util::stream::unfold(0u8, move |i| async move {
                    let chunk: &'static [u8] = match i {
                        0 => b"first ",
                        1 => {
                            tokio::time::sleep(gap).await;
                            b"second"
                        }
                        _ => return None,
                    };
                    Some((
                        Ok::<_, Infallible>(BodyFrame::data(Bytes::from_static(chunk))),
                        i + 1,
                    ))
                });
                Ok::<_, Infallible>(Response::new(StreamBody::new(chunks)))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc),
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_response_waiting_on_its_upstream_is_never_cut_by_the_idle_timeout() {
    let upstream = streaming_upstream(Duration::from_secs(4)).await;
    let env = Env::behind(
        upstream,
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 2\n",
    )
    .await;
    let h2 = h2_client();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        async {
            plain_client()
                .get(env.url("/public/events"))
                .send()
                .await?
                .text()
                .await
        },
        async { h2.get(env.url("/public/events")).send().await?.text().await },
    );
    assert_eq!(a.unwrap(), "first second", "HTTP/1.1");
    assert_eq!(b.unwrap(), "first second", "HTTP/2");
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_a_large_response_is_dropped_after_the_idle_timeout() {
    const SIZE: usize = 32 * 1024 * 1024;
    let (big, _, _) = big_upstream(SIZE).await;
    let env = Env::behind(
        big,
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 2\n",
    )
    .await;
    let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    s.write_all(b"GET /public/big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 1.0).await;
    // The client reads nothing; once the socket buffers are full the proxy holds
    // data the client does not take.
    wait_metric_eq(&env, "cognito_sidecar_open_connections", 0.0).await;
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 0.0).await;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got).await;
    assert!(got.len() < SIZE, "the whole answer was delivered");
}

#[tokio::test]
async fn h2_streams_stalled_on_a_zero_window_are_dropped_after_the_idle_timeout() {
    let (big, count, arrived) = big_upstream(1024 * 1024).await;
    let env = Env::behind(
        big,
        "",
        "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 2\n",
    )
    .await;
    let (mut r, mut w) =
        h2_connect(env.sidecar.proxy_addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    for i in 0..10 {
        w.write_all(&get(1 + 2 * i, "/public/big")).await.unwrap();
    }
    wait_count(&count, &arrived, 10).await;
    let stalled = Instant::now();
    let ended = until_closed(&mut r, stalled, Duration::from_secs(10)).await;
    assert!(ended.goaway.is_some(), "{ended:?}");
    assert!(ended.after >= Duration::from_millis(1500), "{ended:?}");
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 0.0).await;
}

// ---------------------------------------------------------------------------
// Class 8: one address cannot take every connection slot
// ---------------------------------------------------------------------------

async fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One keep-alive HTTP/1.1 request on `s`; the status line.
async fn h1_request(s: &mut TcpStream) -> String {
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn the_connection_over_the_per_ip_cap_is_closed_at_once_while_other_addresses_are_served() {
    let env = Env::configured("", "[limits]\nmax_connections_per_ip = 3\n").await;
    let addr = env.sidecar.proxy_addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", addr).await;
        assert_eq!(h1_request(&mut s).await, "HTTP/1.1 200 OK");
        held.push(s);
    }
    // The fourth from the same address: closed without an answer, at once.
    let started = Instant::now();
    let mut over = connect_from("127.0.0.1", addr).await;
    let _ = over
        .write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), over.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection over the cap was kept open");
    assert!(
        answer.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Another loopback address is its own client.
    let mut other = connect_from("127.0.0.2", addr).await;
    assert_eq!(h1_request(&mut other).await, "HTTP/1.1 200 OK");
    // The held connections still work.
    for s in &mut held {
        assert_eq!(h1_request(s).await, "HTTP/1.1 200 OK");
    }
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_connections_rejected_total{reason="per_ip_limit"}"#
        ),
        1.0
    );
    // A closed connection frees its place.
    drop(held.pop());
    wait_metric_eq(&env, "cognito_sidecar_open_connections", 3.0).await;
    let mut again = connect_from("127.0.0.1", addr).await;
    assert_eq!(h1_request(&mut again).await, "HTTP/1.1 200 OK");
}

// ---------------------------------------------------------------------------
// requests_in_flight when clients vanish mid-request
// ---------------------------------------------------------------------------

#[tokio::test]
async fn requests_in_flight_returns_to_zero_when_clients_disconnect_mid_request() {
    let upstream = Upstream::start_with(Duration::from_secs(60)).await;
    // One test client opens all the requests: no per-address share.
    let env = Env::with_upstream(
        upstream,
        "",
        "[limits]\nmax_in_flight_requests_per_ip = 0\n",
    )
    .await;
    let mut clients = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
        s.write_all(format!("GET /public/slow/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        clients.push(s);
    }
    env.upstream.wait_count(40).await;
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 40.0).await;
    drop(clients);
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 0.0).await;
    wait_metric_eq(&env, "cognito_sidecar_open_connections", 0.0).await;
}

#[tokio::test]
async fn reset_h2_streams_give_back_their_in_flight_count_while_the_connection_stays() {
    let upstream = Upstream::start_with(Duration::from_secs(60)).await;
    let env = Env::with_upstream(upstream, "", "").await;
    let (mut r, mut w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    let streams: Vec<u32> = (0..20).map(|i| 1 + 2 * i).collect();
    for s in &streams {
        w.write_all(&get(*s, &format!("/public/slow/{s}")))
            .await
            .unwrap();
    }
    env.upstream.wait_count(20).await;
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 20.0).await;
    for s in &streams {
        w.write_all(&rst(*s)).await.unwrap();
    }
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 0.0).await;
    // Same connection, next request: served.
    w.write_all(&get(41, "/public/after")).await.unwrap();
    drop(tokio::spawn(async move {
        let _ = read_frame(&mut r).await;
    }));
    env.upstream.wait_count(21).await;
    assert_eq!(
        metric(&env.metrics().await, "cognito_sidecar_open_connections"),
        1.0
    );
}

// ---------------------------------------------------------------------------
// Class 9: floods
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rapid_reset_ends_the_attacking_connection_while_another_client_is_served() {
    let env = Env::start().await;
    let (mut r, mut w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    let started = Instant::now();
    let attack = tokio::spawn(async move {
        let mut sent = 0u32;
        let mut batch = Vec::new();
        for i in 0..20_000u32 {
            let id = 1 + 2 * i;
            batch.extend_from_slice(&get(id, "/public/reset"));
            batch.extend_from_slice(&rst(id));
            if batch.len() > 16 * 1024 {
                if w.write_all(&batch).await.is_err() {
                    return sent;
                }
                batch.clear();
            }
            sent += 1;
        }
        let _ = w.write_all(&batch).await;
        // Keep the write half open: the proxy must be the one to end it.
        std::future::pending::<()>().await;
        sent
    });
    let client = plain_client();
    served(&client, &env.url("/public/normal")).await;
    let ended = until_closed(&mut r, started, Duration::from_secs(10)).await;
    attack.abort();
    served(&client, &env.url("/public/normal")).await;
    assert_eq!(ended.goaway, Some(ENHANCE_YOUR_CALM), "{ended:?}");
    let forwarded = env.upstream.count();
    assert!(
        forwarded < 2_000,
        "{forwarded} reset requests reached the backend: {ended:?}"
    );
}

/// Writes `unit` over and over without reading until the proxy drops the connection
/// (the write fails); returns when, and how many bytes went out. Panics after `bound`.
async fn flood_until_dropped(
    w: &mut OwnedWriteHalf,
    unit: &[u8],
    since: Instant,
    bound: Duration,
) -> (Duration, usize) {
    let batch = unit.repeat((16 * 1024 / unit.len()).max(1));
    let mut sent = 0;
    let flood = async {
        while w.write_all(&batch).await.is_ok() {
            sent += batch.len();
        }
    };
    let left = bound.saturating_sub(since.elapsed());
    assert!(
        tokio::time::timeout(left, flood).await.is_ok(),
        "flood still accepted {bound:?} later"
    );
    (since.elapsed(), sent)
}

#[tokio::test]
async fn a_settings_flood_from_a_client_that_never_reads_is_cut_and_others_are_served() {
    let env = short_timeouts().await;
    let started = Instant::now();
    let (r, mut w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    let unit = settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 65_535)]);
    let flood = tokio::spawn(async move {
        let out = flood_until_dropped(&mut w, &unit, started, Duration::from_secs(10)).await;
        drop(r);
        out
    });
    served(&plain_client(), &env.url("/public/during")).await;
    let (after, sent) = flood.await.unwrap();
    assert!(after >= Duration::from_millis(900), "cut after {after:?}");
    // Never reading, the client can only push what the socket buffers take.
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes of SETTINGS accepted");
}

#[tokio::test]
async fn a_ping_flood_is_answered_but_does_not_keep_an_idle_connection_open() {
    let env = short_timeouts().await;
    let (mut r, mut w) = h2_connect(env.sidecar.proxy_addr, &[]).await;
    w.write_all(&get(1, "/public/x")).await.unwrap();
    assert!(read_response(&mut r, 1).await);
    let served_at = Instant::now();
    let flood = tokio::spawn(async move {
        let unit = frame(PING, 0, 0, &[7; 8]);
        let batch = unit.repeat(100);
        while w.write_all(&batch).await.is_ok() {
            tokio::task::yield_now().await;
        }
    });
    let other = tokio::spawn({
        let url = env.url("/public/during");
        async move { served(&plain_client(), &url).await }
    });
    let ended = until_closed(&mut r, served_at, Duration::from_secs(10)).await;
    flood.abort();
    other.await.unwrap();
    // GOAWAY is sent but may not be seen: the proxy drops the connection with PINGs
    // still unread, and the reset discards what the client had not read yet.
    assert!(ended.pongs > 100, "the flood was not answered: {ended:?}");
    assert!(ended.after >= Duration::from_millis(1500), "{ended:?}");
}

#[tokio::test]
async fn continuation_floods_get_goaway_with_memory_bounded_and_others_served() {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let upstream = Upstream::start().await;
    let sidecar = Binary::start(&config_text(&jwks.url(), upstream.addr, "", "")).await;
    let client = plain_client();
    served(&client, &sidecar.url("/public/warm")).await;
    let before = sidecar.rss_kib();
    let mut peak = before;
    for round in 0..40 {
        let started = Instant::now();
        let (mut r, mut w) = h2_connect(sidecar.proxy, &[]).await;
        w.write_all(&frame(HEADERS, END_STREAM, 1, &get_block("/public/flood")))
            .await
            .unwrap();
        // Alternate full-size fragments and tiny ones; never END_HEADERS.
        let size = if round % 2 == 0 { 16_384 } else { 1 };
        let unit = frame(CONTINUATION, 0, 1, &vec![0x82; size]);
        let flood = tokio::spawn(async move {
            let batch = unit.repeat((65_536 / unit.len()).max(1));
            while w.write_all(&batch).await.is_ok() {}
        });
        let ended = until_closed(&mut r, started, Duration::from_secs(5)).await;
        flood.abort();
        assert!(ended.goaway.is_some(), "round {round}: {ended:?}");
        peak = peak.max(sidecar.rss_kib());
    }
    served(&client, &sidecar.url("/public/after")).await;
    assert!(
        peak - before < RSS_BOUND_KIB,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    assert_eq!(
        upstream.count(),
        2,
        "a flooded header block reached the backend"
    );
}

#[tokio::test]
async fn zero_window_streams_stall_alone_with_memory_bounded_and_others_served() {
    const STREAMS: u32 = 90;
    const SIZE: usize = 1024 * 1024;
    let (big, count, arrived) = big_upstream(SIZE).await;
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    // One test client opens all the streams: no per-address share.
    let sidecar = Binary::start(&config_text(
        &jwks.url(),
        big,
        "",
        "[limits]\nmax_in_flight_requests_per_ip = 0\n",
    ))
    .await;
    let client = plain_client();
    served(&client, &sidecar.url("/public/warm")).await;
    let before = sidecar.rss_kib();
    // Stream windows of zero: response DATA can never be sent.
    let (mut r, mut w) = h2_connect(sidecar.proxy, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    for i in 0..STREAMS {
        w.write_all(&get(1 + 2 * i, "/public/big")).await.unwrap();
    }
    let reader = tokio::spawn(async move { while read_frame(&mut r).await.is_ok() {} });
    wait_count(&count, &arrived, 1 + STREAMS as usize).await;
    wait_metric_eq(
        &sidecar,
        "cognito_sidecar_requests_in_flight",
        f64::from(STREAMS),
    )
    .await;
    // Another client gets whole 1 MiB answers meanwhile.
    for _ in 0..3 {
        let body = tokio::time::timeout(Duration::from_secs(10), async {
            client
                .get(sidecar.url("/public/other"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        })
        .await
        .expect("a normal client waited 10 s during the stall");
        assert_eq!(body.len(), SIZE);
    }
    let during = sidecar.rss_kib();
    assert!(
        during - before < RSS_BOUND_KIB,
        "RSS grew from {before} KiB to {during} KiB with {STREAMS} stalled 1 MiB answers"
    );
    // The stalled streams hold nothing once their client is gone.
    drop(w);
    reader.abort();
    wait_metric_eq(&sidecar, "cognito_sidecar_requests_in_flight", 0.0).await;
}

/// The length of the body a normal client gets for `path`.
async fn body_len(env: &Env, path: &str) -> usize {
    let resp = env.client.get(env.url(path)).send().await.unwrap();
    resp.bytes().await.unwrap().len()
}

#[tokio::test]
async fn stalled_streams_fill_the_in_flight_cap_then_get_503_and_the_send_timeout_frees_them() {
    const CAP: u32 = 20;
    let (big, count, arrived) = big_upstream(1024 * 1024).await;
    let limits = format!(
        "[limits]\nmax_in_flight_requests = {CAP}\nsend_timeout_seconds = 2\nidle_timeout_seconds = 600\n"
    );
    let env = Env::behind(big, "", &limits).await;
    // Zero stream windows: no response DATA can ever be sent.
    let (mut r, mut w) =
        h2_connect(env.sidecar.proxy_addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    for i in 0..CAP {
        w.write_all(&get(1 + 2 * i, "/public/big")).await.unwrap();
    }
    wait_count(&count, &arrived, CAP as usize).await;
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", f64::from(CAP)).await;
    // At the cap: more streams and other clients are refused at once, not queued.
    w.write_all(&get(1 + 2 * CAP, "/public/big")).await.unwrap();
    let head = response_head(&mut r, 1 + 2 * CAP).await;
    assert!(
        head.is_some_and(|b| b != 0x88),
        "stream over the cap: {head:?}"
    );
    let other = env
        .client
        .get(env.url("/public/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 503);
    assert_eq!(other.headers()["retry-after"], "1");
    assert_eq!(
        count.load(Ordering::SeqCst),
        CAP as usize,
        "refused requests cost no upstream call"
    );
    let m = env.metrics().await;
    assert!(
        metric(
            &m,
            "cognito_sidecar_requests_total{outcome=\"overloaded\",status_class=\"5xx\"}"
        ) >= 2.0
    );
    // The stalled client keeps its connection open but takes nothing: after the send
    // timeout its responses are abandoned and their slots (and upstreams) released.
    let reader = tokio::spawn(async move { while read_frame(&mut r).await.is_ok() {} });
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 0.0).await;
    assert_eq!(
        body_len(&env, "/public/other").await,
        1024 * 1024,
        "a second client is served in full"
    );
    drop(w);
    reader.abort();
}

#[tokio::test]
async fn one_address_cannot_take_every_in_flight_slot_and_other_addresses_are_served() {
    let (big, count, arrived) = big_upstream(1024 * 1024).await;
    let limits = "[limits]\nmax_in_flight_requests = 50\nmax_in_flight_requests_per_ip = 5\n";
    let env = Env::behind(big, "", limits).await;
    // An attacker on 127.0.0.2 stalls streams on a zero window.
    let (mut r, mut w) = h2_connect_from(
        [127, 0, 0, 2].into(),
        env.sidecar.proxy_addr,
        &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)],
    )
    .await;
    for i in 0..5 {
        w.write_all(&get(1 + 2 * i, "/public/big")).await.unwrap();
    }
    wait_count(&count, &arrived, 5).await;
    // Its sixth is refused at once: its share is used up.
    w.write_all(&get(11, "/public/big")).await.unwrap();
    let head = response_head(&mut r, 11).await;
    assert!(head.is_some_and(|b| b != 0x88), "over its share: {head:?}");
    assert_eq!(count.load(Ordering::SeqCst), 5, "no upstream call for it");
    // Another address is served in full meanwhile.
    assert_eq!(body_len(&env, "/public/other").await, 1024 * 1024);
    let m = env.metrics().await;
    assert!(
        metric(
            &m,
            "cognito_sidecar_requests_total{outcome=\"overloaded\",status_class=\"5xx\"}"
        ) >= 1.0
    );
    drop(w);
}
