//! Browser sign-in (issue 11, in progress): the building blocks of the OAuth 2.0
//! authorization code flow with PKCE against the pool's managed login, and the sealed
//! session cookie. `flow.rs` holds the pure pieces of the flow (one-time values, the
//! authorize URL, the callback, safe return paths); `session.rs` the session cookies;
//! `token_endpoint.rs` the code exchange and refresh (I/O); `browser.rs` the browser
//! rules (navigations, same-origin checks for unsafe methods, the sealed sign-in
//! state, the nonce, the logout URL).
//! Not yet wired into routing: no route can ask for sign-in until the token exchange,
//! refresh, sign-out and CSRF checks land with their browser tests.

pub mod browser;
pub mod flow;
pub mod session;
pub mod token_endpoint;
