//! The deny-list in force (`[deny_list]`): verified tokens whose `sub`, username,
//! `jti`, `origin_jti` or client the list names are refused with 401 `invalid_token`
//! ([`Denial::Revoked`]) on their next request, cache hits included.
//!
//! [`listed`] is the PURE check (an identity and a list snapshot). [`apply`] runs it on
//! an allowing decision; the proxy calls it after every decision (and a bridged
//! WebSocket on every re-check), so nothing the token cache remembers can skip it.
//!
//! A [`DenyListHandle`] holds the list behind an [`ArcSwap`]: readers take a lock-free
//! snapshot, a reload swaps the whole list at once. Its watcher re-reads the file every
//! `reload_interval` and swaps in a changed one once the change has settled (the same
//! bytes a moment later, so a file caught mid-write is not loaded); SIGHUP re-reads it
//! at once ([`DenyListHandle::reread`]). A file that cannot be read or does not parse
//! keeps the last good list, is counted on every try and logged (never its content).
//! The handle outlives configuration reloads whose `[deny_list]` file and limits are
//! unchanged, so a config reload neither re-reads nor resets the list.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::{Mutex, watch};

use crate::auth::{Admission, Decision, Denial, Identity};
use crate::config::{DenyKind, DenyList, DenyListError, DenyListSettings};
use crate::metrics::Metrics;

/// A changed file must read the same across this interval before it is loaded.
const SETTLE: Duration = Duration::from_millis(200);

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DenyListError> + Send + 'static,
) -> Result<T, DenyListError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(DenyListError::Unreadable(e.to_string())))
}

/// PURE: the kind of the first entry of `list` that names `identity`, claims looked up
/// in [`DenyKind::ALL`] order. `jti` and `origin_jti` are read from the raw claims
/// (string values only).
#[must_use]
pub fn listed(identity: &Identity, list: &DenyList) -> Option<DenyKind> {
    if list.is_empty() {
        return None;
    }
    let c = &identity.claims;
    let raw = |name: &str| c.raw.get(name).and_then(Value::as_str);
    // Kinds without entries cost nothing: their claim is not even looked up.
    DenyKind::ALL.into_iter().find(|&kind| {
        if !list.lists(kind) {
            return false;
        }
        let value = match kind {
            DenyKind::Sub => Some(c.sub.as_str()),
            DenyKind::Username => c.username.as_deref(),
            DenyKind::Jti => raw("jti"),
            DenyKind::OriginJti => raw("origin_jti"),
            DenyKind::ClientId => Some(c.client_id.as_str()),
        };
        value.is_some_and(|v| list.contains(kind, v))
    })
}

/// `decision`, with an admitted caller the deny-list names refused as
/// [`Denial::Revoked`] (counted by the kind of entry). Requests without a verified
/// caller (public routes, anonymous, preflights) and refusals pass unchanged.
#[must_use]
pub fn apply(decision: Decision, deny_list: Option<&DenyListHandle>) -> Decision {
    let (
        Some(handle),
        Decision::Allow(Admission {
            identity: Some(identity),
            ..
        }),
    ) = (deny_list, &decision)
    else {
        return decision;
    };
    match listed(identity, &handle.current.load()) {
        Some(kind) => {
            handle
                .metrics
                .deny_list_hits
                .with_label_values(&[kind.label()])
                .inc();
            Decision::Deny(Denial::Revoked)
        }
        None => decision,
    }
}

/// What one read of the file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reread {
    /// The content is the list in force (a poll that found nothing new).
    Unchanged,
    /// The content was still changing; the next poll tries again.
    Changing,
    /// The file parsed and is in force, with this many entries.
    Loaded(usize),
    /// The file could not be used (`invalid` or `error`); the last good list stays.
    Failed(&'static str),
}

/// The deny-list in force and its watcher.
pub struct DenyListHandle {
    settings: DenyListSettings,
    current: ArcSwap<DenyList>,
    metrics: Arc<Metrics>,
    /// Told after a new list is in force (bridged WebSockets re-check).
    on_change: Box<dyn Fn() + Send + Sync>,
    stop: watch::Sender<bool>,
    /// One read at a time; the last problem logged (each new one is logged once).
    reading: Mutex<Option<String>>,
}

