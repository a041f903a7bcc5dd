//! `[identity]`: the headers that tell the backend who was authenticated. Typed
//! settings, the default header names and their checks.

use http::HeaderName;

use super::normalize_header_name;
use super::raw::RawIdentity;
use super::validate::{Root, Validator};

/// Identity headers sent to the backend.
///
/// Each `*_header` key names its header; an empty name turns that header off. The
/// defaults are the `DEFAULT_*` constants below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Every inbound header whose normalized name starts with this is removed.
    pub header_prefix: Option<String>,
    /// `sub` claim.
    pub sub_header: Option<HeaderName>,
    /// `username` (access) or `cognito:username` (ID).
    pub username_header: Option<HeaderName>,
    /// `email`, only when `email_verified` is true.
    pub email_header: Option<HeaderName>,
    /// `cognito:groups`, comma-joined, each element percent-encoded.
    pub groups_header: Option<HeaderName>,
    /// `scope`, comma-joined.
    pub scope_header: Option<HeaderName>,
    /// `token_use`.
    pub token_use_header: Option<HeaderName>,
    /// `aud` (ID) or `client_id` (access).
    pub client_id_header: Option<HeaderName>,
    /// Name of the pool that verified the token.
    pub pool_header: Option<HeaderName>,
    /// All verified claims, base64url JSON.
    pub claims_header: Option<HeaderName>,
    /// Extra claim -> header mappings.
    pub claims: Vec<(String, HeaderName)>,
    /// Forward the client's `Authorization` header.
    pub forward_authorization: bool,
}

/// Defaults of the `[identity]` keys ("" = the header is off unless configured).
impl IdentityConfig {
    /// `header_prefix`.
    pub const DEFAULT_HEADER_PREFIX: &'static str = "X-Auth-";
    /// `sub_header`.
    pub const DEFAULT_SUB_HEADER: &'static str = "X-Auth-Sub";
    /// `username_header`.
    pub const DEFAULT_USERNAME_HEADER: &'static str = "X-Auth-Username";
    /// `email_header`.
    pub const DEFAULT_EMAIL_HEADER: &'static str = "X-Auth-Email";
    /// `groups_header`.
    pub const DEFAULT_GROUPS_HEADER: &'static str = "X-Auth-Groups";
    /// `scope_header`.
    pub const DEFAULT_SCOPE_HEADER: &'static str = "X-Auth-Scope";
    /// `token_use_header`.
    pub const DEFAULT_TOKEN_USE_HEADER: &'static str = "X-Auth-Token-Use";
    /// `client_id_header`.
    pub const DEFAULT_CLIENT_ID_HEADER: &'static str = "X-Auth-Client-Id";
    /// `pool_header` (off).
    pub const DEFAULT_POOL_HEADER: &'static str = "";
    /// `claims_header` (off).
    pub const DEFAULT_CLAIMS_HEADER: &'static str = "";
    /// `forward_authorization`.
    pub const DEFAULT_FORWARD_AUTHORIZATION: bool = false;

    /// Every header name this proxy manages (stripped from clients, set by us).
    #[must_use]
    pub fn managed_headers(&self) -> Vec<HeaderName> {
        [
            &self.sub_header,
            &self.username_header,
            &self.email_header,
            &self.groups_header,
            &self.scope_header,
            &self.token_use_header,
            &self.client_id_header,
            &self.pool_header,
            &self.claims_header,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .chain(self.claims.iter().map(|(_, h)| h.clone()))
        .collect()
    }
}

impl Validator {
    /// `[identity]`: valid header names, none of them hop-by-hop, framing or `Host`.
    pub(super) fn identity(&mut self, root: &Root) -> Option<IdentityConfig> {
        type D = IdentityConfig;
        let raw = self.optional::<RawIdentity>(root, "identity", RawIdentity::default())?;
        let before = self.problems.len();
        let prefix = raw
            .header_prefix
            .unwrap_or_else(|| D::DEFAULT_HEADER_PREFIX.to_owned());
        let header_prefix = if prefix.is_empty() {
            None
        } else if HeaderName::from_bytes(prefix.as_bytes()).is_err() {
            self.problem(
                "identity.header_prefix",
                format!("{prefix:?} is not a valid header name prefix"),
            );
            None
        } else {
            Some(normalize_header_name(&prefix))
        };
        let mut claims = Vec::new();
        for (claim, header) in raw.claims {
            let key = format!("identity.claims.{claim:?}");
            if header.is_empty() {
                continue;
            }
            if let Some(h) = self.header_name(&key, Some(header), "") {
                claims.push((claim, h));
            }
        }
        let id = IdentityConfig {
            header_prefix,
            sub_header: self.header_name(
                "identity.sub_header",
                raw.sub_header,
                D::DEFAULT_SUB_HEADER,
            ),
            username_header: self.header_name(
                "identity.username_header",
                raw.username_header,
                D::DEFAULT_USERNAME_HEADER,
            ),
            email_header: self.header_name(
                "identity.email_header",
                raw.email_header,
                D::DEFAULT_EMAIL_HEADER,
            ),
            groups_header: self.header_name(
                "identity.groups_header",
                raw.groups_header,
                D::DEFAULT_GROUPS_HEADER,
            ),
            scope_header: self.header_name(
                "identity.scope_header",
                raw.scope_header,
                D::DEFAULT_SCOPE_HEADER,
            ),
            token_use_header: self.header_name(
                "identity.token_use_header",
                raw.token_use_header,
                D::DEFAULT_TOKEN_USE_HEADER,
            ),
            client_id_header: self.header_name(
                "identity.client_id_header",
                raw.client_id_header,
                D::DEFAULT_CLIENT_ID_HEADER,
            ),
            pool_header: self.header_name(
                "identity.pool_header",
                raw.pool_header,
                D::DEFAULT_POOL_HEADER,
            ),
            claims_header: self.header_name(
                "identity.claims_header",
                raw.claims_header,
                D::DEFAULT_CLAIMS_HEADER,
            ),
            claims,
            forward_authorization: raw
                .forward_authorization
                .unwrap_or(D::DEFAULT_FORWARD_AUTHORIZATION),
        };
        for h in id.managed_headers() {
            if crate::header_names::is_hop_by_hop_or_framing(&h) || h == http::header::HOST {
                self.problem(
                    "identity",
                    format!("{h} cannot be used as an identity header"),
                );
            }
        }
        (self.problems.len() == before).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};

    #[test]
    fn default_identity_headers_and_empty_names_turn_headers_off() {
        let cfg = Config::from_toml(MIN).expect("valid");
        let names: Vec<String> = cfg
            .identity
            .managed_headers()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "x-auth-sub",
                "x-auth-username",
                "x-auth-email",
                "x-auth-groups",
                "x-auth-scope",
                "x-auth-token-use",
                "x-auth-client-id"
            ]
        );
        assert_eq!(cfg.identity.header_prefix.as_deref(), Some("x-auth-"));
        let off = Config::from_toml(&format!(
            "{MIN}\n[identity]\nsub_header = \"\"\nheader_prefix = \"\"\npool_header = \"X-Pool\""
        ))
        .expect("valid");
        assert_eq!(off.identity.sub_header, None);
        assert_eq!(off.identity.header_prefix, None);
        assert_eq!(
            off.identity.pool_header.as_ref().map(|h| h.as_str()),
            Some("x-pool")
        );
    }

    #[test]
    fn framing_headers_cannot_carry_identity() {
        let p = problems(&format!(
            "{MIN}\n[identity]\nsub_header = \"Content-Length\""
        ));
        assert_eq!(
            p,
            ["identity: content-length cannot be used as an identity header"]
        );
    }
}
