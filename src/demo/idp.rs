//! The demo issuer's HTTP server on its own loopback port: the JWKS, a managed-login
//! look-alike (`GET /oauth2/authorize` shows a sign-in form, `POST` checks the password
//! and redirects back with a code, or with `error=access_denied` on Cancel) and
//! Cognito's `GET /logout`. The token endpoint is in `token.rs`. [`Idp`] is the handle
//! the demo and the tests start it with.
//!
//! Requests are validated before anything is echoed or redirected: the client must be
//! the demo's, the redirect URI one of the two registered ones (a refused request ends
//! on a 400 page, never on a redirect), PKCE S256 is required.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::token::Grants;
use super::{DEMO_CLIENT, DEMO_POOL, page, spawn_server};
use crate::issuer::DevIssuer;
use crate::login::flow::{random_token, same_secret};

/// Largest form body read (sign-in form and token requests).
pub(super) const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest `state`, `nonce` or `scope` accepted.
const MAX_PARAM_BYTES: usize = 1024;
/// The proxy's callback path (the `[login]` default).
pub const CALLBACK_PATH: &str = "/_auth/callback";
/// Where the single-page app lives (its redirect URI).
pub const SPA_PATH: &str = "/spa/";

/// A user of the demo issuer.
#[derive(Clone)]
pub struct DemoUser {
    /// `cognito:username`.
    pub username: String,
    /// The password the sign-in form accepts.
    pub password: String,
    /// `cognito:groups` (omitted from tokens when empty, like Cognito).
    pub groups: Vec<String>,
}

impl DemoUser {
    /// A user with a known password (tests).
    #[must_use]
    pub fn new(username: &str, password: &str, groups: &[&str]) -> Self {
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// A user with a fresh random password (43 base64url characters). `None` only if
    /// the random source fails.
    #[must_use]
    pub fn with_random_password(username: &str, groups: &[&str]) -> Option<Self> {
        Some(Self::new(username, &random_token()?, groups))
    }
}

impl fmt::Debug for DemoUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoUser")
            .field("username", &self.username)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// How the demo issuer behaves.
#[derive(Debug, Clone)]
pub struct IdpSettings {
    /// `scheme://host[:port]` browsers reach the proxy at (no trailing slash): the
    /// registered redirect URIs are `<external_url>/_auth/callback` and
    /// `<external_url>/spa/`, logout URIs must start with it, and it is the one origin
    /// allowed to call the token endpoint from a browser (CORS).
    pub external_url: String,
    /// Who can sign in.
    pub users: Vec<DemoUser>,
    /// Lifetime of minted ID and access tokens (`expires_in`), in seconds.
    pub token_lifetime_seconds: u64,
    /// The app client's secret; `None` (the demo's case): a public client. When set,
    /// the token endpoint requires it (HTTP Basic or `client_secret`).
    pub client_secret: Option<String>,
}

impl IdpSettings {
    /// Settings for a public client with one-hour tokens.
    #[must_use]
    pub fn new(external_url: &str, users: Vec<DemoUser>) -> Self {
        Self {
            external_url: external_url.trim_end_matches('/').to_owned(),
            users,
            token_lifetime_seconds: 3600,
            client_secret: None,
        }
    }

    /// The redirect URIs registered for the demo client.
    #[must_use]
    pub fn redirect_uris(&self) -> [String; 2] {
        [
            format!("{}{CALLBACK_PATH}", self.external_url),
            format!("{}{SPA_PATH}", self.external_url),
        ]
    }

    /// Whether `uri` may be a `logout_uri`: the external URL itself or a path under it
    /// (a plain prefix test would admit `http://host:80801` or `http://host.evil`).
    #[must_use]
    pub fn allows_logout_uri(&self, uri: &str) -> bool {
        uri.strip_prefix(&self.external_url)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    }
}

/// A running demo issuer.
#[derive(Debug, Clone, Copy)]
pub struct Idp {
    addr: SocketAddr,
}

impl Idp {
    /// Starts the issuer on a fresh `127.0.0.1` port.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub async fn start(issuer: Arc<DevIssuer>, settings: IdpSettings) -> io::Result<Self> {
        Self::serve(TcpListener::bind("127.0.0.1:0").await?, issuer, settings)
    }

    /// Serves the issuer on `listener` (until the runtime stops).
    ///
    /// # Errors
    /// If the listener's address cannot be read.
    pub fn serve(
        listener: TcpListener,
        issuer: Arc<DevIssuer>,
        settings: IdpSettings,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            jwks: Bytes::from(issuer.jwks().to_string()),
            issuer,
            redirect_uris: settings.redirect_uris(),
            settings,
            grants: Mutex::new(Grants::default()),
        });
        spawn_server(listener, move |req| handle(Arc::clone(&state), req));
        Ok(Self { addr })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the managed-login `domain` of a `[login]` section.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The pool's JWKS URL.
    #[must_use]
    pub fn jwks_url(&self) -> String {
        format!("{}/{DEMO_POOL}/.well-known/jwks.json", self.base_url())
    }
}

