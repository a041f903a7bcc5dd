//! The online revocation check over real sockets, against a local stand-in for
//! Cognito's `GetUser` API whose answers, delays and failures the tests choose: one
//! call answers many requests (cache), concurrent requests share one call (single
//! flight), a revoked token is refused, a check that cannot be made follows the failure
//! mode (timeout, 5xx, throttling, the concurrency bound), ID tokens are never checked,
//! and every outcome is counted. Also measures the cache hit's cost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use support::{
    Env, JwksAnswer, JwksServer, Upstream, access_claims, config_text, id_claims, jwks_of, metric,
    mint, wait_metric_eq, with,
};
use tokio::sync::Semaphore;

/// How the stand-in answers a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 200 for live tokens, 400 `NotAuthorizedException` for revoked ones.
    Answer,
    /// This status with this `__type`, whatever the token.
    Fail(u16, &'static str),
    /// Answer after this long.
    Slow(Duration),
}

/// One call as the stand-in saw it.
#[derive(Clone, Debug)]
struct Call {
    token: String,
    target: Option<String>,
    content_type: Option<String>,
    authorization: bool,
}

struct State {
    mode: Mode,
    revoked: HashSet<String>,
    calls: Vec<Call>,
}

/// A stand-in for `POST https://cognito-idp.<region>.amazonaws.com/` with
/// `X-Amz-Target: AWSCognitoIdentityProviderService.GetUser`.
#[derive(Clone)]
struct FakeIdp {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// While held, calls wait for a permit (see [`FakeIdp::hold`]).
    held: Arc<Mutex<bool>>,
    gate: Arc<Semaphore>,
    answered: Arc<AtomicUsize>,
}

impl FakeIdp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                mode: Mode::Answer,
                revoked: HashSet::new(),
                calls: Vec::new(),
            })),
            held: Arc::new(Mutex::new(false)),
            gate: Arc::new(Semaphore::new(0)),
            answered: Arc::new(AtomicUsize::new(0)),
        };
        let server = idp.clone();
        cognito_sidecar::demo::spawn_server(listener, move |req: Request<Incoming>| {
            let idp = server.clone();
            async move { idp.answer(req).await }
        });
        idp
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (target, content_type) = (header("x-amz-target"), header("content-type"));
        let authorization = req.headers().contains_key("authorization");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let token = serde_json::from_slice::<Value>(&body).unwrap()["AccessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let mode = {
            let mut s = self.state.lock().unwrap();
            s.calls.push(Call {
                token: token.clone(),
                target,
                content_type,
                authorization,
            });
            s.mode
        };
        let held = *self.held.lock().unwrap();
        if held {
            self.gate.acquire().await.unwrap().forget();
        }
        let (status, kind) = match mode {
            Mode::Fail(status, kind) => (status, kind),
            Mode::Slow(delay) => {
                tokio::time::sleep(delay).await;
                (200, "")
            }
            Mode::Answer if self.state.lock().unwrap().revoked.contains(&token) => {
                (400, "NotAuthorizedException")
            }
            Mode::Answer => (200, ""),
        };
        self.answered.fetch_add(1, Ordering::SeqCst);
        let body = if status == 200 {
            json!({"Username": "alice", "UserAttributes": [{"Name": "sub", "Value": "s"}]})
        } else {
            json!({"__type": kind, "message": "Access Token has been revoked"})
        };
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn revoke(&self, token: &str) {
        self.state.lock().unwrap().revoked.insert(token.to_owned());
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    fn calls_for(&self, token: &str) -> usize {
        self.calls().iter().filter(|c| c.token == token).count()
    }

    /// Calls from now on wait until [`FakeIdp::release`].
    fn hold(&self) {
        *self.held.lock().unwrap() = true;
    }

    fn release(&self) {
        *self.held.lock().unwrap() = false;
        self.gate.add_permits(1000);
    }
}

/// The standard test sidecar with `revocation_check = true` on its pool, calling
/// `idp`, and `section` appended (a `[revocation_check]` table).
async fn sidecar(idp: &FakeIdp, section: &str) -> Env {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1", "k2"]))).await;
    let upstream = Upstream::start().await;
    let text = config_text(&jwks.url(), upstream.addr, "", section);
    let pool_line = "token_use = [\"id\", \"access\"]\n";
    assert!(text.contains(pool_line));
    let text = text.replacen(
        pool_line,
        &format!(
            "{pool_line}revocation_check = true\nidp_endpoint = \"{}\"\n",
            idp.url()
        ),
        1,
    );
    Env::start_with_config(jwks, upstream, &text, true).await
}

fn token(jti: &str) -> String {
    mint(&with(access_claims(), "jti", json!(jti)))
}

fn checks(result: &str) -> String {
    format!("cognito_sidecar_revocation_checks_total{{pool=\"test\",result=\"{result}\"}}")
}

