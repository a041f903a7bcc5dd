//! The demo's embedded issuer as an identity provider, over real sockets and without a
//! proxy: the managed-login look-alike sign-in page (`/oauth2/authorize`), the token
//! endpoint (code exchange with PKCE, refresh, client authentication, CORS for the
//! single-page app), Cognito's `/logout`, and the single-page app the echo backend
//! serves. The tokens are checked with the crate's own strict parser against the JWKS
//! the issuer serves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cognito_sidecar::demo::{DEMO_CLIENT, DemoUser, ISSUER, Idp, IdpSettings};
use cognito_sidecar::issuer::DevIssuer;
use cognito_sidecar::login::flow::{random_token, s256_challenge};
use cognito_sidecar::token::{self, Claims, TokenUse};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;

/// Where browsers reach the (absent) proxy in these tests; nothing listens there.
const EXTERNAL: &str = "http://127.0.0.1:18080";
const CALLBACK: &str = "http://127.0.0.1:18080/_auth/callback";
const SPA: &str = "http://127.0.0.1:18080/spa/";

/// Keys generated once per test binary (RSA key generation is slow in debug builds).
fn issuer() -> Arc<DevIssuer> {
    static K: OnceLock<Arc<DevIssuer>> = OnceLock::new();
    Arc::clone(K.get_or_init(|| {
        Arc::new(DevIssuer::generate(&["demo-id-key", "demo-access-key"]).unwrap())
    }))
}

fn users() -> Vec<DemoUser> {
    vec![
        DemoUser::new("alice", "alice-pass", &["admins"]),
        DemoUser::new("bob", "bob-pass", &[]),
    ]
}

async fn start_with(settings: IdpSettings) -> Idp {
    Idp::start(issuer(), settings).await.unwrap()
}

async fn start() -> Idp {
    start_with(IdpSettings::new(EXTERNAL, users())).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A JSON answer's body (reqwest's `json` feature is not enabled).
async fn json(resp: reqwest::Response) -> Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .finish()
}

/// A form POST (reqwest's `form` feature is not enabled).
fn post_form<K: AsRef<str>, V: AsRef<str>>(url: &str, pairs: &[(K, V)]) -> reqwest::RequestBuilder {
    client()
        .post(url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode(pairs))
}

/// A GET with `pairs` as the query.
fn get_query<K: AsRef<str>, V: AsRef<str>>(url: &str, pairs: &[(K, V)]) -> reqwest::RequestBuilder {
    client().get(format!("{url}?{}", encode(pairs)))
}

/// One sign-in attempt's one-time values, as the proxy or the SPA makes them.
struct Attempt {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: &'static str,
}

impl Attempt {
    fn new(redirect_uri: &'static str) -> Self {
        Self {
            state: random_token().unwrap(),
            nonce: random_token().unwrap(),
            verifier: random_token().unwrap(),
            redirect_uri,
        }
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", DEMO_CLIENT.into()),
            ("redirect_uri", self.redirect_uri.into()),
            ("scope", "openid email profile".into()),
            ("state", self.state.clone()),
            ("nonce", self.nonce.clone()),
            ("code_challenge", s256_challenge(&self.verifier)),
            ("code_challenge_method", "S256".into()),
        ]
    }

    /// Submits the sign-in form as a browser would.
    async fn submit(&self, idp: &Idp, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, String)> = self.params();
        form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        post_form(&format!("{}/oauth2/authorize", idp.base_url()), &form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in as `user` and returns the code from the redirect.
    async fn code(&self, idp: &Idp, user: &str, password: &str) -> String {
        let resp = self
            .submit(
                idp,
                &[
                    ("username", user),
                    ("password", password),
                    ("action", "sign-in"),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let q = redirect_query(resp.headers(), self.redirect_uri);
        assert_eq!(q["state"], self.state);
        q["code"].clone()
    }
}

/// The query of a redirect to `base`.
fn redirect_query(headers: &HeaderMap, base: &str) -> HashMap<String, String> {
    let location = headers[header::LOCATION].to_str().unwrap();
    let query = location
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('?'))
        .unwrap_or_else(|| panic!("redirect to {location}, not {base}"));
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

async fn token_request(idp: &Idp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = post_form(&format!("{}/oauth2/token", idp.base_url()), form)
        .send()
        .await
        .unwrap();
    (resp.status(), json(resp).await)
}

async fn exchange(idp: &Idp, attempt: &Attempt, code: &str) -> (StatusCode, Value) {
    token_request(
        idp,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEMO_CLIENT),
            ("code", code),
            ("redirect_uri", attempt.redirect_uri),
            ("code_verifier", &attempt.verifier),
        ],
    )
    .await
}

