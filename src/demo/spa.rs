//! The demo's upstream: an echo backend that answers with the method, path and headers
//! it received (so the identity headers the proxy injected are visible), and that also
//! serves a small single-page app at `/spa/` (`assets/spa.html`, `assets/spa.js`). The
//! app signs in by itself with the authorization code flow and PKCE against the demo
//! issuer (WebCrypto and fetch, no external script), keeps its tokens in
//! `sessionStorage` and calls `/api/whoami` with `Authorization: Bearer <ID token>`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::page::escape;
use super::{DEMO_CLIENT, json_response, spawn_server};

const SPA_HTML: &str = include_str!("assets/spa.html");
const SPA_JS: &str = include_str!("assets/spa.js");

/// Serves the echo backend, with the single-page app signing in at `idp_base_url`
/// (the demo issuer's `http://<addr>`), on `listener`.
///
/// # Errors
/// If the listener's address cannot be read.
pub fn serve_backend(listener: TcpListener, idp_base_url: &str) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let page = Arc::new(spa_page(idp_base_url));
    let csp: Arc<str> = Arc::from(spa_csp(idp_base_url));
    spawn_server(listener, move |req: Request<Incoming>| {
        let page = Arc::clone(&page);
        let csp = Arc::clone(&csp);
        async move {
            let spa = matches!(*req.method(), Method::GET | Method::HEAD);
            match req.uri().path() {
                "/spa/" | "/spa/index.html" if spa => {
                    asset(&page, "text/html; charset=utf-8", &csp)
                }
                "/spa/app.js" if spa => asset(SPA_JS, "text/javascript; charset=utf-8", &csp),
                _ => echo(req).await,
            }
        }
    });
    Ok(addr)
}

/// The app's HTML with the issuer and client filled in.
fn spa_page(idp_base_url: &str) -> String {
    SPA_HTML
        .replace("{{IDP}}", &escape(idp_base_url))
        .replace("{{CLIENT_ID}}", &escape(DEMO_CLIENT))
}

/// Scripts from this origin only; fetch to this origin and the issuer.
fn spa_csp(idp_base_url: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
         connect-src 'self' {idp_base_url}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

fn asset(body: &str, content_type: &'static str, csp: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// Echo backend: answers with the method, path and headers it received.
pub async fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    // Count the body frame by frame: the echo never holds a whole upload in memory.
    let mut body_stream = req.into_body();
    let mut body = 0usize;
    while let Some(Ok(frame)) = body_stream.frame().await {
        body += frame.data_ref().map_or(0, bytes::Bytes::len);
    }
    json_response(
        &json!({"backend": "echo", "method": method, "uri": uri, "body_bytes": body, "headers": headers}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_page_names_the_issuer_and_client_and_loads_only_its_own_script() {
        let page = spa_page("http://127.0.0.1:4000");
        assert!(page.contains("content=\"http://127.0.0.1:4000\""), "{page}");
        assert!(page.contains("content=\"demo-client\""), "{page}");
        assert!(!page.contains("{{"), "{page}");
        assert!(page.contains("<script src=\"/spa/app.js\""));
        assert!(!page.contains("http://cdn") && !page.contains("https://"));
        for id in ["sign-in", "call-api", "result", "who", "sign-out", "status"] {
            assert!(page.contains(&format!("id=\"{id}\"")), "#{id} missing");
        }
    }
}
