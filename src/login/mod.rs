//! Browser sign-in: the OAuth 2.0 authorization code flow with PKCE against the pool's
//! managed login, and the sealed session cookie. `flow.rs` holds the pure pieces of the
//! flow (one-time values, the authorize URL, the callback, safe return paths);
//! `session.rs` the session cookies; `token_endpoint.rs` the code exchange and refresh
//! (I/O); `browser.rs` the browser rules (navigations, same-origin checks for unsafe
//! methods, the sealed sign-in state, the nonce, the logout URL); `limit.rs` the
//! per-address rate limit of the sign-in endpoints; `runtime.rs` one configuration's
//! machinery ([`Login`]). The proxy's `login` phase does the HTTP around them.

pub mod browser;
pub mod flow;
pub mod limit;
pub mod runtime;
pub mod session;
pub mod token_endpoint;

pub use runtime::{Login, LoginError};
