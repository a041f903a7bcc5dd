//! Test support, in one place for every test binary (each includes it with
//! `mod support;` and uses what it needs):
//!
//! - [`claims`]: the local IdP's keys and the one claim builder;
//! - [`config`]: the one canonical test configuration and helpers that edit it;
//! - [`servers`]: a JWKS server and a recording echo upstream;
//! - [`env`]: the sidecar started in-process on `127.0.0.1:0` listeners, raw sockets,
//!   metrics;
//! - [`tls`]: certificates generated at test time and HTTPS clients;
//! - [`wait`]: the one bounded `wait_until`, and waits on signals and metrics;
//! - [`process`]: the one process guard, the binary's command line, the one racy port
//!   picker (documented there);
//! - [`binary`]: the one launcher for the real binary;
//! - [`h2`]: hand-written HTTP/2 frames (not re-exported: `use support::h2::*`);
//! - [`alb`]: a load balancer stand-in that signs `x-amzn-oidc-data` and serves its
//!   public keys (not re-exported: `use support::alb::*`).
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the harness"
)]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::new_without_default,
    reason = "test harness"
)]

pub mod alb;
pub mod binary;
pub mod claims;
pub mod config;
pub mod env;
pub mod h2;
pub mod process;
pub mod servers;
pub mod tls;
pub mod wait;

pub use binary::*;
pub use claims::*;
pub use config::*;
pub use env::*;
pub use process::*;
pub use servers::*;
pub use tls::*;
pub use wait::*;
