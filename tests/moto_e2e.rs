//! End to end against moto's Cognito emulator: real moto-minted ID and access tokens go
//! through the real `cognito-sidecar` binary to a recording backend.
//!
//! Needs `moto_server` (PyPI `moto[server]`) on `PATH` and `python3` with `boto3`. Without
//! them the test prints why it is skipping and passes, unless
//! `COGNITO_E2E_REQUIRE_MOTO=1`, in which case it fails.
//!
//! One `#[tokio::test]` shares the expensive setup (moto, pool provisioning, proxy); every
//! behaviour is a separately named check, all are run, and the failures are reported
//! together with the proxy's log.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;
use support::{ChildGuard, POLL, free_port, moto_server, sidecar_command};

const MOTO_START_TIMEOUT: Duration = Duration::from_secs(30);
const SETUP_SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const PROXY_READY_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("reqwest client: {e}"))
}

/// Polls `url` until it answers with `want` (any status if `None`), failing early if
/// `child` exits.
async fn wait_http(
    client: &reqwest::Client,
    url: &str,
    want: Option<u16>,
    child: &mut ChildGuard,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        if let Some(status) = child.exited() {
            return Err(format!(
                "{} exited ({status}) before {url} answered\n{}",
                child.name(),
                child.stderr_tail()
            ));
        }
        match client
            .get(url)
            .timeout(Duration::from_millis(500))
            .send()
            .await
        {
            Ok(r) if want.is_none_or(|w| r.status().as_u16() == w) => return Ok(()),
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{url} did not answer {} within {timeout:?} (last: {last})\n{}",
                want.map_or_else(|| "at all".to_owned(), |w| w.to_string()),
                child.stderr_tail()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// Recording backend
// ---------------------------------------------------------------------------

/// One request as the backend saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    /// All values of a header (name compared case-insensitively).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header; an error if absent or repeated.
    fn one(&self, name: &str) -> Result<&str, String> {
        match self.all(name).as_slice() {
            [v] => Ok(v),
            [] => Err(format!(
                "backend got no {name} header; it got {:?}",
                self.headers
            )),
            many => Err(format!("backend got {name} {} times: {many:?}", many.len())),
        }
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn take(log: &Log) -> Vec<Seen> {
    std::mem::take(&mut *log.lock().unwrap_or_else(PoisonError::into_inner))
}

async fn start_backend(log: Log) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind backend: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("backend addr: {e}"))?;
    cognito_sidecar::demo::spawn_server(listener, move |req: Request<Incoming>| {
        let log = Arc::clone(&log);
        async move {
            let seen = Seen {
                path: req.uri().path().to_owned(),
                headers: req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
            };
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(seen);
            Response::new(Full::new(Bytes::from_static(b"backend-ok")))
        }
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// Tokens from moto
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct UserTokens {
    sub: String,
    id_token: String,
    access_token: String,
}

#[derive(Debug)]
struct Moto {
    pool_id: String,
    client_id: String,
    other_client_id: String,
    alice: UserTokens,
    bob: UserTokens,
    other_id_token: String,
    other_access_token: String,
    foreign_pool_id: String,
    foreign_client_id: String,
    foreign_id_token: String,
    foreign_access_token: String,
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(key)
            .ok_or_else(|| format!("setup output has no {}", path.join(".")))?;
    }
    cur.as_str()
        .ok_or_else(|| format!("setup output {} is not a string", path.join(".")))
}

fn parse_setup(out: &str) -> Result<Moto, String> {
    let v: Value = serde_json::from_str(out.trim())
        .map_err(|e| format!("setup script printed no JSON object ({e}): {out:?}"))?;
    let user = |name: &str| -> Result<UserTokens, String> {
        Ok(UserTokens {
            sub: field(&v, &["users", name, "sub"])?.to_owned(),
            id_token: field(&v, &["users", name, "id_token"])?.to_owned(),
            access_token: field(&v, &["users", name, "access_token"])?.to_owned(),
        })
    };
    Ok(Moto {
        pool_id: field(&v, &["pool_id"])?.to_owned(),
        client_id: field(&v, &["client_id"])?.to_owned(),
        other_client_id: field(&v, &["other_client_id"])?.to_owned(),
        alice: user("alice")?,
        bob: user("bob")?,
        other_id_token: field(&v, &["other_client", "id_token"])?.to_owned(),
        other_access_token: field(&v, &["other_client", "access_token"])?.to_owned(),
        foreign_pool_id: field(&v, &["foreign_pool", "pool_id"])?.to_owned(),
        foreign_client_id: field(&v, &["foreign_pool", "client_id"])?.to_owned(),
        foreign_id_token: field(&v, &["foreign_pool", "id_token"])?.to_owned(),
        foreign_access_token: field(&v, &["foreign_pool", "access_token"])?.to_owned(),
    })
}

/// The token with one character in the middle of its signature replaced (never the
/// last character, whose low bits are padding and may decode to the same bytes).
fn tamper_signature(token: &str) -> Result<String, String> {
    let dot = token.rfind('.').ok_or("token has no signature segment")?;
    let mut bytes = token.as_bytes().to_vec();
    let i = dot + 1 + (bytes.len() - dot - 1) / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// The environment shared by all checks
// ---------------------------------------------------------------------------

struct Env {
    client: reqwest::Client,
    proxy: String,
    log: Log,
    moto: Moto,
}

struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    body: String,
    backend: Vec<Seen>,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {}, WWW-Authenticate {:?}, body {:?}, backend saw {} request(s)",
            self.status,
            self.www_authenticate,
            self.body,
            self.backend.len()
        )
    }
}

impl Env {
    /// Sends `GET path` with the given headers and returns what the client and the
    /// backend saw.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        take(&self.log);
        let mut req = self.client.get(format!("{}{path}", self.proxy));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("GET {path} failed: {e}"))?;
        let status = resp.status().as_u16();
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = resp
            .text()
            .await
            .map_err(|e| format!("GET {path}: reading body: {e}"))?;
        Ok(Reply {
            status,
            www_authenticate,
            body,
            backend: take(&self.log),
        })
    }

    async fn bearer(&self, path: &str, token: &str) -> Result<Reply, String> {
        self.get(path, &[("authorization", &format!("Bearer {token}"))])
            .await
    }
}

