//! Waiting on a boolean flag carried by a `tokio::sync::watch` channel (shutdown,
//! drain): the one helper every long-running task selects on.

use tokio::sync::watch;

/// Resolves once `rx` holds `true` (or its sender is gone). Unlike `wait_for`, the
/// future holds no borrow guard, so it can sit in a `select!` of a spawned task.
pub async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
