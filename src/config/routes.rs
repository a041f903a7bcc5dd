//! `[[routes]]`: which requests need which credentials. Typed rules and their checks;
//! the request-time matching is in the `auth` module.

use std::sync::Arc;

use figment::value::Value;
use serde::Deserialize;

use super::TokenUse;
use super::raw::RawRoute;
use super::sources::{TokenSource, is_token_name};
use super::validate::{Root, Validator};

/// How a route treats credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A valid token is required (the default for every path).
    #[default]
    Required,
    /// No token needed; identity headers are still stripped.
    Public,
    /// No token forwards anonymously; a token that is present must be valid.
    Optional,
    /// Like `Required`, and browsers without a token use a session: top-level
    /// navigations without one are sent to sign in (`[login]`).
    Login,
}

impl AuthMode {
    /// `Required` or `Login`: the route needs a verified token.
    #[must_use]
    pub fn needs_token(self) -> bool {
        matches!(self, Self::Required | Self::Login)
    }
}

/// Whether a route's refusals are carried out (`mode`, top level and per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RolloutMode {
    /// Requests the decision refuses are refused (the default).
    #[default]
    Enforce,
    /// Report-only ("shadow"): every decision is made, logged and counted as in enforce
    /// mode, and a request it would refuse is forwarded anonymously (no identity, no
    /// credential). Requests the proxy can never forward stay refused.
    Report,
}

impl RolloutMode {
    /// Metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Report => "report",
        }
    }
}

/// The `route` label of the implicit rule that governs paths no `[[routes]]` entry
/// matches (configured paths start with `/`, so it never names one of them).
pub const DEFAULT_ROUTE_LABEL: &str = "default";

/// How a route's `path` is compared with the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    /// Whole-segment prefix: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[default]
    Prefix,
    /// The whole path, exactly.
    Exact,
}

/// One route rule; the first rule that matches a request decides its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Canonical path or prefix (leading `/`).
    pub path: String,
    /// Prefix or exact comparison.
    pub path_match: PathMatch,
    /// Upper-case methods the rule applies to; empty means all.
    pub methods: Vec<String>,
    /// Credential handling.
    pub auth: AuthMode,
    /// Any-of `cognito:groups` membership required.
    pub groups: Vec<String>,
    /// Any-of access-token scopes required.
    pub scopes: Vec<String>,
    /// Token kinds this route accepts; empty means what the pool accepts.
    pub token_use: Vec<TokenUse>,
    /// Authenticated WebSocket upgrades are bridged on this route.
    pub websocket: bool,
    /// Query parameter a token may also come from (browsers cannot set headers on
    /// WebSockets); empty: header only.
    pub token_query_param: String,
    /// Cookie a token may also come from; empty: header only.
    pub token_cookie: String,
    /// Every place a credential may come from on this route: the route's
    /// `token_sources` (else the top-level list), plus `token_query_param` and
    /// `token_cookie`.
    pub token_sources: Arc<[TokenSource]>,
    /// The route's `mode`, else the top-level one.
    pub mode: RolloutMode,
}

impl super::Config {
    /// The routes in report mode, as their metric labels (`path`, or
    /// [`DEFAULT_ROUTE_LABEL`] for the implicit default rule).
    #[must_use]
    pub fn report_mode_routes(&self) -> Vec<&str> {
        let routes = self
            .routes
            .iter()
            .filter(|r| r.mode == RolloutMode::Report)
            .map(|r| r.path.as_str());
        let default = (self.mode == RolloutMode::Report).then_some(DEFAULT_ROUTE_LABEL);
        routes.chain(default).collect()
    }

    /// The warning `check-config` prints and `/readyz` shows while any route is in
    /// report mode (`None` when none is).
    #[must_use]
    pub fn report_mode_warning(&self) -> Option<String> {
        let routes = self.report_mode_routes();
        (!routes.is_empty()).then(|| {
            format!(
                "report mode (mode = \"report\") on route(s) {}: requests they would refuse are \
                 forwarded without identity",
                routes.join(", ")
            )
        })
    }
}

