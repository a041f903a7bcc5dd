//! Resource bounds and credential hygiene over real sockets: repeated credentials in
//! one source, long uploads, and bridged WebSocket sessions that outlive their token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use support::*;

const BROWSER_ROUTE: &str = "[[routes]]\npath = \"/browser/\"\ntoken_query_param = \"access_token\"\ntoken_cookie = \"id_token\"\n";

#[tokio::test]
async fn a_credential_repeated_in_one_source_is_an_invalid_request() {
    let env = Env::configured("", BROWSER_ROUTE).await;
    let a = mint(&access_claims());
    let b = mint(&with(
        access_claims(),
        "sub",
        serde_json::json!("someone-else"),
    ));
    // One credential per source is fine.
    assert_eq!(
        env.get(&format!("/browser/x?access_token={a}"), None)
            .await
            .status(),
        200
    );
    for (what, path, cookie) in [
        (
            "query twice",
            format!("/browser/x?access_token={a}&access_token={b}"),
            None,
        ),
        (
            "query, encoded name",
            format!("/browser/x?access_token={a}&access%5Ftoken={b}"),
            None,
        ),
        (
            "cookie twice in one header",
            "/browser/x".to_owned(),
            Some(format!("id_token={a}; id_token={b}")),
        ),
        (
            "same token twice",
            format!("/browser/x?access_token={a}&access_token={a}"),
            None,
        ),
    ] {
        let mut req = env.client.get(env.url(&path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="api", error="invalid_request""#,
            "{what}"
        );
    }
    // Two cookie headers, each with the token cookie.
    let r = env
        .client
        .get(env.url("/browser/x"))
        .header("cookie", format!("id_token={a}"))
        .header("cookie", format!("id_token={b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "two Cookie headers");
    assert_eq!(
        env.upstream.count(),
        1,
        "only the single-credential request passed"
    );
}

#[tokio::test]
async fn a_query_token_is_removed_before_forwarding_whatever_the_name_encoding() {
    let env = Env::configured("", BROWSER_ROUTE).await;
    let a = mint(&access_claims());
    let r = env
        .get(&format!("/browser/x?q=1&access%5Ftoken={a}"), None)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(env.upstream.last().uri, "/browser/x?q=1");
}

/// A request body that sends `chunks` pieces, `gap` apart, then ends (or stalls forever
/// when `stall` is set).
fn paced_body(chunks: usize, gap: std::time::Duration, stall: bool) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0usize, move |i| async move {
        if i == chunks {
            if stall {
                std::future::pending::<()>().await;
            }
            return None;
        }
        tokio::time::sleep(gap).await;
        Some((
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"0123456789")),
            i + 1,
        ))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn an_upload_longer_than_the_upstream_timeout_is_not_cut_while_it_progresses() {
    let env = Env::configured(
        "[limits]\nupstream_timeout_seconds = 1\nrequest_body_timeout_seconds = 2\n",
        "",
    )
    .await;
    // 2.5 s of upload against a 1 s upstream timeout.
    let started = std::time::Instant::now();
    let r = env
        .client
        .post(env.url("/public/upload"))
        .body(paced_body(10, std::time::Duration::from_millis(250), false))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() > std::time::Duration::from_secs(2));
    assert_eq!(r.status(), 200);
    assert_eq!(env.upstream.last().body_len, 100);
}

#[tokio::test]
async fn a_stalled_upload_gets_408_and_is_counted() {
    let env = Env::configured(
        "[limits]\nupstream_timeout_seconds = 60\nrequest_body_timeout_seconds = 1\n",
        "",
    )
    .await;
    let r = env
        .client
        .post(env.url("/public/upload"))
        .body(paced_body(2, std::time::Duration::from_millis(50), true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 408);
    assert_eq!(
        metric(
            &env.metrics().await,
            r#"cognito_sidecar_auth_denied_total{reason="body_timeout"}"#
        ),
        1.0
    );
}
