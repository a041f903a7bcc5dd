//! Identity from an AWS Application Load Balancer that authenticated the user
//! (`[alb]`): the `x-amzn-oidc-data` header, signed by the load balancer with ES256.
//!
//! - `data.rs` (PURE): [`parse_data`] -> [`UnverifiedData`] -> [`UnverifiedData::verify`]
//!   with an [`AlbKey`] -> [`AlbClaims`]; one error type, [`AlbError`].
//! - `keys.rs` (I/O edge): [`AlbKeys`], the cache of load balancer public keys by
//!   `kid`, fetched from the region's ELB public-key endpoint: single-flight per `kid`,
//!   failures cached briefly, fetches bounded per window, entries bounded.
//!
//! The request path reads keys without waiting ([`AlbKeys::snapshot`] /
//! [`AlbKeys::get`]); only an unknown `kid` makes it await [`AlbKeys::fetch`] before
//! deciding again. The `x-amzn-oidc-accesstoken` header needs nothing here: it is a
//! Cognito access token, verified by [`crate::token`] like any other.

mod data;
mod keys;

pub use data::*;
pub use keys::*;
