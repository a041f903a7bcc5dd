//! `cognito-sidecar demo`: one process running an embedded development issuer (fresh
//! RSA keys, a JWKS endpoint and a managed-login look-alike on loopback), an echo
//! backend that answers with the request it received (and serves a small single-page
//! app at `/spa/`), and the real proxy configured against both, browser sign-in
//! included. Development aid only: normal runs never start it.
//!
//! This file holds what the parts share: the demo's names, its errors, the small
//! server loop and the Cognito-shaped claims. The parts:
//! - `demo/idp.rs`: the issuer's HTTP endpoints (JWKS, `/oauth2/authorize` with its
//!   sign-in form, `/logout`) and the public [`Idp`] handle tests start;
//! - `demo/token.rs`: its `/oauth2/token` (code exchange with PKCE, refresh, CORS for
//!   the SPA) and the bounded store of codes and refresh tokens;
//! - `demo/page.rs`: its HTML pages (HTML-escaped);
//! - `demo/spa.rs`: the echo backend and the single-page app (`demo/assets/`);
//! - `demo/run.rs`: the `demo` command: configuration, session keys file, start-up text.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::StartError;
use crate::issuer::IssuerError;

pub mod idp;
mod page;
mod run;
pub mod spa;
mod token;

pub use idp::{DemoUser, Idp, IdpSettings};
pub use run::{DemoLogin, DemoOptions, demo_config, run};

/// Pool id the demo issuer pretends to be.
pub const DEMO_POOL: &str = "us-east-1_DemoPool1";
/// App client id of the demo.
pub const DEMO_CLIENT: &str = "demo-client";
/// The `iss` of every token the demo issuer mints (the pool's Cognito issuer URL).
pub const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_DemoPool1";
/// `kid` of the key that signs ID tokens.
pub const ID_KEY: &str = "demo-id-key";
/// `kid` of the key that signs access tokens (like Cognito: a different key).
pub const ACCESS_KEY: &str = "demo-access-key";

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Key generation failed.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A socket could not be bound.
    #[error("{0} (choose other ports with --listen / --admin-listen)")]
    Io(#[from] std::io::Error),
    /// The session keys file could not be written.
    #[error("session keys file: {0}")]
    SessionKeys(#[source] std::io::Error),
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
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
