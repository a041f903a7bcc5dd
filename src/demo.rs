//! `cognito-sidecar demo`: one process running an embedded development issuer (fresh
//! RSA keys, a JWKS endpoint on loopback), an echo backend that answers with the
//! request it received, and the real proxy configured against both. It prints
//! ready-to-paste `curl` commands. Development aid only: normal runs never start it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::issuer::{DevIssuer, IssuerError};
use crate::{Listeners, StartError};

/// Pool id the demo issuer pretends to be.
pub const DEMO_POOL: &str = "us-east-1_DemoPool1";
/// App client id of the demo.
pub const DEMO_CLIENT: &str = "demo-client";
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_DemoPool1";

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Key generation failed.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A socket could not be bound.
    #[error("{0} (choose other ports with --listen / --admin-listen)")]
    Io(#[from] std::io::Error),
    /// The generated configuration was rejected (a bug).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The proxy could not start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Serves `handler` on `listener` forever (HTTP/1.1 and h2c).
pub fn spawn_server<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let svc = service_fn(move |req| {
                let fut = handler(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            tokio::spawn(conn);
        }
    });
}

fn json_response(v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Echo backend: answers with the method, path and headers it received.
async fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    // Count the body frame by frame: the echo never holds a whole upload in memory.
    let mut body_stream = req.into_body();
    let mut body = 0usize;
    while let Some(Ok(frame)) = body_stream.frame().await {
        body += frame.data_ref().map_or(0, bytes::Bytes::len);
    }
    json_response(
        &json!({"backend": "echo", "method": method, "uri": uri, "body_bytes": body, "headers": headers}),
    )
}

/// The demo configuration for the given addresses.
///
/// # Errors
/// Only if the generated TOML is invalid (a bug).
pub fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    jwks: SocketAddr,
) -> Result<Config, DemoError> {
    Ok(Config::from_toml(&format!(
        r#"
        listen = "{listen}"
        admin_listen = "{admin}"
        upstream = "http://{upstream}"
        log_format = "text"
        [[pools]]
        name = "demo"
        id = "{DEMO_POOL}"
        client_ids = ["{DEMO_CLIENT}"]
        token_use = ["id", "access"]
        jwks_url = "http://{jwks}/{DEMO_POOL}/.well-known/jwks.json"
        [identity]
        pool_header = "X-Auth-Pool"
        [[routes]]
        path = "/public/"
        auth = "public"
        [[routes]]
        path = "/admin/"
        groups = ["admins"]
        "#
    ))?)
}

/// Cognito-shaped ID token claims.
#[must_use]
pub fn id_claims(user: &str, groups: &[&str], iat: i64, exp: i64) -> Value {
    json!({
        "sub": format!("{user}-0000-4000-8000-{:012}", user.len()),
        "cognito:groups": groups,
        "email_verified": true,
        "iss": ISSUER,
        "cognito:username": user,
        "origin_jti": "demo-origin",
        "aud": DEMO_CLIENT,
        "event_id": "demo-event",
        "token_use": "id",
        "auth_time": iat,
        "exp": exp,
        "iat": iat,
        "jti": format!("demo-id-{user}"),
        "email": format!("{user}@example.com"),
    })
}

/// Cognito-shaped access token claims.
#[must_use]
pub fn access_claims(user: &str, groups: &[&str], iat: i64, exp: i64) -> Value {
    json!({
        "sub": format!("{user}-0000-4000-8000-{:012}", user.len()),
        "cognito:groups": groups,
        "iss": ISSUER,
        "version": 2,
        "client_id": DEMO_CLIENT,
        "origin_jti": "demo-origin",
        "event_id": "demo-event",
        "token_use": "access",
        "scope": "openid email orders/read",
        "auth_time": iat,
        "exp": exp,
        "iat": iat,
        "jti": format!("demo-access-{user}"),
        "username": user,
    })
}

