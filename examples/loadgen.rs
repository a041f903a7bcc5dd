//! Benchmark load tools for `bench/run.sh` (wrk has no rate control, and Debian 12
//! packages neither wrk2 nor oha).
//!
//! ```text
//! loadgen rate --url URL --rate R --duration S [--connections C] [--warmup S]
//!              [--header 'Name: value']
//!     Open-loop, fixed-rate HTTP/1.1 load over C keep-alive connections. Request i is
//!     due at t0 + i/R whether or not earlier ones have finished; its latency is
//!     measured from when it was due (like wrk2, so queueing is not hidden) and also
//!     from when it was actually sent ("service" latency). Prints one JSON object.
//! loadgen hold --addr HOST:PORT --connections N [--path P] [--header H] [--seconds S]
//!     Opens N keep-alive connections, sends one request on each, keeps them all open
//!     and idle, prints `HELD <n> <errors>` and waits S seconds (or until stdin closes).
//! loadgen coldstart --admin HOST:PORT --runs N -- COMMAND ARGS...
//!     Spawns COMMAND, polls http://ADMIN/readyz every 1 ms until it answers 200,
//!     kills the process; prints the times (ms) as JSON.
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark tool")]

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn usage() -> ! {
    eprintln!(
        "usage: loadgen rate --url URL --rate R --duration S [--connections C] [--warmup S] [--header 'N: v']\n\
         \x20      loadgen hold --addr HOST:PORT --connections N [--path P] [--header 'N: v'] [--seconds S]\n\
         \x20      loadgen coldstart --admin HOST:PORT [--runs N] -- COMMAND ARGS..."
    );
    std::process::exit(64)
}

struct Opts(Vec<(String, String)>, Vec<String>);

impl Opts {
    fn parse(args: &[String]) -> Self {
        let mut flags = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--" {
                return Self(flags, args[i + 1..].to_vec());
            }
            let Some(name) = args[i].strip_prefix("--") else {
                usage()
            };
            let Some(v) = args.get(i + 1) else { usage() };
            flags.push((name.to_owned(), v.clone()));
            i += 2;
        }
        Self(flags, Vec::new())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn num(&self, name: &str, default: f64) -> f64 {
        self.get(name)
            .map_or(default, |v| v.parse().unwrap_or_else(|_| usage()))
    }
    fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        let h = self.get("header")?;
        let (n, v) = h.split_once(':').unwrap_or_else(|| usage());
        Some((
            HeaderName::try_from(n.trim()).expect("header name"),
            HeaderValue::try_from(v.trim()).expect("header value"),
        ))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let opts = Opts::parse(&args[1..]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match cmd.as_str() {
        "rate" => rt.block_on(rate(&opts)),
        "hold" => rt.block_on(hold(&opts)),
        "coldstart" => coldstart(&opts),
        _ => usage(),
    }
}

// ---------------------------------------------------------------------------
// rate
// ---------------------------------------------------------------------------

struct Plan {
    t0: Instant,
    interval_ns: f64,
    warmup: u64,
    total: u64,
    next: AtomicU64,
}

impl Plan {
    fn due(&self, i: u64) -> Instant {
        self.t0 + Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }
}

#[derive(Default)]
struct Samples {
    corrected: Vec<u32>,
    service: Vec<u32>,
    non2xx: u64,
    errors: u64,
    last_done: Option<Instant>,
}

