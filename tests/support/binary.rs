//! The one launcher for the real `cognito-sidecar` binary: a configuration file in a
//! temporary directory, the binary started on it, ready once `/readyz` answers 200.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

use super::config::set_line;
use super::env::metric;
use super::process::{ChildGuard, free_port, sidecar_command};
use super::wait::{Admin, BOUND, scrape, wait_until};

/// The running binary, killed when dropped.
pub struct Binary {
    pub proc: ChildGuard,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The configuration file it runs on (tests rewrite it to reload).
    pub config: PathBuf,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary on `text` (for instance [`super::config_text`]) with its
    /// `listen` and `admin_listen` lines set to ports picked by [`free_port`].
    pub async fn start(text: &str) -> Self {
        Self::start_with(text, &[]).await
    }

    /// As [`Binary::start`], with extra environment variables (e.g. `RUST_LOG`).
    pub async fn start_with(text: &str, vars: &[(&str, &str)]) -> Self {
        let proxy = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let text = set_line(text, "listen", &format!("\"{proxy}\""));
        let text = set_line(&text, "admin_listen", &format!("\"{admin}\""));
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let mut cmd = sidecar_command();
        cmd.arg("--config").arg(&config);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut proc = ChildGuard::spawn("cognito-sidecar", cmd, dir.path()).unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let readyz = format!("http://{admin}/readyz");
        wait_until("the binary's readiness", async || {
            if let Some(status) = proc.exited() {
                panic!("the binary exited ({status})\n{}", proc.stderr_tail());
            }
            client
                .get(&readyz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        Self {
            proc,
            proxy,
            admin,
            config,
            client,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The status of `GET path`, with `token` as a bearer credential if given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> u16 {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.send().await.unwrap().status().as_u16()
    }

    pub async fn metric(&self, series: &str) -> f64 {
        metric(&scrape(self).await, series)
    }

    /// Everything the binary has logged (stderr) so far.
    pub fn log(&self) -> String {
        self.proc.stderr()
    }

    /// Waits (bounded) for the process to exit by itself.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        self.proc.wait_exit(BOUND).await.unwrap()
    }

    /// Resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

impl Admin for Binary {
    fn admin_addr(&self) -> SocketAddr {
        self.admin
    }
}
