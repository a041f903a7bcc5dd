//! Report-only ("shadow") mode, `mode = "report"` at the top level or per route.
//!
//! Every decision passes through [`review`], in both modes: it is counted in
//! `cognito_sidecar_decisions_total{mode, outcome, reason, route}`. In enforce mode the
//! decision stands. In report mode a denial is turned into an anonymous admission:
//! the request is forwarded with every identity header stripped and none injected, and
//! its credential removed (an Allow with identity, a verified token that satisfies the
//! route, still gets identity headers). The decision itself is the one enforce mode
//! makes (same pure decision, same kid-miss refresh); only what happens to a denial
//! differs, and the access log says `report_denied` with the reason.
//!
//! Some refusals protect the proxy and the backend's parsing rather than authorize,
//! and stay refused in every mode ([`always_refused`]): a bad path, a lower-case
//! method, `CONNECT`/`TRACE`. So do the answers made before the decision (malformed
//! framing or `Host`, overload) and after it (a body over `max_request_body_bytes`).

use std::sync::Arc;

use http::request::Parts;

use super::Shared;
use crate::auth::{Admission, Admit, Decision, Denial};
use crate::config::{RolloutMode, RouteConfig};

/// The `route` label when the path cannot be canonicalised (no rule governs it).
const NO_ROUTE: &str = "none";

/// Counts `decision` and, in report mode, turns a denial the proxy may forward into an
/// anonymous admission. Returns the decision to carry out and, when report mode
/// forwards what enforce mode would refuse, the reason it would have been refused.
pub(super) fn review(
    decision: Decision,
    parts: &Parts,
    shared: &Shared,
) -> (Decision, Option<&'static str>) {
    let policy = &shared.policy;
    // The decision matched a rule but does not say which: the lookup is repeated on
    // the same canonical path (pure and cheap next to a signature check).
    let denied_path = match &decision {
        Decision::Allow(_) => None,
        Decision::Deny(_) => crate::path::canonicalize(parts.uri.path()).ok(),
    };
    let route = match (&decision, &denied_path) {
        (Decision::Allow(a), _) => Some(policy.route(&parts.method, &a.path)),
        (Decision::Deny(_), Some(path)) => Some(policy.route(&parts.method, path)),
        (Decision::Deny(_), None) => None,
    };
    let mode = route.map_or(shared.config.mode, |r| r.mode);
    let label = route.map_or(NO_ROUTE, |r| policy.route_label(r));
    let would_deny = match &decision {
        Decision::Deny(d) if mode == RolloutMode::Report && !always_refused(d) => Some(d.reason()),
        _ => None,
    };
    let (outcome, reason) = match (&decision, would_deny) {
        (Decision::Allow(_), _) => ("allow", "ok"),
        (Decision::Deny(_), Some(reason)) => ("would_deny", reason),
        (Decision::Deny(d), None) => ("deny", d.reason()),
    };
    shared
        .metrics
        .decisions
        .with_label_values(&[mode.label(), outcome, reason, label])
        .inc();
    match (would_deny, route, denied_path) {
        // A denial past the path check always has a canonical path and a rule.
        (Some(reason), Some(route), Some(path)) => {
            (Decision::Allow(anonymous(route, path)), Some(reason))
        }
        _ => (decision, None),
    }
}

/// Whether `decision` lets the request through under the configuration in force: an
/// allow, or a denial report mode forwards (WebSocket sessions re-checked on reload).
pub(crate) fn forwards(decision: &Decision, parts: &Parts, shared: &Shared) -> bool {
    match decision {
        Decision::Allow(_) => true,
        Decision::Deny(d) if always_refused(d) => false,
        Decision::Deny(_) => crate::path::canonicalize(parts.uri.path())
            .ok()
            .is_some_and(|p| shared.policy.route(&parts.method, &p).mode == RolloutMode::Report),
    }
}

/// Refusals report mode never forwards: they keep requests the proxy cannot pass on
/// safely away from the backend, whoever sends them. Exhaustive, so that a new reason
/// forces a decision.
fn always_refused(denial: &Denial) -> bool {
    match denial {
        // A path the backend may read differently than the rules did, a method a
        // backend may fold to another, a method that is never proxied.
        Denial::BadPath | Denial::BadMethod | Denial::MethodNotAllowed => true,
        // Everything about the credential and the route's rules: what report mode is
        // for. The credential is removed before forwarding whatever was wrong with it.
        Denial::InvalidRequest
        | Denial::Missing
        | Denial::TooLarge
        | Denial::Malformed
        | Denial::BadAlgorithm
        | Denial::BadHeader
        | Denial::MissingKid
        | Denial::WrongIssuer
        | Denial::UnknownKid { .. }
        | Denial::BadSignature
        | Denial::BadClaims
        | Denial::Expired
        | Denial::NotYetValid
        | Denial::IssuedInFuture
        | Denial::LifetimeTooLong
        | Denial::WrongTokenUse
        | Denial::WrongClient
        | Denial::KeysUnavailable
        | Denial::Forbidden
        | Denial::InsufficientScope { .. }
        | Denial::ScopesNeedAccessToken { .. }
        | Denial::Alb(_)
        | Denial::UnknownAlbKid { .. }
        | Denial::AlbMismatch
        // A revoked token forwarded anonymously gets no more than no token would.
        | Denial::Revoked
        | Denial::RevocationUnavailable => false,
    }
}

/// The admission of a would-be denial: as an anonymous request on an optional route
/// (no identity; the route's credential sources are removed before forwarding).
fn anonymous(route: &RouteConfig, path: String) -> Admission {
    Admission {
        admit: Admit::Anonymous,
        path,
        identity: None,
        cached: None,
        learned: None,
        websocket: route.websocket,
        sources: Arc::clone(&route.token_sources),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_that_protect_parsing_stay_refused_in_report_mode() {
        for d in [Denial::BadPath, Denial::BadMethod, Denial::MethodNotAllowed] {
            assert!(
                always_refused(&d),
                "{d:?} would be forwarded in report mode"
            );
        }
        for d in [
            Denial::Missing,
            Denial::InvalidRequest,
            Denial::BadSignature,
            Denial::UnknownKid { pool: 0 },
            Denial::Expired,
            Denial::WrongClient,
            Denial::Forbidden,
            Denial::KeysUnavailable,
            Denial::AlbMismatch,
        ] {
            assert!(!always_refused(&d), "{d:?} would be refused in report mode");
        }
    }
}