/// Waits until `due`. The tokio timer rounds deadlines up to its 1 ms tick and only
/// fires when the runtime parks, so it is asked to wake 2 ms early; the rest is spent
/// yielding until the instant passes. Requests then leave within a few microseconds of
/// their due time (the load generator's core is busy, which is what it is for).
async fn pace(due: Instant) {
    let now = Instant::now();
    if due > now + Duration::from_millis(3) {
        tokio::time::sleep_until((due - Duration::from_millis(2)).into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn worker(
    addr: SocketAddr,
    uri: Uri,
    host: HeaderValue,
    header: Option<(HeaderName, HeaderValue)>,
    plan: Arc<Plan>,
) -> Samples {
    let mut s = Samples::default();
    let mut sender = connect(addr).await.ok();
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.total {
            break;
        }
        let due = plan.due(i);
        pace(due).await;
        if sender.is_none() {
            sender = connect(addr).await.ok();
        }
        let Some(tx) = sender.as_mut() else {
            s.errors += 1;
            continue;
        };
        let mut req = Request::get(uri.clone())
            .header(http::header::HOST, host.clone())
            .body(Empty::<Bytes>::new())
            .expect("request");
        if let Some((n, v)) = &header {
            req.headers_mut().insert(n.clone(), v.clone());
        }
        let sent = Instant::now();
        let result = async {
            tx.ready().await?;
            let resp = tx.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        let done = Instant::now();
        match result {
            Ok(status) => {
                if i >= plan.warmup {
                    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                    s.corrected.push(us(done - due));
                    s.service.push(us(done - sent));
                    if !status.is_success() {
                        s.non2xx += 1;
                    }
                    s.last_done = Some(done);
                }
            }
            Err(_) => {
                s.errors += 1;
                sender = None;
            }
        }
    }
    s
}

fn quantiles(v: &mut [u32]) -> serde_json::Value {
    v.sort_unstable();
    let q = |p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let idx = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        f64::from(v[idx]) / 1000.0
    };
    let mean = if v.is_empty() {
        0.0
    } else {
        v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64 / 1000.0
    };
    json!({
        "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "p999_ms": q(0.999),
        "max_ms": q(1.0), "mean_ms": mean,
    })
}

async fn rate(o: &Opts) {
    let url: Uri = o
        .get("url")
        .unwrap_or_else(|| usage())
        .parse()
        .expect("url");
    let authority = url.authority().expect("url authority").clone();
    let addr: SocketAddr = authority
        .as_str()
        .parse()
        .expect("url must be http://IP:PORT/...");
    let path: Uri = url
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .expect("path");
    let rate = o.num("rate", 2000.0);
    let duration = o.num("duration", 10.0);
    let warmup = o.num("warmup", 2.0);
    let conns = o.num("connections", 64.0) as usize;
    let warmup_n = (rate * warmup) as u64;
    let plan = Arc::new(Plan {
        t0: Instant::now() + Duration::from_millis(200),
        interval_ns: 1e9 / rate,
        warmup: warmup_n,
        total: warmup_n + (rate * duration) as u64,
        next: AtomicU64::new(0),
    });
    let host = HeaderValue::try_from(authority.as_str()).expect("host");
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(worker(
                addr,
                path.clone(),
                host.clone(),
                o.header(),
                Arc::clone(&plan),
            ))
        })
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await.expect("worker");
        all.corrected.extend(s.corrected);
        all.service.extend(s.service);
        all.non2xx += s.non2xx;
        all.errors += s.errors;
        all.last_done = all.last_done.max(s.last_done);
    }
    let measured_start = plan.due(plan.warmup);
    let elapsed = all
        .last_done
        .map_or(0.0, |d| d.duration_since(measured_start).as_secs_f64());
    let count = all.corrected.len();
    let out = json!({
        "target_rate": rate,
        "connections": conns,
        "requests": count,
        "achieved_rate": if elapsed > 0.0 { count as f64 / elapsed } else { 0.0 },
        "non2xx": all.non2xx,
        "errors": all.errors,
        "corrected": quantiles(&mut all.corrected),
        "service": quantiles(&mut all.service),
    });
    println!("{out}");
}

// ---------------------------------------------------------------------------
// hold
// ---------------------------------------------------------------------------

async fn open_one(addr: SocketAddr, request: Arc<Vec<u8>>) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&request).await?;
    // Read the whole response: headers, then Content-Length bytes of body.
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(std::io::Error::other(format!(
                    "status {}",
                    head.lines().next().unwrap_or("")
                )));
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(s);
            }
        }
    }
}

async fn hold(o: &Opts) {
    let addr: SocketAddr = o
        .get("addr")
        .unwrap_or_else(|| usage())
        .parse()
        .expect("addr");
    let n = o.num("connections", 10_000.0) as usize;
    let seconds = o.num("seconds", 30.0);
    let path = o.get("path").unwrap_or("/");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(h) = o.get("header") {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request = Arc::new(request.into_bytes());
    let started = Instant::now();
    // Open in waves so the listen backlog never overflows.
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (sem, request) = (Arc::clone(&sem), Arc::clone(&request));
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore");
                open_one(addr, request).await
            })
        })
        .collect();
    let mut held = Vec::with_capacity(n);
    let mut errors = 0usize;
    let mut first_error = None;
    for t in tasks {
        match t.await.expect("task") {
            Ok(s) => held.push(s),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    println!(
        "HELD {} {} {:.2}s {}",
        held.len(),
        errors,
        started.elapsed().as_secs_f64(),
        first_error.unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
    // Until the driver closes our stdin, or the time is up.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    });
    let _ = tokio::time::timeout(Duration::from_secs_f64(seconds), stdin_closed).await;
    // How many survived idle (the server's idle / header-read timeouts may close some).
    let mut open = 0;
    for s in &held {
        let mut b = [0u8; 1];
        if matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            open += 1;
        }
    }
    println!("STILL_OPEN {open}");
    std::process::exit(0);
}

// ---------------------------------------------------------------------------
// coldstart
// ---------------------------------------------------------------------------

fn ready(admin: SocketAddr) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&admin, Duration::from_millis(50)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn coldstart(o: &Opts) {
    let admin: SocketAddr = o
        .get("admin")
        .unwrap_or_else(|| usage())
        .parse()
        .expect("admin");
    let runs = o.num("runs", 5.0) as usize;
    let Some((program, args)) = o.1.split_first() else {
        usage()
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        // Wait for the previous run's listener to be gone.
        while std::net::TcpStream::connect(admin).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = started + Duration::from_secs(10);
        let mut ok = false;
        while Instant::now() < deadline {
            if ready(admin) {
                ok = true;
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let _ = child.kill();
        let _ = child.wait();
        times.push(if ok { ms } else { f64::NAN });
    }
    let mut sorted: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{}",
        json!({"runs_ms": times, "median_ms": median, "max_ms": sorted.last(), "failed": runs - sorted.len()})
    );
}