/// Verifies `jwt` with the JWKS the issuer serves, as the proxy would, and returns its
/// claims and header `kid`.
async fn verified(idp: &Idp, jwt: &str) -> (Claims, String) {
    let jwks = client()
        .get(idp.jwks_url())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let keys = cognito_sidecar::jwks::parse_jwks(&jwks).unwrap().keys;
    let unverified = token::parse(jwt).unwrap();
    let kid = unverified.kid.clone();
    unverified.verify(keys.get(&kid).unwrap()).unwrap();
    (Claims::from_payload(unverified.payload).unwrap(), kid)
}

#[tokio::test]
async fn the_authorize_endpoint_shows_a_sign_in_form_carrying_the_request() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let resp = get_query(
        &format!("{}/oauth2/authorize", idp.base_url()),
        &attempt.params(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    let page = resp.text().await.unwrap();
    for id in ["username", "password", "sign-in", "cancel"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "#{id}: {page}");
    }
    assert!(!page.contains("id=\"error\""), "{page}");
    for (name, value) in attempt.params() {
        assert!(
            page.contains(&format!("name=\"{name}\" value=\"{value}\"")),
            "hidden {name}: {page}"
        );
    }
}

#[tokio::test]
async fn invalid_authorize_requests_end_on_a_400_page_naming_the_problem_never_a_redirect() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let cases: [(&str, &str, &str); 7] = [
        ("redirect_uri", "https://evil.example/cb", "redirect_uri"),
        (
            "redirect_uri",
            "http://127.0.0.1:18080/other",
            "redirect_uri",
        ),
        ("client_id", "someone-else", "client_id"),
        ("response_type", "token", "response_type"),
        ("code_challenge_method", "plain", "code_challenge_method"),
        ("code_challenge", "short", "code_challenge"),
        ("scope", "email", "openid"),
    ];
    for (name, value, named) in cases {
        let params: Vec<(&str, String)> = attempt
            .params()
            .into_iter()
            .map(|(k, v)| {
                if k == name {
                    (k, value.to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        let resp = get_query(&format!("{}/oauth2/authorize", idp.base_url()), &params)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}={value}");
        assert!(resp.headers().get(header::LOCATION).is_none());
        let page = resp.text().await.unwrap();
        assert!(page.contains(named), "{name}={value}: {page}");
        assert!(!page.contains("<form"), "{name}={value}: {page}");
    }
    // A parameter given twice is refused too.
    let mut params = attempt.params();
    params.push(("redirect_uri", "https://evil.example/cb".into()));
    let resp = get_query(&format!("{}/oauth2/authorize", idp.base_url()), &params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn values_echoed_into_pages_are_html_escaped() {
    let idp = start().await;
    let mut attempt = Attempt::new(SPA);
    attempt.state = "\"><script>alert(1)</script>".into();
    let resp = get_query(
        &format!("{}/oauth2/authorize", idp.base_url()),
        &attempt.params(),
    )
    .send()
    .await
    .unwrap();
    let page = resp.text().await.unwrap();
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&quot;&gt;&lt;script&gt;"), "{page}");
    let resp = get_query(
        &format!("{}/oauth2/authorize", idp.base_url()),
        &[("client_id", DEMO_CLIENT), ("redirect_uri", "<img src=x>")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let page = resp.text().await.unwrap();
    assert!(!page.contains("<img"), "{page}");
    let resp = attempt
        .submit(&idp, &[("username", "<b>x</b>"), ("password", "nope")])
        .await;
    let page = resp.text().await.unwrap();
    assert!(
        !page.contains("<b>") && !page.contains("<script>"),
        "{page}"
    );
}

#[tokio::test]
async fn the_right_password_redirects_back_with_a_code_and_the_state() {
    let idp = start().await;
    for redirect_uri in [CALLBACK, SPA] {
        let attempt = Attempt::new(redirect_uri);
        let code = attempt.code(&idp, "alice", "alice-pass").await;
        assert!(code.len() >= 32, "{code}");
    }
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_401() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    for (user, password) in [
        ("alice", "bob-pass"),
        ("mallory", "alice-pass"),
        ("alice", ""),
    ] {
        let resp = attempt
            .submit(&idp, &[("username", user), ("password", password)])
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{user}");
        assert!(resp.headers().get(header::LOCATION).is_none());
        let page = resp.text().await.unwrap();
        assert!(page.contains("id=\"error\""), "{page}");
        assert!(page.contains("Incorrect username or password"), "{page}");
        assert!(
            page.contains(&format!("value=\"{user}\"")),
            "username kept: {page}"
        );
        assert!(
            page.contains(&format!("value=\"{}\"", attempt.state)),
            "request kept: {page}"
        );
    }
}

#[tokio::test]
async fn cancel_redirects_back_with_access_denied_and_the_state() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let resp = attempt.submit(&idp, &[("action", "cancel")]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = redirect_query(resp.headers(), CALLBACK);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], attempt.state);
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn the_code_exchanges_for_tokens_whose_id_token_carries_the_nonce_and_verifies() {
    let mut settings = IdpSettings::new(EXTERNAL, users());
    settings.token_lifetime_seconds = 120;
    let idp = start_with(settings).await;
    let attempt = Attempt::new(CALLBACK);
    let code = attempt.code(&idp, "alice", "alice-pass").await;
    let (status, body) = exchange(&idp, &attempt, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 120);
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|r| r.len() >= 32)
    );

    let (id, kid) = verified(&idp, body["id_token"].as_str().unwrap()).await;
    assert_eq!(kid, "demo-id-key");
    assert_eq!(id.token_use, TokenUse::Id);
    assert_eq!(id.iss, ISSUER);
    assert_eq!(id.raw["aud"], DEMO_CLIENT);
    assert_eq!(id.raw["nonce"], attempt.nonce.as_str());
    assert_eq!(id.username.as_deref(), Some("alice"));
    assert_eq!(id.groups, ["admins"]);
    assert_eq!(id.verified_email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.exp - id.iat, 120);

    let (access, kid) = verified(&idp, body["access_token"].as_str().unwrap()).await;
    assert_eq!(kid, "demo-access-key");
    assert_eq!(access.token_use, TokenUse::Access);
    assert_eq!(access.client_id, DEMO_CLIENT);
    assert!(!access.raw.contains_key("nonce"));
}

#[tokio::test]
async fn a_user_without_groups_gets_tokens_without_a_groups_claim() {
    let idp = start().await;
    let attempt = Attempt::new(SPA);
    let code = attempt.code(&idp, "bob", "bob-pass").await;
    let (status, body) = exchange(&idp, &attempt, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (id, _) = verified(&idp, body["id_token"].as_str().unwrap()).await;
    assert!(!id.raw.contains_key("cognito:groups"), "{:?}", id.raw);
}

#[tokio::test]
async fn a_wrong_code_verifier_is_an_invalid_grant_and_spends_the_code() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let code = attempt.code(&idp, "alice", "alice-pass").await;
    let wrong = Attempt {
        verifier: random_token().unwrap(),
        ..Attempt::new(CALLBACK)
    };
    let (status, body) = exchange(&idp, &wrong, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, serde_json::json!({"error": "invalid_grant"}));
    let (status, body) = exchange(&idp, &attempt, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_code_is_single_use() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let code = attempt.code(&idp, "alice", "alice-pass").await;
    assert_eq!(exchange(&idp, &attempt, &code).await.0, StatusCode::OK);
    let (status, body) = exchange(&idp, &attempt, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_code_redeems_only_with_the_redirect_uri_it_was_issued_for() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let code = attempt.code(&idp, "alice", "alice-pass").await;
    let elsewhere = Attempt {
        redirect_uri: SPA,
        state: attempt.state.clone(),
        nonce: attempt.nonce.clone(),
        verifier: attempt.verifier.clone(),
    };
    let (status, body) = exchange(&idp, &elsewhere, &code).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_6749_errors() {
    let idp = start().await;
    let (status, body) = token_request(
        &idp,
        &[("grant_type", "password"), ("client_id", DEMO_CLIENT)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = token_request(
        &idp,
        &[("grant_type", "authorization_code"), ("client_id", "other")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = token_request(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEMO_CLIENT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = token_request(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEMO_CLIENT),
            ("refresh_token", "nope"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let resp = client()
        .post(format!("{}/oauth2/token", idp.base_url()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"grant_type":"refresh_token"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(resp).await["error"], "invalid_request");
}

#[tokio::test]
async fn a_refresh_token_mints_a_new_id_token_without_nonce_or_new_refresh_token() {
    let idp = start().await;
    let attempt = Attempt::new(CALLBACK);
    let code = attempt.code(&idp, "alice", "alice-pass").await;
    let (_, first) = exchange(&idp, &attempt, &code).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let (status, body) = token_request(
            &idp,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", DEMO_CLIENT),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["token_type"], "Bearer");
        let id_token = body["id_token"].as_str().unwrap();
        assert_ne!(id_token, first["id_token"].as_str().unwrap());
        let (id, kid) = verified(&idp, id_token).await;
        assert_eq!(kid, "demo-id-key");
        assert_eq!(id.username.as_deref(), Some("alice"));
        assert!(!id.raw.contains_key("nonce"), "{:?}", id.raw);
        let (access, _) = verified(&idp, body["access_token"].as_str().unwrap()).await;
        assert_eq!(access.token_use, TokenUse::Access);
    }
}

#[tokio::test]
async fn http_basic_client_authentication_is_accepted_and_a_configured_secret_is_required() {
    use base64::Engine as _;
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let mut settings = IdpSettings::new(EXTERNAL, users());
    settings.client_secret = Some("s3cret".into());
    let idp = start_with(settings).await;
    let send = |auth: Option<String>, code: String, attempt_verifier: String| {
        let base = idp.base_url();
        async move {
            let mut req = post_form(
                &format!("{base}/oauth2/token"),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", attempt_verifier.as_str()),
                ],
            );
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, json(resp).await)
        }
    };
    // No secret, a wrong one, another client: invalid_client, with a Basic challenge.
    for auth in [
        None,
        Some(basic("demo-client", "wrong")),
        Some(basic("other", "s3cret")),
    ] {
        let attempt = Attempt::new(CALLBACK);
        let code = attempt.code(&idp, "bob", "bob-pass").await;
        let (status, body) = send(auth.clone(), code, attempt.verifier.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body["error"], "invalid_client");
    }
    let attempt = Attempt::new(CALLBACK);
    let code = attempt.code(&idp, "bob", "bob-pass").await;
    let (status, body) = send(
        Some(basic("demo-client", "s3cret")),
        code,
        attempt.verifier.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn the_token_endpoint_answers_cors_for_the_external_origin_only() {
    let idp = start().await;
    let url = format!("{}/oauth2/token", idp.base_url());
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, &url)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .send()
    };
    let ok = preflight(EXTERNAL).await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], EXTERNAL);
    assert!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("content-type")
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(
        other
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    for (origin, allowed) in [(EXTERNAL, true), ("https://evil.example", false)] {
        let resp = post_form(
            &url,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", DEMO_CLIENT),
                ("refresh_token", "x"),
            ],
        )
        .header(header::ORIGIN, origin)
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_some(),
            allowed,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn logout_redirects_only_to_uris_under_the_external_url() {
    let idp = start().await;
    let logout = |client_id: &'static str, uri: &'static str| {
        get_query(
            &format!("{}/logout", idp.base_url()),
            &[("client_id", client_id), ("logout_uri", uri)],
        )
        .send()
    };
    for uri in ["http://127.0.0.1:18080/", SPA] {
        let resp = logout(DEMO_CLIENT, uri).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{uri}");
        assert_eq!(resp.headers()[header::LOCATION], uri);
    }
    for uri in [
        "https://evil.example/",
        "http://127.0.0.1:180801/",
        "http://127.0.0.1:18080.evil.example/",
    ] {
        let resp = logout(DEMO_CLIENT, uri).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(resp.headers().get(header::LOCATION).is_none());
    }
    let resp = logout("other", SPA).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = client()
        .get(format!("{}/logout?client_id={DEMO_CLIENT}", idp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_echo_backend_serves_the_single_page_app_and_echoes_everything_else() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr =
        cognito_sidecar::demo::spa::serve_backend(listener, "http://127.0.0.1:4444").unwrap();
    let resp = client()
        .get(format!("http://{addr}/spa/?code=c&state=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("http://127.0.0.1:4444"),
        "{csp}"
    );
    let page = resp.text().await.unwrap();
    assert!(page.contains("content=\"http://127.0.0.1:4444\""), "{page}");
    let js = client()
        .get(format!("http://{addr}/spa/app.js"))
        .send()
        .await
        .unwrap();
    assert!(
        js.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = js.text().await.unwrap();
    assert!(js.contains("code_challenge_method") && js.contains("crypto.subtle.digest"));
    let echo = json(
        client()
            .get(format!("http://{addr}/api/whoami"))
            .header("x-auth-sub", "someone")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["backend"], "echo");
    assert_eq!(echo["uri"], "/api/whoami");
    assert_eq!(echo["headers"]["x-auth-sub"], "someone");
}

#[tokio::test]
async fn the_issuer_serves_its_jwks_and_404s_unknown_paths() {
    let idp = start().await;
    let jwks = json(client().get(idp.jwks_url()).send().await.unwrap()).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["demo-id-key", "demo-access-key"]);
    let resp = client()
        .get(format!("{}/nope", idp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = client()
        .get(format!("{}/oauth2/token", idp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}