/// The single request the backend saw, or an error naming what happened instead.
fn forwarded<'a>(r: &'a Reply, what: &str) -> Result<&'a Seen, String> {
    if r.status != 200 {
        return Err(format!("{what}: expected the backend's 200, got {r}"));
    }
    if r.body != "backend-ok" {
        return Err(format!("{what}: 200 did not come from the backend: {r}"));
    }
    match r.backend.as_slice() {
        [seen] => Ok(seen),
        _ => Err(format!(
            "{what}: backend should have seen exactly one request: {:?}",
            r.backend
        )),
    }
}

fn expect_eq(what: &str, got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// A rejection with `status` whose challenge carries `error` (or no `error` at all when
/// `None`), and which never reached the backend.
fn rejected(r: &Reply, what: &str, status: u16, error: Option<&str>) -> Result<(), String> {
    if r.status != status {
        return Err(format!("{what}: expected {status}, got {r}"));
    }
    if !r.backend.is_empty() {
        return Err(format!(
            "{what}: the backend was contacted for a rejected request: {:?}",
            r.backend
        ));
    }
    let www = r
        .www_authenticate
        .as_deref()
        .ok_or_else(|| format!("{what}: {status} without WWW-Authenticate: {r}"))?;
    if !www.starts_with("Bearer realm=\"api\"") {
        return Err(format!("{what}: unexpected challenge {www:?}"));
    }
    match error {
        Some(e) if !www.contains(&format!("error=\"{e}\"")) => Err(format!(
            "{what}: WWW-Authenticate should say error=\"{e}\": {www:?}"
        )),
        None if www.contains("error") => Err(format!(
            "{what}: a missing token must not be answered with an error code: {www:?}"
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

async fn a_moto_id_token_reaches_the_backend_with_its_identity(env: &Env) -> Result<(), String> {
    let alice = &env.moto.alice;
    let r = env.bearer("/hello?x=1", &alice.id_token).await?;
    let seen = forwarded(&r, "GET /hello with alice's ID token")?;
    expect_eq("backend path", &seen.path, "/hello")?;
    expect_eq("X-Auth-Sub", seen.one("x-auth-sub")?, &alice.sub)?;
    expect_eq("X-Auth-Username", seen.one("x-auth-username")?, "alice")?;
    expect_eq("X-Auth-Token-Use", seen.one("x-auth-token-use")?, "id")?;
    expect_eq(
        "X-Auth-Client-Id",
        seen.one("x-auth-client-id")?,
        &env.moto.client_id,
    )?;
    expect_eq("X-Auth-Groups", seen.one("x-auth-groups")?, "admins")?;
    // moto serializes email_verified as the string "true".
    expect_eq(
        "X-Auth-Email (moto's email_verified is the string \"true\")",
        seen.one("x-auth-email")?,
        "alice@example.com",
    )?;
    if !seen.all("authorization").is_empty() {
        return Err(format!(
            "the Authorization header was forwarded to the backend: {:?}",
            seen.all("authorization")
        ));
    }
    Ok(())
}

async fn a_moto_access_token_reaches_the_backend_as_an_access_token(
    env: &Env,
) -> Result<(), String> {
    let bob = &env.moto.bob;
    let r = env.bearer("/hello", &bob.access_token).await?;
    let seen = forwarded(&r, "GET /hello with bob's access token")?;
    expect_eq("X-Auth-Sub", seen.one("x-auth-sub")?, &bob.sub)?;
    expect_eq("X-Auth-Username", seen.one("x-auth-username")?, "bob")?;
    expect_eq("X-Auth-Token-Use", seen.one("x-auth-token-use")?, "access")?;
    expect_eq(
        "X-Auth-Client-Id",
        seen.one("x-auth-client-id")?,
        &env.moto.client_id,
    )?;
    expect_eq(
        "X-Auth-Scope",
        seen.one("x-auth-scope")?,
        "aws.cognito.signin.user.admin",
    )?;
    if !seen.all("x-auth-groups").iter().all(|g| g.is_empty()) {
        return Err(format!(
            "bob is in no group but the backend got X-Auth-Groups {:?}",
            seen.all("x-auth-groups")
        ));
    }
    if !seen.all("authorization").is_empty() {
        return Err("the Authorization header was forwarded to the backend".to_owned());
    }
    Ok(())
}

async fn a_member_of_admins_passes_the_admin_route_and_a_non_member_gets_403(
    env: &Env,
) -> Result<(), String> {
    for token in [&env.moto.alice.id_token, &env.moto.alice.access_token] {
        let r = env.bearer("/admin/x", token).await?;
        let seen = forwarded(&r, "GET /admin/x as alice (in admins)")?;
        expect_eq("X-Auth-Groups", seen.one("x-auth-groups")?, "admins")?;
    }
    for token in [&env.moto.bob.id_token, &env.moto.bob.access_token] {
        let r = env.bearer("/admin/x", token).await?;
        rejected(
            &r,
            "GET /admin/x as bob (not in admins)",
            403,
            Some("insufficient_scope"),
        )?;
    }
    Ok(())
}

async fn an_id_token_on_the_access_only_route_is_invalid(env: &Env) -> Result<(), String> {
    let r = env.bearer("/orders/1", &env.moto.alice.id_token).await?;
    rejected(
        &r,
        "GET /orders/1 with an ID token",
        401,
        Some("invalid_token"),
    )?;
    let r = env
        .bearer("/orders/1", &env.moto.alice.access_token)
        .await?;
    let seen = forwarded(&r, "GET /orders/1 with an access token")?;
    expect_eq("X-Auth-Token-Use", seen.one("x-auth-token-use")?, "access")
}

async fn tokens_minted_for_an_unconfigured_app_client_are_invalid(env: &Env) -> Result<(), String> {
    let moto = &env.moto;
    for (kind, token) in [
        ("ID", &moto.other_id_token),
        ("access", &moto.other_access_token),
    ] {
        let r = env.bearer("/hello", token).await?;
        rejected(
            &r,
            &format!(
                "{kind} token for app client {} (configured: {})",
                moto.other_client_id, moto.client_id
            ),
            401,
            Some("invalid_token"),
        )?;
    }
    Ok(())
}

async fn a_validly_signed_token_from_another_pool_is_invalid(env: &Env) -> Result<(), String> {
    // moto signs all pools with one key and the foreign pool's client id is configured
    // (see `proxy_config`), so only the issuer check can reject these.
    let moto = &env.moto;
    for (kind, token) in [
        ("ID", &moto.foreign_id_token),
        ("access", &moto.foreign_access_token),
    ] {
        let r = env.bearer("/hello", token).await?;
        rejected(
            &r,
            &format!(
                "{kind} token issued by pool {} (configured: {})",
                moto.foreign_pool_id, moto.pool_id
            ),
            401,
            Some("invalid_token"),
        )?;
    }
    Ok(())
}

async fn a_token_with_one_signature_character_changed_is_invalid(env: &Env) -> Result<(), String> {
    for (kind, token) in [
        ("ID", &env.moto.alice.id_token),
        ("access", &env.moto.alice.access_token),
    ] {
        let bad = tamper_signature(token)?;
        let r = env.bearer("/hello", &bad).await?;
        rejected(
            &r,
            &format!("{kind} token with a changed signature"),
            401,
            Some("invalid_token"),
        )?;
    }
    Ok(())
}

async fn a_request_without_a_token_gets_a_bare_bearer_challenge(env: &Env) -> Result<(), String> {
    let r = env.get("/hello", &[]).await?;
    rejected(&r, "GET /hello without a token", 401, None)
}

async fn the_public_route_needs_no_token_and_spoofed_identity_headers_never_arrive(
    env: &Env,
) -> Result<(), String> {
    let spoof: &[(&str, &str)] = &[
        ("x-auth-sub", "admin"),
        ("x-auth-groups", "admins"),
        ("x_auth_sub", "admin"),
    ];
    let r = env.get("/public/x", spoof).await?;
    let seen = forwarded(&r, "GET /public/x without a token")?;
    for name in ["x-auth-sub", "x-auth-groups", "x_auth_sub"] {
        if !seen.all(name).is_empty() {
            return Err(format!(
                "a client-supplied {name} reached the backend on the public route: {:?}",
                seen.headers
            ));
        }
    }
    // With a real token the spoofed value must be replaced, not added to.
    let mut headers = spoof.to_vec();
    let auth = format!("Bearer {}", env.moto.bob.id_token);
    headers.push(("authorization", &auth));
    let r = env.get("/hello", &headers).await?;
    let seen = forwarded(&r, "GET /hello with bob's token and spoofed headers")?;
    expect_eq(
        "X-Auth-Sub with a spoofed X-Auth-Sub: admin",
        seen.one("x-auth-sub")?,
        &env.moto.bob.sub,
    )?;
    if seen.all("x-auth-groups").contains(&"admins") || !seen.all("x_auth_sub").is_empty() {
        return Err(format!(
            "spoofed identity headers reached the backend next to a real token: {:?}",
            seen.headers
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Setup and the test
// ---------------------------------------------------------------------------

fn proxy_config(
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    moto_port: u16,
    moto: &Moto,
) -> String {
    format!(
        r#"
listen = "{listen}"
admin_listen = "{admin}"
upstream = "http://{upstream}"
log_format = "text"

# The foreign pool's client id is listed so that its tokens (signed with the same moto
# key) can only be told apart by their issuer.
[[pools]]
id = "{pool}"
client_ids = ["{client}", "{foreign_client}"]
token_use = ["id", "access"]
jwks_url = "http://127.0.0.1:{moto_port}/{pool}/.well-known/jwks.json"

[[routes]]
path = "/admin/"
groups = ["admins"]

[[routes]]
path = "/orders/"
token_use = ["access"]

[[routes]]
path = "/public/"
auth = "public"
"#,
        pool = moto.pool_id,
        client = moto.client_id,
        foreign_client = moto.foreign_client_id,
    )
}

/// Everything that must stay alive while the checks run. Field order is drop order:
/// the proxy is stopped before moto.
struct Running {
    env: Env,
    proxy: ChildGuard,
    _moto: ChildGuard,
    _dir: tempfile::TempDir,
}

async fn set_up(moto_server: &Path) -> Result<Running, String> {
    let started = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let client = http_client()?;

    // moto
    let moto_port = free_port();
    let mut cmd = Command::new(moto_server);
    cmd.args(["-H", "127.0.0.1", "-p", &moto_port.to_string()]);
    let mut moto = ChildGuard::spawn("moto_server", cmd, dir.path())?;
    let endpoint = format!("http://127.0.0.1:{moto_port}");
    // Any pool id answers with moto's JWKS, which proves the Cognito backend is up.
    wait_http(
        &client,
        &format!("{endpoint}/us-east-1_probe/.well-known/jwks.json"),
        Some(200),
        &mut moto,
        MOTO_START_TIMEOUT,
    )
    .await?;
    eprintln!("moto_server up on {endpoint} after {:?}", started.elapsed());

    // Pool, clients, users, tokens
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/cognito_setup.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args(["--endpoint", &endpoint]);
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        cmd.env(k, v);
    }
    let mut setup = ChildGuard::spawn("cognito_setup.py", cmd, dir.path())?;
    let status = setup.wait_exit(SETUP_SCRIPT_TIMEOUT).await?;
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); is boto3 installed for python3?\n{}",
            script.display(),
            setup.stderr_tail()
        ));
    }
    let tokens = parse_setup(&setup.stdout())?;
    eprintln!(
        "pool {} provisioned after {:?}",
        tokens.pool_id,
        started.elapsed()
    );

    // Backend and proxy
    let log = Log::default();
    let upstream = start_backend(Arc::clone(&log)).await?;
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config_path = dir.path().join("sidecar.toml");
    std::fs::write(
        &config_path,
        proxy_config(listen, admin, upstream, moto_port, &tokens),
    )
    .map_err(|e| format!("write config: {e}"))?;
    // No inherited COGNITO_SIDECAR_* or proxy variables; plain log lines.
    let mut cmd = sidecar_command();
    cmd.arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info");
    let mut proxy = ChildGuard::spawn("cognito-sidecar", cmd, dir.path())?;
    wait_http(
        &client,
        &format!("http://{admin}/readyz"),
        Some(200),
        &mut proxy,
        PROXY_READY_TIMEOUT,
    )
    .await?;
    eprintln!("proxy ready on {listen} after {:?}", started.elapsed());

    Ok(Running {
        env: Env {
            client,
            proxy: format!("http://{listen}"),
            log,
            moto: tokens,
        },
        proxy,
        _moto: moto,
        _dir: dir,
    })
}

macro_rules! checks {
    ($env:expr, $($check:ident),+ $(,)?) => {{
        let mut results = Vec::new();
        $(
            let t = Instant::now();
            let result = $check($env).await;
            let name = stringify!($check).replace('_', " ");
            eprintln!(
                "{} {name} ({:?})",
                if result.is_ok() { "ok  " } else { "FAIL" },
                t.elapsed()
            );
            results.push((name, result));
        )+
        results
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_minted_cognito_tokens_through_the_real_proxy() {
    let Some(moto_server) = moto_server() else {
        return;
    };
    let started = Instant::now();
    let mut running = match set_up(&moto_server).await {
        Ok(r) => r,
        Err(e) => panic!("moto end-to-end setup failed: {e}"),
    };
    let env = &running.env;
    let results = checks!(
        env,
        a_moto_id_token_reaches_the_backend_with_its_identity,
        a_moto_access_token_reaches_the_backend_as_an_access_token,
        a_member_of_admins_passes_the_admin_route_and_a_non_member_gets_403,
        an_id_token_on_the_access_only_route_is_invalid,
        tokens_minted_for_an_unconfigured_app_client_are_invalid,
        a_validly_signed_token_from_another_pool_is_invalid,
        a_token_with_one_signature_character_changed_is_invalid,
        a_request_without_a_token_gets_a_bare_bearer_challenge,
        the_public_route_needs_no_token_and_spoofed_identity_headers_never_arrive,
    );
    let mut failures = String::new();
    for (name, result) in &results {
        if let Err(e) = result {
            let _ = writeln!(failures, "\n* {name}:\n    {e}");
        }
    }
    if let Some(status) = running.proxy.exited() {
        let _ = writeln!(
            failures,
            "\n* the proxy exited during the checks ({status})"
        );
    }
    eprintln!("moto end-to-end finished in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {} moto end-to-end checks failed:{failures}\n{}",
        results.iter().filter(|(_, r)| r.is_err()).count(),
        results.len(),
        running.proxy.stderr_tail()
    );
}