impl DenyListHandle {
    /// A handle holding the list the configuration was loaded with; [`Self::start`]
    /// starts its watcher once the configuration using it is installed.
    #[must_use]
    pub fn new(
        settings: &DenyListSettings,
        metrics: Arc<Metrics>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::new(Arc::clone(&settings.list)),
            settings: settings.clone(),
            metrics,
            on_change: Box::new(on_change),
            stop: watch::Sender::new(false),
            reading: Mutex::new(None),
        })
    }

    /// The handle for a new configuration: `previous` when its file and limits are
    /// unchanged (it keeps its list and watcher), else a new one from `settings`.
    #[must_use]
    pub fn for_config(
        previous: Option<&Arc<Self>>,
        settings: Option<&DenyListSettings>,
        metrics: &Arc<Metrics>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Option<Arc<Self>> {
        match (previous, settings) {
            (Some(p), Some(s)) if p.settings.same_source(s) => Some(Arc::clone(p)),
            (_, s) => s.map(|s| Self::new(s, Arc::clone(metrics), on_change)),
        }
    }

    /// A configuration using `next` was installed in place of one using `previous`:
    /// stops a replaced watcher, starts a new one, and sets the entries gauge.
    pub fn installed(previous: Option<&Arc<Self>>, next: Option<&Arc<Self>>, metrics: &Metrics) {
        let same = match (previous, next) {
            (Some(p), Some(n)) => Arc::ptr_eq(p, n),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some(p) = previous {
            p.stop();
        }
        match next {
            Some(n) => n.start(),
            None => metrics.deny_list_entries.set(0),
        }
    }

    /// The list in force.
    #[must_use]
    pub fn snapshot(&self) -> Arc<DenyList> {
        self.current.load_full()
    }

    /// Sets the entries gauge and starts the watcher: every `reload_interval` it
    /// re-reads the file, until [`Self::stop`] or the handle is dropped.
    pub fn start(self: &Arc<Self>) {
        self.set_gauge(&self.current.load());
        let weak = Arc::downgrade(self);
        let mut stop = self.stop.subscribe();
        let interval = self.settings.reload_interval;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = crate::flag::until_true(&mut stop) => return,
                }
                let Some(this) = weak.upgrade() else { return };
                this.reread("file change").await;
            }
        });
    }

    /// Stops the watcher (the handle was replaced, or the process stops).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Sets the entries gauge, unless this handle was replaced (a read that was under
    /// way when it was would otherwise overwrite its successor's count).
    fn set_gauge(&self, list: &DenyList) {
        if *self.stop.borrow() {
            return;
        }
        self.metrics
            .deny_list_entries
            .set(i64::try_from(list.len()).unwrap_or(i64::MAX));
    }

    /// Reads the file and puts a changed, valid list in force. `trigger` is
    /// `"file change"` for the watcher's polls, which do nothing while the content is
    /// the list in force; any other trigger (`"SIGHUP"`) reads, parses and counts the
    /// file even if it did not change. Reading, hashing and parsing run on the blocking
    /// pool (a full-size list takes tens of milliseconds to parse).
    pub async fn reread(&self, trigger: &'static str) -> Reread {
        let mut last_problem = self.reading.lock().await;
        let forced = trigger != "file change";
        let (file, max_bytes, max_entries) = (
            self.settings.file.clone(),
            self.settings.max_bytes,
            self.settings.max_entries,
        );
        let digest = {
            let file = file.clone();
            blocking(move || DenyList::read_file(&file, max_bytes).map(|b| DenyList::digest_of(&b)))
                .await
        };
        let outcome = match digest {
            Ok(digest) if !forced && digest == *self.current.load().digest() => {
                return Reread::Unchanged;
            }
            Ok(digest) => {
                tokio::time::sleep(SETTLE).await;
                let again = blocking(move || {
                    let bytes = DenyList::read_file(&file, max_bytes)?;
                    Ok((DenyList::digest_of(&bytes) == digest)
                        .then(|| DenyList::parse(&bytes, max_entries)))
                })
                .await;
                match again {
                    Ok(None) => return Reread::Changing,
                    Ok(Some(parsed)) => parsed,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(list) => {
                *last_problem = None;
                let entries = list.len();
                let changed = list.digest() != self.current.load().digest();
                self.set_gauge(&list);
                self.current.store(Arc::new(list));
                self.metrics
                    .deny_list_reloads
                    .with_label_values(&["success"])
                    .inc();
                tracing::info!(trigger, entries, changed, file = %self.settings.file.display(), "deny-list loaded");
                if changed {
                    (self.on_change)();
                }
                Reread::Loaded(entries)
            }
            Err(e) => Reread::Failed(self.failed(&e, trigger, &mut last_problem)),
        }
    }

    /// Counts a failed read; logs it unless it is the problem logged last time.
    fn failed(
        &self,
        e: &DenyListError,
        trigger: &'static str,
        last_problem: &mut Option<String>,
    ) -> &'static str {
        let result = e.result();
        self.metrics
            .deny_list_reloads
            .with_label_values(&[result])
            .inc();
        let problem = e.to_string();
        if last_problem.as_deref() != Some(problem.as_str()) {
            let s = &self.settings;
            tracing::error!(trigger, result, error = %problem, file = %s.file.display(), entries = self.current.load().len(), "deny-list not loaded; the last good list stays in force");
            *last_problem = Some(problem);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::{NOW, access, id_token, issuer, keys, policy, request};
    use serde_json::json;

    fn list(text: &str) -> DenyList {
        DenyList::parse(text.as_bytes(), 100).expect("valid list")
    }

    fn admitted(claims: &Value) -> Decision {
        let token = issuer().mint("k1", claims);
        let req = request("GET", "/api/x", &[&format!("Bearer {token}")], &[]);
        crate::auth::authorize(&req, NOW, &keys(), &policy())
    }

    fn identity(claims: &Value) -> Arc<Identity> {
        match admitted(claims) {
            Decision::Allow(Admission {
                identity: Some(i), ..
            }) => i,
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn each_kind_names_a_token_by_its_own_claim_only() {
        let mut c = access();
        c["jti"] = json!("jti-1");
        c["origin_jti"] = json!("origin-1");
        c["username"] = json!("alice");
        let who = identity(&c);
        let sub = who.claims.sub.clone();
        let client = who.claims.client_id.clone();
        for (text, want) in [
            (format!("sub:{sub}"), Some(DenyKind::Sub)),
            ("username:alice".to_owned(), Some(DenyKind::Username)),
            ("jti:jti-1".to_owned(), Some(DenyKind::Jti)),
            ("origin_jti:origin-1".to_owned(), Some(DenyKind::OriginJti)),
            (format!("client_id:{client}"), Some(DenyKind::ClientId)),
            ("jti:origin-1\nusername:bob\nsub:alice".to_owned(), None),
            (String::new(), None),
        ] {
            assert_eq!(listed(&who, &list(&text)), want, "{text}");
        }
        // An ID token's username is `cognito:username`.
        let mut id = id_token();
        id["cognito:username"] = json!("carol");
        assert_eq!(
            listed(&identity(&id), &list("username:carol")),
            Some(DenyKind::Username)
        );
    }

    #[test]
    fn the_metric_kinds_are_the_file_kinds() {
        let metrics = Metrics::new().expect("metrics");
        let text = String::from_utf8(metrics.render()).expect("utf8");
        for kind in DenyKind::ALL {
            assert!(
                text.contains(&format!(
                    "cognito_sidecar_deny_list_hits_total{{kind=\"{}\"}} 0",
                    kind.label()
                )),
                "{kind:?}"
            );
        }
    }

    #[tokio::test]
    async fn apply_refuses_only_listed_callers_and_counts_the_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("deny");
        std::fs::write(&file, "username:alice\n").expect("write");
        let settings = DenyListSettings {
            file,
            reload_interval: Duration::from_secs(1),
            max_entries: 10,
            max_bytes: 1000,
            list: Arc::new(list("username:alice\n")),
        };
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let handle = DenyListHandle::new(&settings, Arc::clone(&metrics), || {});
        let mut alice = access();
        alice["username"] = json!("alice");
        let mut bob = access();
        bob["username"] = json!("bob");
        assert!(matches!(
            apply(admitted(&alice), Some(&handle)),
            Decision::Deny(Denial::Revoked)
        ));
        assert!(matches!(apply(admitted(&alice), None), Decision::Allow(_)));
        assert!(matches!(
            apply(admitted(&bob), Some(&handle)),
            Decision::Allow(_)
        ));
        assert_eq!(
            metrics
                .deny_list_hits
                .with_label_values(&["username"])
                .get(),
            1
        );
        // A public route has no caller to refuse.
        let public = crate::auth::authorize(
            &request("GET", "/public/x", &[], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert!(matches!(apply(public, Some(&handle)), Decision::Allow(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reread_swaps_a_valid_file_and_keeps_the_last_good_list_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("deny");
        std::fs::write(&file, "sub:a\n").expect("write");
        let settings = DenyListSettings {
            file: file.clone(),
            reload_interval: Duration::from_secs(1),
            max_entries: 2,
            max_bytes: 100,
            list: Arc::new(list("sub:a\n")),
        };
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&changes);
        let handle = DenyListHandle::new(&settings, Arc::clone(&metrics), move || {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let count = |r: &str| metrics.deny_list_reloads.with_label_values(&[r]).get();
        assert_eq!(handle.reread("file change").await, Reread::Unchanged);
        assert_eq!(handle.reread("SIGHUP").await, Reread::Loaded(1));
        assert_eq!(changes.load(std::sync::atomic::Ordering::SeqCst), 0);
        std::fs::write(&file, "sub:a\nsub:b\n").expect("write");
        assert_eq!(handle.reread("file change").await, Reread::Loaded(2));
        assert_eq!(changes.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(metrics.deny_list_entries.get(), 2);
        for bad in [
            "sub:a\nsub:b\nsub:c\n",
            "sub:a\nnonsense\n",
            &"x".repeat(101),
        ] {
            std::fs::write(&file, bad).expect("write");
            assert_eq!(
                handle.reread("file change").await,
                Reread::Failed("invalid")
            );
            assert!(handle.snapshot().contains(DenyKind::Sub, "b"));
        }
        std::fs::remove_file(&file).expect("remove");
        assert_eq!(handle.reread("file change").await, Reread::Failed("error"));
        assert_eq!(
            (count("success"), count("invalid"), count("error")),
            (2, 3, 1)
        );
        assert_eq!(metrics.deny_list_entries.get(), 2, "the last good list");
    }
}