impl Validator {
    /// `[[routes]]` (optional; none means every path requires a token).
    pub(super) fn routes(
        &mut self,
        root: &Root,
        global: Option<&Arc<[TokenSource]>>,
        mode: RolloutMode,
    ) -> Option<Vec<RouteConfig>> {
        let items = self.optional::<Vec<Value>>(root, "routes", Vec::new())?;
        let mut routes = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let key = format!("routes[{i}]");
            let Some(raw) = self.get::<RawRoute>(&key, Some(item)) else {
                ok = false;
                continue;
            };
            match self.route(&key, raw, global, mode) {
                Some(r) => routes.push(r),
                None => ok = false,
            }
        }
        ok.then_some(routes)
    }

    /// One `[[routes]]` entry (`key` is `routes[i]`).
    fn route(
        &mut self,
        key: &str,
        raw: RawRoute,
        global: Option<&Arc<[TokenSource]>>,
        mode: RolloutMode,
    ) -> Option<RouteConfig> {
        let before = self.problems.len();
        if !raw.path.starts_with('/') {
            self.problem(&format!("{key}.path"), "must start with '/'");
        } else {
            match crate::path::canonicalize(&raw.path) {
                Ok(c)
                    if c == raw.path || c == raw.path.trim_end_matches('/') || raw.path == "/" => {}
                _ => self.problem(
                    &format!("{key}.path"),
                    "must be a canonical path (no '..', '.', '//', '%2F', '\\')",
                ),
            }
        }
        let mut methods = Vec::new();
        for m in &raw.methods {
            // Methods are case-sensitive tokens; requests in any other spelling are
            // refused, so a rule must name the one spelling that can arrive.
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                self.problem(
                    &format!("{key}.methods"),
                    format!("{m:?} is not an upper-case HTTP method token (e.g. \"GET\")"),
                );
            }
            methods.push(m.clone());
        }
        if !raw.auth.needs_token()
            && (!raw.groups.is_empty() || !raw.scopes.is_empty() || !raw.token_use.is_empty())
        {
            self.problem(
                &format!("{key}.auth"),
                "groups, scopes and token_use need auth = \"required\" or \"login\"",
            );
        }
        if raw.auth == AuthMode::Login
            && (!raw.scopes.is_empty() || raw.token_use == [TokenUse::Access])
        {
            self.problem(
                &format!("{key}.auth"),
                "a browser session presents its ID token: scopes and token_use = [\"access\"] \
                 cannot be met on a login route",
            );
        }
        if !raw.scopes.is_empty() && raw.token_use.contains(&TokenUse::Id) {
            self.problem(
                &format!("{key}.scopes"),
                "scopes can only be met by access tokens; remove \"id\" from token_use",
            );
        }
        let token_name_ok = |n: &str| n.is_empty() || is_token_name(n);
        if !token_name_ok(&raw.token_query_param) || !token_name_ok(&raw.token_cookie) {
            self.problem(
                &format!("{key}.token_query_param"),
                "query parameter and cookie names are letters, digits, '-', '_', '.'",
            );
        }
        let mut sources = match &raw.token_sources {
            Some(list) => self
                .source_list(&format!("{key}.token_sources"), list)
                .unwrap_or_default(),
            None => global.map(|g| g.to_vec()).unwrap_or_default(),
        };
        if !raw.token_query_param.is_empty() {
            let q = TokenSource::Query(raw.token_query_param.clone());
            if !sources.contains(&q) {
                sources.push(q);
            }
        }
        if !raw.token_cookie.is_empty() {
            let c = TokenSource::Cookie(raw.token_cookie.clone());
            if !sources.contains(&c) {
                sources.push(c);
            }
        }
        if raw.auth == AuthMode::Login
            && global.is_some()
            && !sources.contains(&TokenSource::Bearer)
        {
            self.problem(
                &format!("{key}.token_sources"),
                "a login route needs \"bearer\" (the session presents its ID token as a bearer token)",
            );
        }
        if raw.groups.iter().chain(&raw.scopes).any(String::is_empty) {
            self.problem(key, "group and scope names must not be empty");
        }
        if self.problems.len() != before {
            return None;
        }
        Some(RouteConfig {
            path: raw.path,
            path_match: raw.path_match,
            methods,
            auth: raw.auth,
            groups: raw.groups,
            scopes: raw.scopes,
            token_use: raw.token_use,
            websocket: raw.websocket,
            token_query_param: raw.token_query_param,
            token_cookie: raw.token_cookie,
            token_sources: sources.into(),
            mode: raw.mode.unwrap_or(mode),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

    #[test]
    fn scopes_on_an_id_token_route_are_rejected() {
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/a\"\nscopes = [\"x/y\"]\ntoken_use = [\"id\"]"
        ));
        assert!(p.iter().any(|m| m.contains("routes[0].scopes")), "{p:?}");
    }

    #[test]
    fn non_canonical_route_paths_are_rejected() {
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/a/../b\"\nauth = \"public\""
        ));
        assert!(p.iter().any(|m| m.contains("routes[0].path")), "{p:?}");
    }

    #[test]
    fn a_route_defaults_to_a_required_prefix_rule_for_every_method() {
        let cfg =
            Config::from_toml(&format!("{MIN}\n[[routes]]\npath = \"/api/\"")).expect("valid");
        let r = &cfg.routes[0];
        assert_eq!(
            (r.path_match, r.auth),
            (PathMatch::Prefix, AuthMode::Required)
        );
        assert!(r.methods.is_empty() && r.token_use.is_empty() && !r.websocket);
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/a\"\nmethods = [\"get\"]\ngroups = [\"\"]"
        ));
        assert_eq!(
            p,
            [
                "routes[0].methods: \"get\" is not an upper-case HTTP method token (e.g. \"GET\")",
                "routes[0]: group and scope names must not be empty",
            ]
        );
    }

    #[test]
    fn a_route_without_a_mode_takes_the_top_level_one_and_the_default_rule_counts() {
        let cfg = Config::from_toml(&format!(
            "mode = \"report\"\n{MIN}\n[[routes]]\npath = \"/a\"\n[[routes]]\npath = \"/b\"\nmode = \"enforce\""
        ))
        .expect("valid");
        let modes: Vec<_> = cfg.routes.iter().map(|r| r.mode).collect();
        assert_eq!(modes, [RolloutMode::Report, RolloutMode::Enforce]);
        assert_eq!(cfg.report_mode_routes(), ["/a", DEFAULT_ROUTE_LABEL]);
        assert!(
            cfg.report_mode_warning()
                .is_some_and(|w| w.contains("/a, default"))
        );
        let enforced = Config::from_toml(MIN).expect("valid");
        assert_eq!(enforced.mode, RolloutMode::Enforce);
        assert_eq!(enforced.report_mode_warning(), None);
        let p = problems(&format!("mode = \"shadow\"\n{MIN}"));
        assert!(
            p.len() == 1 && p[0].starts_with("mode: ") && p[0].contains("report"),
            "{p:?}"
        );
    }
}
