//! The one way tests wait: bounded ([`BOUND`]), on a push signal where the harness has
//! one ([`wait_notified`]), otherwise by polling every [`POLL`] ([`wait_until`],
//! [`wait_metric`]). No test sleeps blindly for something to have happened.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::Notify;

use super::env::metric;

/// How long any wait may take before the test fails.
pub const BOUND: Duration = Duration::from_secs(20);
/// How often a polled condition is checked again.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every [`POLL`] until it holds; panics naming `what` after [`BOUND`].
pub async fn wait_until(what: &str, check: impl AsyncFnMut() -> bool) {
    wait_until_within(BOUND, what, check).await;
}

/// [`wait_until`] with another bound, for what is known to be slower (an emulator
/// starting).
pub async fn wait_until_within(bound: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    tokio::time::timeout(bound, async {
        while !check().await {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {bound:?} waiting for {what}"));
}

/// Waits until `done` holds, checking it again each time `notify` fires (`notify_waiters`);
/// panics naming `what` after [`BOUND`].
pub async fn wait_notified(notify: &Notify, what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(BOUND, async {
        loop {
            // Registered before the check: a notification in between is not lost.
            let notified = notify.notified();
            if done() {
                return;
            }
            notified.await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {BOUND:?} waiting for {what}"));
}

/// A sidecar (in-process or the binary) whose admin listener serves `/metrics`.
pub trait Admin {
    fn admin_addr(&self) -> SocketAddr;
}

/// One scrape of `/metrics`.
pub async fn scrape(on: &impl Admin) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", on.admin_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Polls `/metrics` until `series` reaches at least `want` (a counter has moved).
pub async fn wait_metric(on: &impl Admin, series: &str, want: f64) {
    wait_until(&format!("{series} >= {want}"), async || {
        metric(&scrape(on).await, series) >= want
    })
    .await;
}

/// Polls `/metrics` until `series` is exactly `want` (a gauge has settled).
pub async fn wait_metric_eq(on: &impl Admin, series: &str, want: f64) {
    wait_until(&format!("{series} == {want}"), async || {
        metric(&scrape(on).await, series) == want
    })
    .await;
}