#[tokio::test]
async fn one_getuser_call_answers_many_requests_with_the_same_token() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "").await;
    let t = token("many");
    for _ in 0..20 {
        assert_eq!(env.get("/x", Some(&t)).await.status(), 200);
    }
    assert_eq!(idp.calls_for(&t), 1);
    let m = env.metrics().await;
    assert_eq!(metric(&m, &checks("valid")), 1.0);
    assert_eq!(metric(&m, &checks("cache_hit")), 19.0);
    assert_eq!(
        metric(
            &m,
            "cognito_sidecar_revocation_check_duration_seconds_count"
        ),
        1.0
    );
}

#[tokio::test]
async fn the_call_is_getuser_with_the_token_and_no_credentials() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "").await;
    let t = token("shape");
    assert_eq!(env.get("/x", Some(&t)).await.status(), 200);
    let calls = idp.calls();
    let [call] = calls.as_slice() else {
        panic!("one call expected: {calls:?}")
    };
    assert_eq!(call.token, t);
    assert_eq!(
        call.target.as_deref(),
        Some("AWSCognitoIdentityProviderService.GetUser")
    );
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/x-amz-json-1.1")
    );
    assert!(!call.authorization, "no AWS credentials are sent");
}

#[tokio::test]
async fn concurrent_requests_with_one_token_share_one_call() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "").await;
    let t = token("flight");
    idp.hold();
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, t) = (env.client.clone(), env.url("/x"), t.clone());
            tokio::spawn(async move {
                client
                    .get(url)
                    .bearer_auth(t)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // All eight are inside the proxy, one of them calling, before the call is answered.
    wait_metric_eq(&env, "cognito_sidecar_requests_in_flight", 8.0).await;
    idp.release();
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(idp.calls_for(&t), 1);
    let m = env.metrics().await;
    assert_eq!(metric(&m, &checks("valid")), 1.0);
    assert_eq!(metric(&m, &checks("shared")), 7.0);
}

#[tokio::test]
async fn a_revoked_token_is_refused_with_invalid_token_and_other_tokens_pass() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "").await;
    let (revoked, live) = (token("revoked"), token("live"));
    idp.revoke(&revoked);
    let r = env.get("/x", Some(&revoked)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"invalid_token\", \
         error_description=\"The access token has been revoked\""
    );
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_token"}"#);
    assert_eq!(env.get("/x", Some(&live)).await.status(), 200);
    // The refusal is remembered too: no second call for the revoked token.
    assert_eq!(env.get("/x", Some(&revoked)).await.status(), 401);
    assert_eq!(idp.calls_for(&revoked), 1);
    assert_eq!(
        env.upstream.count(),
        1,
        "only the live token reached the backend"
    );
    let m = env.metrics().await;
    assert_eq!(metric(&m, &checks("revoked")), 1.0);
    assert_eq!(metric(&m, &checks("cache_hit")), 1.0);
    assert_eq!(
        metric(&m, "cognito_sidecar_auth_denied_total{reason=\"revoked\"}"),
        2.0
    );
}

#[tokio::test]
async fn after_the_cache_window_a_newly_revoked_token_is_refused() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "[revocation_check]\ncache_seconds = 1\n").await;
    let t = token("window");
    assert_eq!(env.get("/x", Some(&t)).await.status(), 200);
    idp.revoke(&t);
    support::wait_until("the revoked token to be refused", async || {
        env.get("/x", Some(&t)).await.status() == 401
    })
    .await;
    assert_eq!(idp.calls_for(&t), 2, "one call per cache window");
}

#[tokio::test]
async fn a_timeout_is_a_503_when_closed_and_admitted_when_open() {
    let idp = FakeIdp::start().await;
    idp.set(Mode::Slow(Duration::from_secs(5)));
    let closed = sidecar(&idp, "[revocation_check]\ntimeout_ms = 100\n").await;
    let r = closed.get("/x", Some(&token("slow-closed"))).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(!r.headers().contains_key("www-authenticate"));
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":"temporarily_unavailable"}"#
    );
    let m = closed.metrics().await;
    assert_eq!(metric(&m, &checks("timeout")), 1.0);
    assert_eq!(
        metric(
            &m,
            "cognito_sidecar_auth_denied_total{reason=\"revocation_unavailable\"}"
        ),
        1.0
    );
    assert_eq!(closed.upstream.count(), 0);

    let open = sidecar(
        &idp,
        "[revocation_check]\ntimeout_ms = 100\nfailure_mode = \"open\"\n",
    )
    .await;
    assert_eq!(
        open.get("/x", Some(&token("slow-open"))).await.status(),
        200
    );
    assert_eq!(metric(&open.metrics().await, &checks("timeout")), 1.0);
}

