//! Production transport over real sockets: TLS termination (h1 and h2 via ALPN, hot
//! reload, mTLS), TLS and unix-socket upstreams, gRPC through h2c, WebSockets, unix
//! listeners, and each limit crossed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback signature"
)]

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn tls_is_terminated_for_http1_and_h2_with_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let (tls, _, _) = tls_table(dir.path(), &ca, "");
    let env = start_tls_env("", &tls).await;
    let token = mint(&access_claims());
    for http2 in [false, true] {
        let client = tls_client(&ca.pem(), None, http2);
        let r = client
            .get(https(&env, "/api/x"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.version(),
            if http2 {
                reqwest::Version::HTTP_2
            } else {
                reqwest::Version::HTTP_11
            }
        );
        let seen = env.upstream.last();
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
        assert!(seen.header("x-auth-sub").is_some());
    }
    // Plain HTTP on a TLS port is not served.
    let plain = env.client.get(env.url("/public/x")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn h2_with_prior_knowledge_is_served_over_tls_without_alpn() {
    use rustls_pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let (tls, _, _) = tls_table(dir.path(), &ca, "");
    let env = start_tls_env("", &tls).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // No ALPN offered: the first bytes (the HTTP/2 preface) choose the protocol.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/public/x")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_restart_and_old_connections_continue() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old ca");
    let new_ca = Ca::new("new ca");
    let (tls, cert_path, key_path) =
        tls_table(dir.path(), &old_ca, "reload_interval_seconds = 1\n");
    let env = start_tls_env("", &tls).await;
    let old_client = tls_client(&old_ca.pem(), None, false);
    let new_client = tls_client(&new_ca.pem(), None, false);
    assert_eq!(
        old_client
            .get(https(&env, "/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        new_client
            .get(https(&env, "/public/x"))
            .send()
            .await
            .is_err(),
        "new CA trusted too early"
    );

    // A half-written rotation (garbage) is ignored; the old certificate keeps serving.
    std::fs::write(&cert_path, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    wait_metric(
        &env,
        r#"cognito_sidecar_tls_reloads_total{result="error"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        old_client
            .get(https(&env, "/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Kubernetes-style swap: write new files, rename over the old ones.
    let (cert, key) = new_ca.server_cert();
    std::fs::write(dir.path().join("new.key"), key).unwrap();
    std::fs::write(dir.path().join("new.crt"), cert).unwrap();
    std::fs::rename(dir.path().join("new.key"), &key_path).unwrap();
    std::fs::rename(dir.path().join("new.crt"), &cert_path).unwrap();
    wait_metric(
        &env,
        r#"cognito_sidecar_tls_reloads_total{result="success"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        new_client
            .get(https(&env, "/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The pooled connection from before the rotation is still usable.
    assert_eq!(
        old_client
            .get(https(&env, "/public/y"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let rogue_ca = Ca::new("rogue ca");
    let client_ca_line = format!(
        "client_ca_file = \"{}\"\n",
        write(dir.path(), "clients.pem", &client_ca.pem())
    );
    let (tls, _, _) = tls_table(dir.path(), &ca, &client_ca_line);
    let env = start_tls_env("", &tls).await;
    let anonymous = tls_client(&ca.pem(), None, false);
    assert!(
        anonymous
            .get(https(&env, "/public/x"))
            .send()
            .await
            .is_err(),
        "no client certificate accepted"
    );
    let (c, k) = rogue_ca.client_cert();
    let rogue = tls_client(&ca.pem(), Some((&c, &k)), false);
    assert!(
        rogue.get(https(&env, "/public/x")).send().await.is_err(),
        "untrusted client certificate accepted"
    );
    let (c, k) = client_ca.client_cert();
    let good = tls_client(&ca.pem(), Some((&c, &k)), false);
    assert_eq!(
        good.get(https(&env, "/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(env.upstream.count(), 1);
}

// ---------------------------------------------------------------------------
// Upstreams: https, unix socket.
// ---------------------------------------------------------------------------

/// An upstream speaking TLS, answering with the negotiated protocol version.
async fn start_tls_upstream(cert: &str, key: &str) -> std::net::SocketAddr {
    let dir = tempfile::tempdir().unwrap();
    let settings = cognito_sidecar::config::TlsSettings {
        cert_file: dir.path().join("c.pem"),
        key_file: dir.path().join("k.pem"),
        client_ca_file: None,
        reload_interval: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(5),
    };
    std::fs::write(&settings.cert_file, cert).unwrap();
    std::fs::write(&settings.key_file, key).unwrap();
    let (config, _) = cognito_sidecar::tls::server_config(&settings).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                        "tls upstream {:?}",
                        req.version()
                    )))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("upstream ca");
    let (cert, key) = ca.server_cert();
    let upstream_addr = start_tls_upstream(&cert, &key).await;
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let text = config_text(
        &jwks.url(),
        upstream_addr,
        &format!("upstream_ca_file = \"{ca_file}\""),
        "",
    )
    .replace(
        &format!("http://{upstream_addr}"),
        &format!("https://localhost:{}", upstream_addr.port()),
    );
    let env = Env::start_with_config(jwks, Upstream::start().await, &text, true).await;
    let r = env.get("/public/x", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "tls upstream HTTP/1.1");

    // An upstream whose certificate the CA did not sign is refused: 502.
    let other = Ca::new("other");
    let (cert, key) = other.server_cert();
    let bad_addr = start_tls_upstream(&cert, &key).await;
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let text = config_text(
        &jwks.url(),
        bad_addr,
        &format!("upstream_ca_file = \"{ca_file}\""),
        "",
    )
    .replace(
        &format!("http://{bad_addr}"),
        &format!("https://localhost:{}", bad_addr.port()),
    );
    let env = Env::start_with_config(jwks, Upstream::start().await, &text, true).await;
    assert_eq!(env.get("/public/x", None).await.status(), 502);
}

#[tokio::test]
async fn unix_sockets_work_as_upstream_and_as_listener() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_sock = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&upstream_sock).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = Arc::clone(&s2);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    seen.lock().unwrap().push(format!(
                        "{} sub={}",
                        req.uri(),
                        req.headers()
                            .get("x-auth-sub")
                            .map_or("-", |v| v.to_str().unwrap())
                    ));
                    async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("from unix"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let proxy_sock = dir.path().join("proxy.sock");
    let text = config_text(&jwks.url(), "127.0.0.1:1".parse().unwrap(), "", "")
        .replace(
            "upstream = \"http://127.0.0.1:1\"",
            &format!("upstream = \"unix://{}\"", upstream_sock.display()),
        )
        .replace(
            "\nlisten = \"127.0.0.1:0\"",
            &format!("\nlisten = \"unix:{}\"", proxy_sock.display()),
        );
    let config = cognito_sidecar::config::Config::from_toml(&text).unwrap();
    let listeners = cognito_sidecar::Listeners::bind(&config).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut running = cognito_sidecar::start(config, listeners, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    running.ready().await;
    let mut conn = tokio::net::UnixStream::connect(&proxy_sock).await.unwrap();
    let req = format!(
        "GET /api/x?q=1 HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        mint(&access_claims())
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("from unix"), "{out}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["/api/x?q=1 sub=11111111-2222-3333-4444-555555555555"]
    );
    let _ = tx.send(());
    running.wait().await;
    assert!(!proxy_sock.exists(), "unix socket file left behind");
}

// ---------------------------------------------------------------------------
// gRPC through h2c, with a tonic client.
// ---------------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
struct EchoMsg {
    #[prost(string, tag = "1")]
    text: String,
}

/// A gRPC backend on h2c: `/echo.Echo/Unary` echoes, `/echo.Echo/Stream` echoes three
/// times; both end with `grpc-status: 0` in trailers. Records what it saw.
async fn start_grpc_upstream(seen: Arc<Mutex<Vec<http::HeaderMap>>>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        seen.lock().unwrap().push(req.headers().clone());
                        let repeat = if req.uri().path().ends_with("/Stream") {
                            3
                        } else {
                            1
                        };
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> =
                            (0..repeat).map(|_| Ok(Frame::data(body.clone()))).collect();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        frames.push(Ok(Frame::trailers(trailers)));
                        let mut resp =
                            Response::new(StreamBody::new(futures_util::stream::iter(frames)));
                        resp.headers_mut()
                            .insert("content-type", "application/grpc".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn grpc_calls_pass_with_trailers_and_rejections_carry_grpc_status() {
    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let grpc_addr = start_grpc_upstream(Arc::clone(&seen)).await;
    let env = Env::behind(grpc_addr, "upstream_protocol = \"http2\"", "").await;
    let channel = tonic::transport::Channel::from_shared(env.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let call = |token: Option<String>, text: &str| {
        let mut req = tonic::Request::new(EchoMsg {
            text: text.to_owned(),
        });
        if let Some(t) = token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        req
    };
    let codec = || tonic_prost::ProstCodec::<EchoMsg, EchoMsg>::default();
    let path =
        |m: &str| http::uri::PathAndQuery::from_maybe_shared(format!("/echo.Echo/{m}")).unwrap();

    grpc.ready().await.unwrap();
    let reply = grpc
        .unary(
            call(Some(mint(&access_claims())), "hello"),
            path("Unary"),
            codec(),
        )
        .await
        .unwrap();
    assert_eq!(reply.into_inner().text, "hello");
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        headers.get("te").map(|v| v.to_str().unwrap()),
        Some("trailers")
    );
    assert!(headers.get("x-auth-sub").is_some());

    grpc.ready().await.unwrap();
    let mut stream = grpc
        .server_streaming(
            call(Some(mint(&access_claims())), "tick"),
            path("Stream"),
            codec(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.text);
    }
    assert_eq!(
        got,
        ["tick", "tick", "tick"],
        "streamed messages and the OK trailer arrived"
    );

    grpc.ready().await.unwrap();
    let err = grpc
        .unary(call(None, "x"), path("Unary"), codec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary(
            call(Some(mint(&access_claims())), "x"),
            http::uri::PathAndQuery::from_static("/admin/Call"),
            codec(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "rejected calls reached the backend"
    );
}

// ---------------------------------------------------------------------------
// WebSockets.
// ---------------------------------------------------------------------------

/// A WebSocket echo upstream that records each handshake's URI and headers.
async fn start_ws_upstream(
    seen: Arc<Mutex<Vec<(String, http::HeaderMap)>>>,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    seen.lock().unwrap().push((req.uri().to_string(), req.headers().clone()));
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Close(frame) = msg {
                        let _ = ws.close(frame).await;
                        return;
                    }
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn ws_connect(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, stream)
        .await
        .map(|(ws, _)| ws)
}

const WS_ROUTES: &str = "[[routes]]\npath = \"/ws/\"\nwebsocket = true\n[[routes]]\npath = \"/browser-ws/\"\nwebsocket = true\ntoken_query_param = \"access_token\"\ntoken_cookie = \"id_token\"\n";

#[tokio::test]
async fn authenticated_websockets_are_bridged_both_ways_until_close() {
    let seen: Arc<Mutex<Vec<(String, http::HeaderMap)>>> = Arc::default();
    let ws_addr = start_ws_upstream(Arc::clone(&seen)).await;
    let env = Env::behind(ws_addr, "", WS_ROUTES).await;
    let mut ws = ws_connect(
        env.sidecar.proxy_addr,
        "/ws/chat",
        Some(&mint(&access_claims())),
    )
    .await
    .unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("hello".into())
    );
    ws.send(Message::Binary(Bytes::from_static(&[1, 2, 3])))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(Bytes::from_static(&[1, 2, 3]))
    );
    let m = env.metrics().await;
    assert_eq!(metric(&m, "cognito_sidecar_websocket_sessions"), 1.0);
    ws.close(None).await.unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            break;
        }
    }
    let (_, headers) = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        headers.get("x-auth-sub").is_some(),
        "identity reaches the WebSocket backend"
    );
    assert!(headers.get("authorization").is_none());
}

/// A WebSocket env whose pool has no leeway, so expiry is exact.
async fn ws_env(top: &str) -> (Env, Arc<Mutex<Vec<(String, http::HeaderMap)>>>) {
    let seen: Arc<Mutex<Vec<(String, http::HeaderMap)>>> = Arc::default();
    let ws_addr = start_ws_upstream(Arc::clone(&seen)).await;
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let text = config_text(&jwks.url(), ws_addr, top, WS_ROUTES).replace(
        "token_use = [\"id\", \"access\"]",
        "token_use = [\"id\", \"access\"]\nleeway_seconds = 0",
    );
    let env = Env::start_with_config(jwks, Upstream::start().await, &text, true).await;
    (env, seen)
}

/// Waits (bounded) for the proxy to end a bridged session.
async fn ws_ended(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await
    .expect("the session was not ended");
}

async fn ws_echoes(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> bool {
    ws.send(Message::Text("ping".into())).await.is_ok()
        && matches!(ws.next().await, Some(Ok(Message::Text(t))) if t == "ping")
}

#[tokio::test]
async fn a_bridged_websocket_ends_when_its_token_expires() {
    let (env, _) = ws_env("").await;
    let token = mint(&with(access_claims(), "exp", serde_json::json!(now() + 2)));
    let mut ws = ws_connect(env.sidecar.proxy_addr, "/ws/chat", Some(&token))
        .await
        .unwrap();
    assert!(ws_echoes(&mut ws).await);
    ws_ended(&mut ws).await;
}

#[tokio::test]
async fn a_bridged_websocket_may_outlive_its_token_when_configured() {
    let (env, _) = ws_env("[limits]\nwebsocket_close_on_token_expiry = false\n").await;
    let exp = now() + 1;
    let token = mint(&with(access_claims(), "exp", serde_json::json!(exp)));
    let mut ws = ws_connect(env.sidecar.proxy_addr, "/ws/chat", Some(&token))
        .await
        .unwrap();
    // Past expiry (the proxy would have checked at exp + 1).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(now() > exp + 1);
    assert!(ws_echoes(&mut ws).await, "the session still runs");
}

#[tokio::test]
async fn a_reload_that_refuses_the_token_ends_its_bridged_websocket() {
    let (env, _) = ws_env("").await;
    let user = mint(&access_claims());
    let mut ws = ws_connect(env.sidecar.proxy_addr, "/ws/chat", Some(&user))
        .await
        .unwrap();
    assert!(ws_echoes(&mut ws).await);
    // An unrelated reload leaves the session alone.
    let same = env.sidecar.live.load().config.as_ref().clone();
    env.sidecar.live.reload(same.clone()).await.unwrap();
    assert!(
        ws_echoes(&mut ws).await,
        "a reload that still admits keeps it"
    );
    // The route now requires a group the token lacks.
    let mut stricter = same;
    for r in &mut stricter.routes {
        if r.path == "/ws/" {
            r.groups = vec!["admins".to_owned()];
        }
    }
    env.sidecar.live.reload(stricter).await.unwrap();
    ws_ended(&mut ws).await;
}

#[tokio::test]
async fn listing_its_user_on_the_deny_list_ends_a_bridged_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("deny-list.txt");
    std::fs::write(&deny, "").unwrap();
    let (env, _) = ws_env(&format!(
        "[deny_list]\nfile = \"{}\"\nreload_interval_seconds = 3600\n",
        deny.display()
    ))
    .await;
    let listed = mint(&with(access_claims(), "sub", serde_json::json!("listed")));
    let other = mint(&access_claims());
    let mut ws = ws_connect(env.sidecar.proxy_addr, "/ws/chat", Some(&listed))
        .await
        .unwrap();
    let mut other_ws = ws_connect(env.sidecar.proxy_addr, "/ws/chat", Some(&other))
        .await
        .unwrap();
    assert!(ws_echoes(&mut ws).await);
    std::fs::write(&deny, "sub:listed\n").unwrap();
    env.sidecar.live.reread_deny_list().await;
    ws_ended(&mut ws).await;
    assert!(
        ws_echoes(&mut other_ws).await,
        "other users' sessions run on"
    );
}

#[tokio::test]
async fn websocket_upgrades_never_switch_without_a_valid_token_or_an_enabled_route() {
    let seen: Arc<Mutex<Vec<(String, http::HeaderMap)>>> = Arc::default();
    let ws_addr = start_ws_upstream(Arc::clone(&seen)).await;
    let env = Env::behind(ws_addr, "", WS_ROUTES).await;
    let err = ws_connect(env.sidecar.proxy_addr, "/ws/chat", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401),
        "{err:?}"
    );
    let expired = mint(&with(
        access_claims(),
        "exp",
        serde_json::json!(now() - 600),
    ));
    assert!(
        ws_connect(env.sidecar.proxy_addr, "/ws/chat", Some(&expired))
            .await
            .is_err()
    );
    // A route without `websocket = true`: the backend gets a plain request and any 101 is refused.
    let err = ws_connect(
        env.sidecar.proxy_addr,
        "/api/chat",
        Some(&mint(&access_claims())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() != 101),
        "{err:?}"
    );
    // The token in the query is not read on routes that did not opt in.
    let path = format!("/ws/chat?access_token={}", mint(&access_claims()));
    assert!(
        ws_connect(env.sidecar.proxy_addr, &path, None)
            .await
            .is_err()
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|(uri, _)| !uri.starts_with("/ws/")),
        "backend upgraded"
    );
    // h2c upgrade requests are never honoured.
    let resp = env
        .raw(b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
        .await;
    assert!(!resp.starts_with("HTTP/1.1 101"), "{resp}");
}

#[tokio::test]
async fn browser_websockets_may_carry_the_token_in_an_opted_in_query_or_cookie() {
    let seen: Arc<Mutex<Vec<(String, http::HeaderMap)>>> = Arc::default();
    let ws_addr = start_ws_upstream(Arc::clone(&seen)).await;
    let env = Env::behind(ws_addr, "", WS_ROUTES).await;
    let token = mint(&access_claims());
    let mut ws = ws_connect(
        env.sidecar.proxy_addr,
        &format!("/browser-ws/feed?room=1&access_token={token}"),
        None,
    )
    .await
    .unwrap();
    ws.send(Message::Text("q".into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("q".into()));
    let (uri, _) = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        uri, "/browser-ws/feed?room=1",
        "token removed from the forwarded query"
    );

    let mut req = format!("ws://{}/browser-ws/feed", env.sidecar.proxy_addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "cookie",
        format!("theme=dark; id_token={token}").parse().unwrap(),
    );
    let stream = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    ws.send(Message::Text("c".into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("c".into()));
    let (_, headers) = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        headers.get("cookie").map(|v| v.to_str().unwrap()),
        Some("theme=dark")
    );
}

// ---------------------------------------------------------------------------
// Limits.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn request_bodies_over_the_limit_get_413_and_never_reach_the_backend_whole() {
    let env = Env::configured("", "[limits]\nmax_request_body_bytes = 1024\n").await;
    let token = mint(&access_claims());
    let r = env
        .client
        .post(env.url("/api/upload"))
        .header("authorization", format!("Bearer {token}"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "declared Content-Length over the limit");
    assert_eq!(
        env.upstream.count(),
        0,
        "backend contacted for a declared oversized body"
    );
    // Chunked: the length is unknown until the bytes arrive.
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let r = env
        .client
        .post(env.url("/api/upload"))
        .header("authorization", format!("Bearer {token}"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413, "oversized chunked body");
    }
    assert!(
        env.upstream.seen().iter().all(|s| s.body_len <= 1024),
        "backend received more than the limit"
    );
    let r = env
        .client
        .post(env.url("/api/upload"))
        .header("authorization", format!("Bearer {token}"))
        .body(vec![b'z'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bodies within the limit pass");
}

#[tokio::test]
async fn a_client_trickling_header_bytes_is_cut_off() {
    let env = Env::configured("", "[limits]\nheader_read_timeout_seconds = 1\n").await;
    let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        // Keep trickling: the deadline is for the whole header section, not per byte.
        loop {
            tokio::select! {
                r = s.read_buf(&mut buf) => { if matches!(r, Ok(0) | Err(_)) { return; } }
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if s.write_all(b"a").await.is_err() { return; }
                }
            }
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow client kept for {:?}",
        started.elapsed()
    );
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let env = Env::configured("", "[limits]\nidle_timeout_seconds = 1\n").await;
    let client = h2_client();
    assert_eq!(
        client
            .get(env.url("/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "cognito_sidecar_open_connections"),
        1.0,
        "the h2 client's connection"
    );
    let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "idle connection still open after 8 s");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout"
    );
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn the_connection_cap_applies_back_pressure_instead_of_failing() {
    let env = Env::configured("", "[limits]\nmax_connections = 2\n").await;
    let a = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let b = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    // Wait until both are being served (the gauge counts accepted connections).
    wait_metric(&env, "cognito_sidecar_open_connections", 2.0).await;
    let third = tokio::spawn({
        let addr = env.sidecar.proxy_addr;
        async move {
            raw(
                addr,
                b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap"
    );
    drop(a);
    let resp = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    drop(b);
}

#[tokio::test]
async fn h2_connections_are_served_with_explicit_stream_limits() {
    let env = Env::configured("", "[limits]\nh2_max_concurrent_streams = 4\n").await;
    let client = h2_client();
    let token = mint(&access_claims());
    let calls = (0..16).map(|i| {
        client
            .get(env.url(&format!("/api/{i}")))
            .header("authorization", format!("Bearer {token}"))
            .send()
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(
            r.unwrap().status(),
            200,
            "requests beyond the stream limit queue, not fail"
        );
    }
    // A header list over the limit resets the stream; nothing is forwarded.
    let before = env.upstream.count();
    let r = client
        .get(env.url("/public/x"))
        .header("x-big", "a".repeat(80 * 1024))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().status() == 431);
    assert_eq!(env.upstream.count(), before);
}

#[tokio::test]
async fn upstream_http2_response_bodies_stream_back() {
    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let grpc_addr = start_grpc_upstream(Arc::clone(&seen)).await;
    let env = Env::behind(grpc_addr, "upstream_protocol = \"http2\"", "").await;
    let r = env
        .client
        .post(env.url("/public/Stream"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes().await.unwrap();
    assert_eq!(body.remaining(), 9);
    assert_eq!(body.copy_to_bytes(9), Bytes::from_static(b"abcabcabc"));
}

// ---------------------------------------------------------------------------
// Rolling deploys: SIGTERM on the real binary.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_fails_readiness_keeps_serving_through_pre_stop_then_drains_and_exits_zero() {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let upstream = Upstream::start_with(Duration::from_millis(300)).await;
    let text = config_text(
        &jwks.url(),
        upstream.addr,
        "",
        "[shutdown]\npre_stop_delay_seconds = 2\ndrain_timeout_seconds = 10\n",
    );
    let mut bin = Binary::start(&text).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let readyz = bin.admin_url("/readyz");

    // Four clients send requests back to back, each on a fresh connection.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let token = mint(&access_claims());
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (client, stop, token) = (client.clone(), Arc::clone(&stop), token.clone());
        let url = bin.url("/api/x");
        loops.push(tokio::spawn(async move {
            let (mut ok, mut refused, mut failed) = (0, 0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match client
                    .get(&url)
                    .header("authorization", format!("Bearer {token}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) if e.is_connect() => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, refused, failed)
        }));
    }
    upstream.wait_count(4).await;
    bin.proc.signal("-TERM");
    // Readiness fails as soon as the signal is handled, while traffic is still being
    // served (pre-stop delay).
    let body = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let r = client.get(&readyz).send().await.unwrap();
            if r.status() == 503 {
                return r.text().await.unwrap();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("readiness did not fail during the pre-stop delay");
    assert!(body.contains("draining"), "{body}");
    let served_before = upstream.count();
    let status = bin.wait_exit().await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(status.code(), Some(0), "exit code after drain");
    let mut total_ok = 0;
    for l in loops {
        let (ok, _refused, failed) = l.await.unwrap();
        assert!(
            failed.is_empty(),
            "requests failed during shutdown: {failed:?}"
        );
        total_ok += ok;
    }
    assert!(
        upstream.count() > served_before,
        "nothing was served during the pre-stop delay"
    );
    assert!(total_ok > 0);
}

#[tokio::test]
async fn h2_clients_get_local_answers_that_would_close_an_h1_connection() {
    let env = Env::configured(
        "allowed_hosts = [\"127.0.0.1\"]",
        "[limits]\nmax_request_body_bytes = 10\n",
    )
    .await;
    let client = h2_client();
    let r = client.get(env.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(env.url("/public/x"))
        .header("host", "other.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, ":authority and Host disagree");
    let r = client
        .post(env.url("/public/x"))
        .body(vec![0u8; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(env.upstream.count(), 1);
}

#[tokio::test]
async fn an_upstream_that_never_completes_the_connect_gets_502_after_the_connect_timeout() {
    // A listener that never accepts, with its accept queue full: further SYNs are
    // dropped, so connecting hangs until the proxy's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let blackhole = socket.listen(1).unwrap();
    let addr = blackhole.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let env = Env::behind(
        addr,
        "",
        "[limits]\nupstream_connect_timeout_ms = 300\nupstream_timeout_seconds = 30\n",
    )
    .await;
    let started = std::time::Instant::now();
    let r = env.get("/public/x", None).await;
    assert_eq!(r.status(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited for the response timeout instead"
    );
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_upstream_errors_total{kind="connect"}"#
        ),
        1.0
    );
    drop((blackhole, fillers));
}

#[tokio::test]
async fn bridged_websockets_count_against_max_connections_and_in_the_connection_gauge() {
    let ws_addr = start_ws_upstream(Arc::default()).await;
    let tables = format!("{WS_ROUTES}[limits]\nmax_connections = 2\n");
    let env = Env::behind(ws_addr, "", &tables).await;
    let addr = env.sidecar.proxy_addr;
    let token = mint(&access_claims());
    let mut a = ws_connect(addr, "/ws/a", Some(&token)).await.unwrap();
    let mut b = ws_connect(addr, "/ws/b", Some(&token)).await.unwrap();
    assert!(ws_echoes(&mut a).await && ws_echoes(&mut b).await);
    let m = env.metrics().await;
    assert_eq!(metric(&m, "cognito_sidecar_websocket_sessions"), 2.0);
    assert_eq!(
        metric(&m, "cognito_sidecar_open_connections"),
        2.0,
        "bridged sessions are open connections"
    );
    // Both slots are taken by sessions: a third connection waits in the accept queue.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /ws/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first_byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut first_byte))
            .await
            .is_err(),
        "a connection over the cap was served while two sessions held both slots"
    );
    // A session ends: its slot goes to the waiting connection.
    a.close(None).await.unwrap();
    ws_ended(&mut a).await;
    drop(a);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut answer))
        .await
        .expect("the waiting connection was not served after a session ended")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).contains(" 401 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(ws_echoes(&mut b).await, "the other session is untouched");
}
