//! The pool's token endpoint (I/O): exchanging an authorization code (with its PKCE
//! verifier) and refreshing a session, as a public client or a confidential one (HTTP
//! Basic with the client secret, RFC 6749 section 2.3.1). Answers are bounded in size
//! and time; errors carry the OAuth error code only, never a token or a description.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// Largest token endpoint answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// Why the token endpoint gave no tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// The endpoint could not be reached or did not answer in time.
    #[error("token endpoint unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    /// The endpoint refused (`invalid_grant`, ...), with its HTTP status.
    #[error("token endpoint refused ({status}): {error}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth error code, or `unknown`.
        error: String,
    },
    /// The answer was not a token response.
    #[error("token endpoint answer is not a token response")]
    Malformed,
}

impl TokenEndpointError {
    /// Metric label.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Transport(_) => "unreachable",
            Self::Refused { .. } => "refused",
            Self::Malformed => "malformed",
        }
    }
}

/// The tokens a grant produced.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tokens {
    /// The ID token (required: sign-in asks for `openid`).
    pub id_token: String,
    /// The access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// A refresh token (absent on refresh answers that do not rotate it).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

/// A client of one token endpoint.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    http: reqwest::Client,
    url: String,
    client_id: String,
    secret: Option<String>,
}

impl TokenEndpoint {
    /// A client for `url`, authenticating as `client_id` (with `secret` when the app
    /// client is confidential).
    ///
    /// # Errors
    /// [`TokenEndpointError::Transport`] if the HTTP client cannot be built.
    pub fn new(
        url: &str,
        client_id: &str,
        secret: Option<String>,
        timeout: Duration,
    ) -> Result<Self, TokenEndpointError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TokenEndpointError::Transport)?;
        Ok(Self {
            http,
            url: url.to_owned(),
            client_id: client_id.to_owned(),
            secret,
        })
    }

    /// Exchanges an authorization code.
    ///
    /// # Errors
    /// [`TokenEndpointError`].
    pub async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Tokens, TokenEndpointError> {
        self.grant(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Uses a refresh token.
    ///
    /// # Errors
    /// [`TokenEndpointError`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, TokenEndpointError> {
        self.grant(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn grant(&self, params: &[(&str, &str)]) -> Result<Tokens, TokenEndpointError> {
        // The serializer is not `Send`: finish it before the first await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(params.iter().copied());
            form.append_pair("client_id", &self.client_id);
            form.finish()
        };
        let mut req = self
            .http
            .post(&self.url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        if let Some(secret) = &self.secret {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(&self.client_id), enc(secret)));
            req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| TokenEndpointError::Transport(e.without_url()))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| TokenEndpointError::Transport(e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(TokenEndpointError::Malformed);
            }
            body.extend_from_slice(&chunk);
        }
        if status != 200 {
            let error = serde_json::from_slice::<OAuthError>(&body)
                .ok()
                .map(|e| e.error)
                .filter(|e| {
                    e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or_else(|| "unknown".to_owned());
            return Err(TokenEndpointError::Refused { status, error });
        }
        serde_json::from_slice(&body).map_err(|_| TokenEndpointError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use std::sync::{Arc, Mutex};

    /// A token endpoint that records each request's headers and form, and answers
    /// `answer`.
    async fn endpoint(
        answer: (u16, &'static str),
    ) -> (String, Arc<Mutex<Vec<(http::HeaderMap, String)>>>) {
        let seen: Arc<Mutex<Vec<(http::HeaderMap, String)>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = Arc::clone(&seen);
        crate::demo::spawn_server(
            listener,
            move |req: http::Request<hyper::body::Incoming>| {
                let s = Arc::clone(&s);
                async move {
                    let (parts, body) = req.into_parts();
                    let form = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    s.lock()
                        .unwrap()
                        .push((parts.headers, String::from_utf8_lossy(&form).into_owned()));
                    let mut r = Response::new(Full::new(Bytes::from_static(answer.1.as_bytes())));
                    *r.status_mut() = StatusCode::from_u16(answer.0).unwrap();
                    r
                }
            },
        );
        (format!("http://{addr}/oauth2/token"), seen)
    }

    #[tokio::test]
    async fn a_code_is_exchanged_with_its_verifier_and_the_secret_in_basic_auth() {
        let (url, seen) = endpoint((
            200,
            r#"{"id_token":"I","access_token":"A","refresh_token":"R","expires_in":3600,"token_type":"Bearer"}"#,
        ))
        .await;
        let ep = TokenEndpoint::new(
            &url,
            "client 1",
            Some("s3cr:t".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        let tokens = ep.exchange("C", "https://app/cb", "V").await.unwrap();
        assert_eq!(tokens.id_token, "I");
        assert_eq!(tokens.refresh_token.as_deref(), Some("R"));
        let (headers, form) = seen.lock().unwrap()[0].clone();
        let form: std::collections::HashMap<String, String> =
            form_urlencoded::parse(form.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "C");
        assert_eq!(form["code_verifier"], "V");
        assert_eq!(form["redirect_uri"], "https://app/cb");
        assert_eq!(form["client_id"], "client 1");
        assert_eq!(
            headers["authorization"],
            format!("Basic {}", STANDARD.encode("client+1:s3cr%3At"))
        );
    }

    #[tokio::test]
    async fn refusals_carry_only_the_oauth_error_code() {
        let (url, _) =
            endpoint((400, r#"{"error":"invalid_grant","error_description":"x"}"#)).await;
        let ep = TokenEndpoint::new(&url, "c", None, Duration::from_secs(5)).unwrap();
        match ep.refresh("R").await {
            Err(TokenEndpointError::Refused { status: 400, error }) => {
                assert_eq!(error, "invalid_grant");
            }
            other => panic!("{other:?}"),
        }
        let (url, _) = endpoint((200, r#"{"access_token":"A"}"#)).await;
        let ep = TokenEndpoint::new(&url, "c", None, Duration::from_secs(5)).unwrap();
        assert!(matches!(
            ep.refresh("R").await,
            Err(TokenEndpointError::Malformed)
        ));
    }
}
