//! Browser sign-in over real sockets: the redirect to sign in, the callback (state,
//! PKCE, nonce, token exchange), sessions (re-verified, refreshed, ended), the
//! same-origin rule, sign-out, cookie stripping, rate limits. A local token endpoint
//! plays the pool's managed login; the browser suite (`browser-tests/`) drives the same
//! flows in Chromium against identity providers we did not write.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cognito_sidecar::login::flow::s256_challenge;
use cognito_sidecar::login::session::{CookieRules, Session};
use cognito_sidecar::seal::SealKeys;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::*;

const KEYS: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const EXTERNAL: &str = "https://app.example.com";
const COOKIE: &str = "__Host-cognito-session";

/// What the token endpoint answers next.
#[derive(Clone)]
enum Answer {
    Tokens(Value),
    Status(u16, &'static str),
}

/// A local token endpoint: answers registered per code or refresh token, records forms.
#[derive(Clone, Default)]
struct Idp {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl Idp {
    async fn start() -> (Self, SocketAddr) {
        let idp = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = idp.clone();
        cognito_sidecar::demo::spawn_server(listener, move |req| {
            let me = me.clone();
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let form: HashMap<String, String> =
                    form_urlencoded::parse(&body).into_owned().collect();
                me.forms.lock().unwrap().push(form.clone());
                let key = form
                    .get("code")
                    .or_else(|| form.get("refresh_token"))
                    .cloned()
                    .unwrap_or_default();
                let answer = me.answers.lock().unwrap().get(&key).cloned();
                let (status, body) = match answer {
                    Some(Answer::Tokens(v)) => (200, v.to_string()),
                    Some(Answer::Status(s, b)) => (s, b.to_owned()),
                    None => (400, r#"{"error":"invalid_grant"}"#.to_owned()),
                };
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                r
            }
        });
        (idp, addr)
    }

    fn answer(&self, key: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(key.to_owned(), answer);
    }