/// Runs the demo until `shutdown` resolves.
///
/// # Errors
/// [`DemoError`] if keys cannot be generated or ports cannot be bound.
pub async fn run(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    // Like Cognito: ID and access tokens are signed with different keys.
    let issuer = Arc::new(DevIssuer::generate(&["demo-id-key", "demo-access-key"])?);
    let jwks_listener = TcpListener::bind("127.0.0.1:0").await?;
    let jwks_addr = jwks_listener.local_addr()?;
    let jwks_doc = issuer.jwks();
    spawn_server(jwks_listener, move |_req| {
        let doc = jwks_doc.clone();
        async move { json_response(&doc) }
    });
    let echo_listener = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo_listener.local_addr()?;
    spawn_server(echo_listener, echo);

    let config = demo_config(listen, admin_listen, echo_addr, jwks_addr)?;
    let listeners = Listeners::bind(&config).await?;
    let mut running = crate::start(config, listeners, shutdown).await?;
    running.ready().await;
    let addr = running.proxy_addr;

    let t = crate::clock::unix_now();
    let alice_id = issuer.mint("demo-id-key", &id_claims("alice", &["users"], t, t + 3600));
    let alice_access = issuer.mint(
        "demo-access-key",
        &access_claims("alice", &["users"], t, t + 3600),
    );
    let bob_access = issuer.mint(
        "demo-access-key",
        &access_claims("bob", &["admins"], t, t + 3600),
    );
    let expired = issuer.mint(
        "demo-id-key",
        &id_claims("alice", &["users"], t - 7200, t - 3600),
    );

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ncognito-sidecar demo: proxy on http://{addr}, admin on http://{}",
        running.admin_addr
    );
    let _ = writeln!(
        out,
        "(embedded issuer for pool {DEMO_POOL}, client {DEMO_CLIENT}; echo backend on {echo_addr})\n"
    );
    let _ = writeln!(
        out,
        "# 200: an ID token; the echo shows X-Auth-Sub, X-Auth-Username, X-Auth-Email, X-Auth-Groups ..."
    );
    let _ = writeln!(
        out,
        "curl -i http://{addr}/hello -H 'Authorization: Bearer {alice_id}'\n"
    );
    let _ = writeln!(
        out,
        "# 200: an access token (X-Auth-Scope, X-Auth-Token-Use: access)"
    );
    let _ = writeln!(
        out,
        "curl -i http://{addr}/hello -H 'Authorization: Bearer {alice_access}'\n"
    );
    let _ = writeln!(out, "# 401 invalid_token, \"The access token expired\"");
    let _ = writeln!(
        out,
        "curl -i http://{addr}/hello -H 'Authorization: Bearer {expired}'\n"
    );
    let _ = writeln!(
        out,
        "# 403 insufficient_scope: alice is not in group admins"
    );
    let _ = writeln!(
        out,
        "curl -i http://{addr}/admin/panel -H 'Authorization: Bearer {alice_access}'\n"
    );
    let _ = writeln!(out, "# 200: bob is in group admins");
    let _ = writeln!(
        out,
        "curl -i http://{addr}/admin/panel -H 'Authorization: Bearer {bob_access}'\n"
    );
    let _ = writeln!(
        out,
        "# 401 without a token; 200 on the public route, spoofed identity headers stripped"
    );
    let _ = writeln!(out, "curl -i http://{addr}/hello");
    let _ = writeln!(
        out,
        "curl -i http://{addr}/public/info -H 'X-Auth-Sub: admin'\n"
    );
    let _ = writeln!(out, "# health and metrics");
    let _ = writeln!(
        out,
        "curl http://{}/readyz; curl -s http://{}/metrics | grep cognito_sidecar_auth_denied",
        running.admin_addr, running.admin_addr
    );
    let _ = writeln!(out, "\nPress Ctrl-C to stop.");
    println!("{out}");
    running.wait().await;
    Ok(())
}