#[tokio::test]
async fn server_errors_and_throttling_follow_the_failure_mode_and_are_not_remembered() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "").await;
    let t = token("flaky");
    for mode in [
        Mode::Fail(500, "InternalErrorException"),
        Mode::Fail(400, "TooManyRequestsException"),
        Mode::Fail(400, "ResourceNotFoundException"),
    ] {
        idp.set(mode);
        assert_eq!(env.get("/x", Some(&t)).await.status(), 503, "{mode:?}");
    }
    // The endpoint recovers: the next request calls again and passes.
    idp.set(Mode::Answer);
    assert_eq!(env.get("/x", Some(&t)).await.status(), 200);
    assert_eq!(idp.calls_for(&t), 4);
    let m = env.metrics().await;
    assert_eq!(metric(&m, &checks("error")), 3.0);
    assert_eq!(metric(&m, &checks("valid")), 1.0);
}

#[tokio::test]
async fn a_check_over_max_concurrent_fails_at_once_instead_of_queueing() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "[revocation_check]\nmax_concurrent = 1\n").await;
    idp.hold();
    let first = {
        let (client, url, t) = (env.client.clone(), env.url("/x"), token("first"));
        tokio::spawn(async move { client.get(url).bearer_auth(t).send().await.unwrap() })
    };
    support::wait_until("the first call to arrive", async || idp.calls().len() == 1).await;
    let second = env.get("/x", Some(&token("second"))).await;
    assert_eq!(second.status(), 503);
    assert_eq!(idp.calls().len(), 1, "the second check made no call");
    idp.release();
    assert_eq!(first.await.unwrap().status(), 200);
    let m = env.metrics().await;
    assert_eq!(metric(&m, &checks("overloaded")), 1.0);
    assert_eq!(metric(&m, &checks("valid")), 1.0);
}

#[tokio::test]
async fn id_tokens_public_routes_and_pools_without_the_check_make_no_call() {
    let idp = FakeIdp::start().await;
    let env = sidecar(&idp, "").await;
    assert_eq!(env.get("/x", Some(&mint(&id_claims()))).await.status(), 200);
    assert_eq!(env.get("/public/x", Some(&token("p"))).await.status(), 200);
    assert_eq!(env.get("/opt/x", None).await.status(), 200);
    assert!(idp.calls().is_empty(), "{:?}", idp.calls());

    // Without the check: no call and no revocation series.
    let plain = Env::start().await;
    assert_eq!(plain.get("/x", Some(&token("plain"))).await.status(), 200);
    assert!(idp.calls().is_empty());
    let m = plain.metrics().await;
    assert!(
        !m.contains("cognito_sidecar_revocation_checks_total{"),
        "{m}"
    );
    // With it, every result is a series from the start.
    let m = env.metrics().await;
    for result in [
        "valid",
        "revoked",
        "error",
        "timeout",
        "overloaded",
        "cache_hit",
        "shared",
    ] {
        assert!(m.contains(&checks(result)), "{result}");
    }
}

/// The cost of a cache hit: hashing the token (SHA-256), the cache lookup, the
/// freshness check and the counter, through the public [`Revocation::check`]. Prints
/// the mean; the bound is loose (debug builds, shared CI machines): the release-build
/// number is in `benches/revocation.rs`.
#[tokio::test]
async fn a_cache_hit_costs_a_few_microseconds() {
    let idp = FakeIdp::start().await;
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let text = config_text(&jwks.url(), "127.0.0.1:1".parse().unwrap(), "", "").replacen(
        "token_use = [\"id\", \"access\"]\n",
        &format!(
            "token_use = [\"id\", \"access\"]\nrevocation_check = true\nidp_endpoint = \"{}\"\n",
            idp.url()
        ),
        1,
    );
    let cfg = cognito_sidecar::config::Config::from_toml(&text).unwrap();
    let metrics = cognito_sidecar::metrics::Metrics::new().unwrap();
    let check = cognito_sidecar::revocation::Revocation::from_config(&cfg, &metrics)
        .unwrap()
        .unwrap();
    let t = token("bench");
    let exp = support::now() + 600;
    use cognito_sidecar::revocation::Verdict;
    assert_eq!(check.check("test", &t, exp).await, Some(Verdict::Valid));
    const N: u32 = 20_000;
    let started = std::time::Instant::now();
    for _ in 0..N {
        // A hit never waits: it completes on the first poll.
        let v = check.check("test", &t, exp).now_or_never().expect("ready");
        assert_eq!(v, Some(Verdict::Valid));
    }
    let per_hit = started.elapsed() / N;
    eprintln!("revocation cache hit: {per_hit:?} per check ({N} checks, this build's profile)");
    assert!(per_hit < Duration::from_micros(50), "{per_hit:?}");
    assert_eq!(idp.calls().len(), 1);
}