/// What every request handler shares.
pub(super) struct State {
    pub(super) issuer: Arc<DevIssuer>,
    pub(super) settings: IdpSettings,
    redirect_uris: [String; 2],
    jwks: Bytes,
    /// Codes and refresh tokens; never held across an `.await`.
    pub(super) grants: Mutex<Grants>,
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/oauth2/authorize") => {
            authorize(&state, req.uri().query().unwrap_or("").as_bytes(), false)
        }
        (Method::POST, "/oauth2/authorize") => match read_form(req.into_body()).await {
            Ok(body) => authorize(&state, &body, true),
            Err(status) => page::html(status, page::problem("Bad request", "unreadable form")),
        },
        (Method::POST, "/oauth2/token") => super::token::token(&state, req).await,
        (Method::OPTIONS, "/oauth2/token") => super::token::preflight(&state, req.headers()),
        (Method::GET | Method::HEAD, "/logout") => logout(&state, req.uri().query()),
        (Method::GET | Method::HEAD, p) if p.ends_with("/.well-known/jwks.json") => {
            let mut r = Response::new(Full::new(state.jwks.clone()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        (_, "/oauth2/authorize" | "/oauth2/token" | "/logout") => page::html(
            StatusCode::METHOD_NOT_ALLOWED,
            page::problem("Method not allowed", &path),
        ),
        _ => page::html(StatusCode::NOT_FOUND, page::problem("Not found", &path)),
    }
}

/// Reads a form body of at most [`MAX_FORM_BYTES`].
///
/// # Errors
/// 413 if it is larger, 400 if the connection fails.
pub(super) async fn read_form(body: Incoming) -> Result<Bytes, StatusCode> {
    match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// URL-encoded parameters, each given at most once.
///
/// # Errors
/// The name of a parameter given twice.
pub(super) fn params(encoded: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(encoded) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(out)
}

/// `base` with `pairs` appended to its query.
pub(super) fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().copied())
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let Ok(value) = HeaderValue::from_str(location) else {
        return page::html(
            StatusCode::BAD_REQUEST,
            page::problem("Bad request", "the redirect target is not a valid URL"),
        );
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().insert(header::LOCATION, value);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An authorize request that passed every check.
struct Authorize {
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
}

impl Authorize {
    /// The request's parameters, for the form's hidden fields.
    fn hidden(&self) -> Vec<(&str, &str)> {
        let mut out = vec![
            ("response_type", "code"),
            ("client_id", DEMO_CLIENT),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", self.scope.as_str()),
            ("code_challenge", self.code_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(s) = &self.state {
            out.push(("state", s));
        }
        if let Some(n) = &self.nonce {
            out.push(("nonce", n));
        }
        out
    }

    /// Where the browser goes back to, with `pairs` and the state.
    fn back(&self, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        if let Some(s) = &self.state {
            all.push(("state", s));
        }
        with_query(&self.redirect_uri, &all)
    }
}

/// A PKCE S256 challenge or code verifier: base64url / unreserved characters only.
pub(super) fn is_pkce_value(v: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Checks an authorize request; the error is the problem, in words.
fn validate(state: &State, p: &HashMap<String, String>) -> Result<Authorize, String> {
    let get = |k: &str| p.get(k).map(String::as_str);
    if get("client_id") != Some(DEMO_CLIENT) {
        return Err(format!("client_id must be {DEMO_CLIENT}"));
    }
    let redirect_uri = get("redirect_uri").unwrap_or("");
    if !state.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(format!(
            "redirect_uri {redirect_uri:?} is not registered for this client (registered: {})",
            state.redirect_uris.join(", ")
        ));
    }
    if get("response_type") != Some("code") {
        return Err("response_type must be code".to_owned());
    }
    if get("code_challenge_method") != Some("S256") {
        return Err("code_challenge_method must be S256 (PKCE is required)".to_owned());
    }
    let code_challenge = get("code_challenge").unwrap_or("");
    if !is_pkce_value(code_challenge, 43, 43) {
        return Err("code_challenge must be an S256 challenge (43 base64url characters)".into());
    }
    let scope = get("scope").unwrap_or("openid email profile");
    if !scope.split(' ').any(|s| s == "openid") {
        return Err("scope must include openid".to_owned());
    }
    for name in ["scope", "state", "nonce"] {
        if get(name).is_some_and(|v| v.len() > MAX_PARAM_BYTES) {
            return Err(format!("{name} is longer than {MAX_PARAM_BYTES} bytes"));
        }
    }
    Ok(Authorize {
        redirect_uri: redirect_uri.to_owned(),
        scope: scope.to_owned(),
        state: get("state").map(str::to_owned),
        nonce: get("nonce").map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
    })
}

/// `GET` shows the form; `POST` (the form) signs in, fails with 401, or cancels.
fn authorize(state: &State, encoded: &[u8], submitted: bool) -> Response<Full<Bytes>> {
    let refuse = |detail: &str| {
        page::html(
            StatusCode::BAD_REQUEST,
            page::problem("Invalid sign-in request", detail),
        )
    };
    let p = match params(encoded) {
        Ok(p) => p,
        Err(dup) => return refuse(&format!("{dup} is given more than once")),
    };
    let request = match validate(state, &p) {
        Ok(r) => r,
        Err(problem) => return refuse(&problem),
    };
    let form = |status, username: &str, error| {
        page::html(
            status,
            page::sign_in_form(DEMO_CLIENT, &request.hidden(), username, error),
        )
    };
    if !submitted {
        return form(StatusCode::OK, "", None);
    }
    if p.get("action").map(String::as_str) == Some("cancel") {
        return redirect(&request.back(&[("error", "access_denied")]));
    }
    let username = p.get("username").map_or("", String::as_str);
    let password = p.get("password").map_or("", String::as_str);
    // An unknown user and a wrong password get the same answer.
    let Some(user) = state
        .settings
        .users
        .iter()
        .position(|u| u.username == username && same_secret(&u.password, password))
    else {
        return form(
            StatusCode::UNAUTHORIZED,
            username,
            Some("Incorrect username or password."),
        );
    };
    let Some(code) = random_token() else {
        return page::html(
            StatusCode::INTERNAL_SERVER_ERROR,
            page::problem("Sign-in failed", "the random source failed"),
        );
    };
    state.grants_lock().insert_code(
        code.clone(),
        super::token::Code {
            user,
            redirect_uri: request.redirect_uri.clone(),
            challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            auth_time: crate::clock::unix_now(),
            expires: crate::clock::now() + super::token::CODE_LIFETIME,
        },
    );
    redirect(&request.back(&[("code", &code)]))
}

/// Cognito's logout endpoint: back to `logout_uri` if it belongs to the app.
fn logout(state: &State, query: Option<&str>) -> Response<Full<Bytes>> {
    let refuse = |detail: &str| {
        page::html(
            StatusCode::BAD_REQUEST,
            page::problem("Invalid sign-out request", detail),
        )
    };
    let p = match params(query.unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(dup) => return refuse(&format!("{dup} is given more than once")),
    };
    if p.get("client_id").map(String::as_str) != Some(DEMO_CLIENT) {
        return refuse(&format!("client_id must be {DEMO_CLIENT}"));
    }
    match p.get("logout_uri") {
        Some(uri) if state.settings.allows_logout_uri(uri) => redirect(uri),
        Some(uri) => refuse(&format!(
            "logout_uri {uri:?} is not a sign-out URL of this client (it must start with {})",
            state.settings.external_url
        )),
        None => refuse("logout_uri is required"),
    }
}

impl State {
    /// The grant store (a poisoned lock still holds consistent maps: every update is
    /// a single insert or remove).
    pub(super) fn grants_lock(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.grants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logout_uris_must_be_the_external_url_or_under_it() {
        let s = IdpSettings::new("http://127.0.0.1:8080/", vec![]);
        assert_eq!(s.external_url, "http://127.0.0.1:8080");
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/spa/",
            "http://127.0.0.1:8080?x=1",
        ] {
            assert!(s.allows_logout_uri(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:80801/",
            "http://127.0.0.1:8080.evil.example/",
            "http://127.0.0.1:8080@evil.example/",
            "https://evil.example/?http://127.0.0.1:8080",
            "",
        ] {
            assert!(!s.allows_logout_uri(bad), "{bad}");
        }
    }

    #[test]
    fn parameters_given_twice_are_refused_and_queries_are_appended() {
        assert_eq!(params(b"a=1&b=2&a=3"), Err("a".to_owned()));
        assert_eq!(params(b"a=%3C1%3E").unwrap()["a"], "<1>");
        assert_eq!(
            with_query("http://h/spa/", &[("code", "a b"), ("state", "&")]),
            "http://h/spa/?code=a+b&state=%26"
        );
        assert_eq!(
            with_query("http://h/?x=1", &[("y", "2")]),
            "http://h/?x=1&y=2"
        );
    }

    #[test]
    fn pkce_values_are_base64url_of_bounded_length() {
        assert!(is_pkce_value(&"a".repeat(43), 43, 43));
        assert!(!is_pkce_value(&"a".repeat(42), 43, 43));
        assert!(!is_pkce_value(&format!("{}=", "a".repeat(42)), 43, 43));
        assert!(is_pkce_value(
            "abc-._~XYZ0123456789abcdefghijklmnopqrstuvwx",
            43,
            128
        ));
    }

    #[test]
    fn user_debug_output_hides_the_password() {
        let u = DemoUser::new("alice", "s3cret", &["admins"]);
        assert!(!format!("{u:?}").contains("s3cret"));
    }
}
