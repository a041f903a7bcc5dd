//! The one way the sidecar builds an HTTP client for its own calls out (JWKS, the ALB's
//! public keys, Cognito's `GetUser`): no redirects followed, no proxy from the
//! environment, a connect timeout of at most 2 s within the call's own timeout, and a
//! `User-Agent` naming the sidecar and its version.

use std::time::Duration;

/// The longest a connect may take, whatever the call's timeout.
const MAX_CONNECT: Duration = Duration::from_secs(2);

/// A client whose calls end after `timeout`.
///
/// # Errors
/// If the client cannot be built (TLS roots unavailable); the error names no URL.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout.min(MAX_CONNECT))
        .timeout(timeout)
        .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(reqwest::Error::without_url)
}