    fn forms(&self) -> Vec<HashMap<String, String>> {
        self.forms.lock().unwrap().clone()
    }
}

struct Browserish {
    env: Env,
    idp: Idp,
    _keys: tempfile::NamedTempFile,
}

async fn start(login_extra: &str) -> Browserish {
    let (idp, addr) = Idp::start().await;
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), format!("{KEYS}\n")).unwrap();
    let tables = format!(
        r#"
[[routes]]
path = "/app/admin/"
auth = "login"
groups = ["admins"]
[[routes]]
path = "/app/"
auth = "login"
[login]
client_id = "{CLIENT}"
authorize_url = "https://auth.example.com/oauth2/authorize"
token_url = "http://{addr}/oauth2/token"
logout_url = "https://auth.example.com/logout"
external_url = "{EXTERNAL}"
session_keys_file = "{}"
{login_extra}
"#,
        keys.path().display()
    );
    let env = Env::configured("", &tables).await;
    Browserish {
        env,
        idp,
        _keys: keys,
    }
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The `Cookie` header a browser would send back after these `Set-Cookie`s.
fn jar(set: &[String]) -> String {
    set.iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

impl Browserish {
    async fn navigate(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut r = self
            .env
            .client
            .get(self.env.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate");
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    }

    /// A full sign-in starting at `path`: the session cookies and where the browser
    /// was sent back to.
    async fn sign_in(&self, path: &str, claims: Value) -> (String, String) {
        let start = self.navigate(path, None).await;
        assert_eq!(start.status(), 302);
        let q = query(&location(&start));
        let state_cookie = jar(&set_cookies(&start));
        let id = mint(&with(claims, "nonce", json!(q["nonce"])));
        self.idp.answer(
            "code-1",
            Answer::Tokens(json!({"id_token": id, "access_token": "unused", "refresh_token": "rt-1", "token_type": "Bearer", "expires_in": 600})),
        );
        let back = self
            .navigate(
                &format!("/_auth/callback?code=code-1&state={}", q["state"]),
                Some(&state_cookie),
            )
            .await;
        assert_eq!(back.status(), 303, "{:?}", back.text().await);
        (jar(&set_cookies(&back)), location(&back))
    }
}

#[tokio::test]
async fn a_browser_navigation_without_a_session_is_sent_to_sign_in_with_state_nonce_and_pkce() {
    let b = start("").await;
    let r = b.navigate("/app/page?x=1", None).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let url = location(&r);
    assert!(
        url.starts_with("https://auth.example.com/oauth2/authorize?"),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["redirect_uri"], format!("{EXTERNAL}/_auth/callback"));
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43 && q["code_challenge"].len() == 43);
    let set = set_cookies(&r);
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(
        set[0].starts_with(&format!("{COOKIE}-signin.")),
        "{}",
        set[0]
    );
    assert!(
        set[0].ends_with("; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"),
        "{}",
        set[0]
    );
    let again = b.navigate("/app/page?x=1", None).await;
    assert_ne!(
        query(&location(&again))["state"],
        q["state"],
        "each sign-in is new"
    );
}

#[tokio::test]
async fn scripts_and_api_clients_get_401_never_a_redirect() {
    let b = start("").await;
    let url = b.env.url("/app/data");
    let c = &b.env.client;
    let fetch = c
        .get(&url)
        .header("accept", "text/html")
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    let xhr = c
        .get(&url)
        .header("accept", "text/html")
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    let api = c
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let post = c
        .post(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    for r in [fetch, xhr, api, post] {
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        assert!(!r.headers().contains_key("location"));
    }
}

#[tokio::test]
async fn signing_in_lands_on_the_original_url_and_the_backend_sees_identity_not_cookies() {
    let b = start("").await;
    let start = b.navigate("/app/page?x=1", None).await;
    let q = query(&location(&start));
    let state_cookie = jar(&set_cookies(&start));
    let id = mint(&with(id_claims(), "nonce", json!(q["nonce"])));
    b.idp.answer(
        "code-1",
        Answer::Tokens(json!({"id_token": id, "refresh_token": "rt-1", "token_type": "Bearer"})),
    );
    let back = b
        .navigate(
            &format!("/_auth/callback?code=code-1&state={}", q["state"]),
            Some(&format!("theme=dark; {state_cookie}")),
        )
        .await;
    assert_eq!(back.status(), 303);
    assert_eq!(location(&back), "/app/page?x=1");
    let set = set_cookies(&back);
    assert!(
        set.iter()
            .any(|c| c.starts_with(&format!("{COOKIE}-signin.")) && c.contains("Max-Age=0")),
        "the sign-in state is used up: {set:?}"
    );
    let session: Vec<&String> = set
        .iter()
        .filter(|c| c.starts_with(&format!("{COOKIE}=")))
        .collect();
    assert_eq!(session.len(), 1, "{set:?}");
    assert!(
        session[0].contains("; HttpOnly; SameSite=Lax; Secure"),
        "{}",
        session[0]
    );
    let form = &b.idp.forms()[0];
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "code-1");
    assert_eq!(form["client_id"], CLIENT);
    assert_eq!(form["redirect_uri"], format!("{EXTERNAL}/_auth/callback"));
    assert_eq!(
        s256_challenge(&form["code_verifier"]),
        q["code_challenge"],
        "PKCE S256"
    );

    let cookies = format!("theme=dark; {}", jar(&set));
    let page = b.navigate("/app/page?x=1", Some(&cookies)).await;
    assert_eq!(page.status(), 200);
    let seen = b.env.upstream.last();
    assert_eq!(seen.header("x-auth-username").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-auth-token-use").as_deref(), Some("id"));
    assert_eq!(
        seen.header("cookie").as_deref(),
        Some("theme=dark"),
        "session cookies never reach the backend"
    );
    assert_eq!(seen.header("authorization"), None);
    let forbidden = b.navigate("/app/admin/", Some(&cookies)).await;
    assert_eq!(
        forbidden.status(),
        403,
        "alice is not an admin; the session stays"
    );
    assert!(set_cookies(&forbidden).is_empty());
    let m = b.env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_login_events_total{event="sign_in",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_login_events_total{event="sign_in_started",outcome="ok"}"#
        ),
        1.0
    );
}

fn forged_session(id_token: String, refresh: Option<&str>, key: &str) -> String {
    let keys = SealKeys::from_text(key).unwrap();
    let rules = CookieRules {
        name: COOKIE.to_owned(),
        secure: true,
        max_age: 86_400,
    };
    let s = Session {
        id_token,
        refresh_token: refresh.map(str::to_owned),
        signed_in_at: now() - 3600,
    };
    jar(&s.set_cookies(&keys, &rules, now(), 0).unwrap())
}

fn expired_id() -> String {
    let c = with(id_claims(), "exp", json!(now() - 120));
    mint(&with(c, "iat", json!(now() - 720)))
}

#[tokio::test]
async fn an_expired_session_is_refreshed_at_the_token_endpoint_and_the_cookie_reissued() {
    let b = start("").await;
    let fresh = mint(&with(
        id_claims(),
        "cognito:username",
        json!("alice-refreshed"),
    ));
    b.idp.answer(
        "rt-1",
        Answer::Tokens(json!({"id_token": fresh, "access_token": "a"})),
    );
    let cookies = forged_session(expired_id(), Some("rt-1"), KEYS);
    let r = b.navigate("/app/page", Some(&cookies)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        b.env.upstream.last().header("x-auth-username").as_deref(),
        Some("alice-refreshed")
    );
    let form = &b.idp.forms()[0];
    assert_eq!(
        (form["grant_type"].as_str(), form["refresh_token"].as_str()),
        ("refresh_token", "rt-1")
    );
    let reissued = jar(&set_cookies(&r));
    assert!(reissued.starts_with(&format!("{COOKIE}=")), "{reissued}");
    // The reissued cookie keeps the refresh token: it works without another refresh.
    let again = b.navigate("/app/page", Some(&reissued)).await;
    assert_eq!(again.status(), 200);
    // A page's other requests, still carrying the old cookie, share that one refresh.
    let others = (0..4).map(|_| b.navigate("/app/asset", Some(&cookies)));
    for r in futures_util::future::join_all(others).await {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(b.idp.forms().len(), 1, "one refresh for the whole session");
    let m = b.env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_login_events_total{event="refresh",outcome="ok"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn a_refresh_that_fails_ends_the_session_and_sends_the_browser_to_sign_in() {
    let b = start("").await;
    b.idp.answer(
        "rt-dead",
        Answer::Status(400, r#"{"error":"invalid_grant"}"#),
    );
    let cookies = forged_session(expired_id(), Some("rt-dead"), KEYS);
    let nav = b.navigate("/app/page", Some(&cookies)).await;
    assert_eq!(nav.status(), 302);
    let set = set_cookies(&nav);
    assert!(
        set.iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")),
        "{set:?}"
    );
    let xhr = b
        .env
        .client
        .get(b.env.url("/app/data"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(xhr.status(), 401);
    assert!(set_cookies(&xhr).iter().any(|c| c.contains("Max-Age=0")));
    let m = b.env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_login_events_total{event="refresh",outcome="refused"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn a_tampered_or_foreign_session_cookie_is_no_session() {
    let b = start("").await;
    let good = forged_session(mint(&id_claims()), None, KEYS);
    assert_eq!(b.navigate("/app/page", Some(&good)).await.status(), 200);
    let (name, value) = good.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let foreign = forged_session(mint(&id_claims()), None, &"17".repeat(32));
    for cookie in [tampered, foreign] {
        let r = b.navigate("/app/page", Some(&cookie)).await;
        assert_eq!(r.status(), 302, "sent to sign in");
        assert!(location(&r).starts_with("https://auth.example.com/"));
    }
    let m = b.env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_login_events_total{event="session_ended",outcome="unreadable"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn a_callback_with_a_wrong_or_missing_state_ends_on_a_400_page() {
    let b = start("").await;
    let first = b.navigate("/app/a", None).await;
    let first_cookie = jar(&set_cookies(&first));
    let second = b.navigate("/app/b", None).await;
    let state = query(&location(&second))["state"].clone();
    b.idp.answer(
        "code-1",
        Answer::Tokens(json!({"id_token": mint(&id_claims())})),
    );
    for (path, cookie) in [
        (format!("/_auth/callback?code=code-1&state={state}"), None),
        (
            format!("/_auth/callback?code=code-1&state={state}"),
            Some(first_cookie.as_str()),
        ),
        (
            "/_auth/callback?code=code-1".to_owned(),
            Some(first_cookie.as_str()),
        ),
    ] {
        let r = b.navigate(&path, cookie).await;
        assert_eq!(r.status(), 400, "{path}");
        assert!(!r.headers().contains_key("location"), "never a loop");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    assert!(b.idp.forms().is_empty(), "the code is never exchanged");
}

#[tokio::test]
async fn an_idp_error_ends_on_a_clear_page_with_the_right_status() {
    let b = start("").await;
    let denied = b
        .navigate("/_auth/callback?error=access_denied&state=x", None)
        .await;
    assert_eq!(denied.status(), 403);
    assert!(denied.text().await.unwrap().contains("access_denied"));
    let other = b
        .navigate("/_auth/callback?error=%3Cscript%3E&state=x", None)
        .await;
    assert_eq!(other.status(), 400);
    let body = other.text().await.unwrap();
    assert!(!body.contains("<script>"), "{body}");
}

#[tokio::test]
async fn token_endpoint_failures_and_bad_id_tokens_end_on_a_page_not_a_loop() {
    let b = start("").await;
    let cases: [(Answer, u16, Option<&str>); 5] = [
        (
            Answer::Status(400, r#"{"error":"invalid_grant"}"#),
            400,
            None,
        ),
        (Answer::Status(503, "busy"), 502, None),
        (Answer::Tokens(json!({"nothing": 1})), 502, None),
        // An ID token for another nonce, and one for another app client.
        (
            Answer::Tokens(json!({"id_token": mint(&with(id_claims(), "nonce", json!("other")))})),
            401,
            None,
        ),
        (Answer::Tokens(json!({})), 401, Some("aud")),
    ];
    for (answer, status, wrong) in cases {
        let start = b.navigate("/app/", None).await;
        let q = query(&location(&start));
        let answer = match wrong {
            Some(claim) => {
                let c = with(
                    with(id_claims(), "nonce", json!(q["nonce"])),
                    claim,
                    json!("C2"),
                );
                Answer::Tokens(json!({"id_token": mint(&c)}))
            }
            None => answer,
        };
        b.idp.answer("code-x", answer);
        let r = b
            .navigate(
                &format!("/_auth/callback?code=code-x&state={}", q["state"]),
                Some(&jar(&set_cookies(&start))),
            )
            .await;
        assert_eq!(r.status().as_u16(), status);
        assert!(!r.headers().contains_key("location"));
        assert!(
            !set_cookies(&r)
                .iter()
                .any(|c| c.starts_with(&format!("{COOKIE}=")) && !c.contains("Max-Age=0"))
        );
    }
}

#[tokio::test]
async fn return_paths_never_leave_the_origin() {
    let b = start("").await;
    for path in [
        "//evil.example/x",
        "/app/..//evil.example",
        "/%2F%2Fevil.example/",
    ] {
        let r = b.navigate(path, None).await;
        if r.status() != 302 {
            continue; // refused outright (400): nothing to return to
        }
        let q = query(&location(&r));
        let id = mint(&with(id_claims(), "nonce", json!(q["nonce"])));
        b.idp
            .answer("code-r", Answer::Tokens(json!({"id_token": id})));
        let back = b
            .navigate(
                &format!("/_auth/callback?code=code-r&state={}", q["state"]),
                Some(&jar(&set_cookies(&r))),
            )
            .await;
        let to = location(&back);
        assert!(
            to.starts_with('/') && !to.starts_with("//") && !to.contains('\\'),
            "{path} -> {to}"
        );
    }
}

#[tokio::test]
async fn unsafe_methods_on_a_session_need_the_sites_own_origin() {
    let b = start("").await;
    let cookies = forged_session(mint(&id_claims()), None, KEYS);
    let post = |headers: &[(&str, &str)]| {
        let mut r = b
            .env
            .client
            .post(b.env.url("/app/form"))
            .header("cookie", &cookies);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    assert_eq!(
        post(&[("origin", "https://evil.example")])
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(&[]).await.unwrap().status(),
        403,
        "no origin information at all"
    );
    assert_eq!(
        post(&[("sec-fetch-site", "cross-site")])
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(post(&[("origin", EXTERNAL)]).await.unwrap().status(), 200);
    assert_eq!(
        post(&[("sec-fetch-site", "same-origin")])
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        b.env.upstream.count(),
        2,
        "refused requests never reached the backend"
    );
}

#[tokio::test]
async fn sign_out_clears_the_session_and_goes_to_the_pools_logout() {
    let b = start("").await;
    let (cookies, _) = b.sign_in("/app/", id_claims()).await;
    let r = b.navigate("/_auth/sign-out", Some(&cookies)).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        location(&r),
        format!(
            "https://auth.example.com/logout?client_id={CLIENT}&logout_uri=https%3A%2F%2Fapp.example.com%2F"
        )
    );
    let set = set_cookies(&r);
    assert!(
        set.iter().all(|c| c.contains("Max-Age=0")) && !set.is_empty(),
        "{set:?}"
    );
    let cross = b
        .env
        .client
        .post(b.env.url("/_auth/sign-out"))
        .header("origin", "https://evil.example")
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cross.status(),
        403,
        "a cross-site POST cannot sign anyone out"
    );
}

#[tokio::test]
async fn bearer_tokens_still_work_on_login_routes_and_no_route_forwards_session_cookies() {
    let b = start("").await;
    let bearer = b.env.get("/app/api", Some(&mint(&access_claims()))).await;
    assert_eq!(bearer.status(), 200);
    let cookies = forged_session(mint(&id_claims()), None, KEYS);
    let public = b
        .env
        .client
        .get(b.env.url("/public/x"))
        .header(
            "cookie",
            format!("{cookies}; {COOKIE}-signin.abcdefabcdef=x; keep=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    assert_eq!(
        b.env.upstream.last().header("cookie").as_deref(),
        Some("keep=1")
    );
}

#[tokio::test]
async fn a_big_session_is_split_into_cookies_under_the_browser_limit() {
    let b = start("").await;
    let groups: Vec<String> = (0..300)
        .map(|i| format!("group-with-a-long-name-{i}"))
        .collect();
    let (cookies, _) = b
        .sign_in("/app/", with(id_claims(), "cognito:groups", json!(groups)))
        .await;
    let pieces: Vec<&str> = cookies.split("; ").collect();
    assert!(pieces.len() >= 3, "{} pieces", pieces.len());
    assert!(pieces.iter().all(|p| p.len() < 4000));
    let r = b.navigate("/app/", Some(&cookies)).await;
    assert_eq!(r.status(), 200);
    assert!(
        b.env
            .upstream
            .last()
            .header("x-auth-groups")
            .unwrap()
            .contains("group-with-a-long-name-299")
    );
}

#[tokio::test]
async fn the_sign_in_endpoints_are_rate_limited_per_address() {
    let b = start("rate_limit_per_minute = 3").await;
    for _ in 0..3 {
        assert_eq!(
            b.navigate("/_auth/callback?error=access_denied", None)
                .await
                .status(),
            403
        );
    }
    let limited = b
        .navigate("/_auth/callback?error=access_denied", None)
        .await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "60");
    assert_eq!(
        b.navigate("/app/", None).await.status(),
        429,
        "sign-in starts share the limit"
    );
    let m = b.env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_login_events_total{event="refused",outcome="rate_limited"}"#
        ),
        2.0
    );
}
