//! Child processes: the one process guard ([`ChildGuard`]), the command line of the real
//! binary ([`sidecar_command`]), the emulators (`moto_server` on `PATH`, cognito-local
//! under `tests/cognito-local`), and the one place a port is picked for a child process
//! ([`free_port`]).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::wait::POLL;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");

/// The binary, with none of the developer's `COGNITO_SIDECAR_*` configuration or proxy
/// variables inherited, and plain (uncoloured) log lines.
pub fn sidecar_command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_str()
            .is_some_and(|k| k.starts_with("COGNITO_SIDECAR_"))
        {
            c.env_remove(k);
        }
    }
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        c.env_remove(k);
    }
    // tracing-subscriber colours even non-ttys.
    c.env("NO_COLOR", "1");
    c
}

/// A loopback port that was free a moment ago: bound, read, released.
///
/// This is racy: between the release and the child binding it, another process (or a
/// parallel test) may take the port, and the child then fails to start. It is used only
/// where a *child process* must be told a port in its configuration before it starts
/// (the real binary, `moto_server`), since a listening socket cannot be handed to those.
/// In-process sidecars get listeners bound to `127.0.0.1:0` instead (see `Env`), and an
/// address that must refuse connections is a [`Refusing`] socket, which holds its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback address that refuses connections for as long as this value lives: a socket
/// bound to a port but not listening, so that no one else can take the port meanwhile.
pub struct Refusing {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl Refusing {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        Self {
            addr: socket.local_addr().unwrap(),
            _socket: socket,
        }
    }
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `moto_server` from `PATH`; `None` (after saying why the caller skips) when it is not
/// installed, a failure instead when `COGNITO_E2E_REQUIRE_MOTO=1`.
pub fn moto_server() -> Option<PathBuf> {
    let found = find_on_path("moto_server");
    if found.is_none() {
        assert!(
            std::env::var("COGNITO_E2E_REQUIRE_MOTO").as_deref() != Ok("1"),
            "moto_server is not on PATH but COGNITO_E2E_REQUIRE_MOTO=1: \
             install it with `pip install 'moto[server]' boto3`"
        );
        eprintln!(
            "skipping: moto_server not installed (pip install 'moto[server]' boto3; \
             set COGNITO_E2E_REQUIRE_MOTO=1 to make this a failure)"
        );
    }
    found
}

/// cognito-local as `npm ci` installs it in `tests/cognito-local` (the version pinned
/// there); `None` (after saying why the caller skips) when it is not installed, a failure
/// instead when `COGNITO_E2E_REQUIRE_COGNITO_LOCAL=1`.
pub fn cognito_local() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cognito-local/node_modules/.bin/cognito-local");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var("COGNITO_E2E_REQUIRE_COGNITO_LOCAL").as_deref() != Ok("1"),
        "{} is missing but COGNITO_E2E_REQUIRE_COGNITO_LOCAL=1: install it with \
         `(cd tests/cognito-local && npm ci)`",
        bin.display()
    );
    eprintln!(
        "skipping: cognito-local not installed (cd tests/cognito-local && npm ci; needs \
         node; set COGNITO_E2E_REQUIRE_COGNITO_LOCAL=1 to make this a failure)"
    );
    None
}

/// The port in cognito-local's `Cognito Local running on http://127.0.0.1:PORT` line
/// (which pino-pretty colours even into a file).
fn logged_port(stdout: &str) -> Option<u16> {
    let rest = stdout.split("running on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Starts cognito-local in `dir` (its `.cognito/` data directory, with `config_json` as
/// its `config.json`) on a port of its own choosing (`PORT=0`: no port race), and waits
/// until it answers `/health`. Returns the process and its endpoint.
pub async fn start_cognito_local(
    bin: &Path,
    dir: &Path,
    config_json: &str,
) -> Result<(ChildGuard, String), String> {
    const START_TIMEOUT: Duration = Duration::from_secs(30);
    let data = dir.join(".cognito");
    std::fs::create_dir_all(&data).map_err(|e| format!("{data:?}: {e}"))?;
    std::fs::write(data.join("config.json"), config_json)
        .map_err(|e| format!("write config.json: {e}"))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0");
    let mut child = ChildGuard::spawn("cognito-local", cmd, dir)?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut endpoint = None;
    loop {
        if let Some(status) = child.exited() {
            return Err(format!(
                "cognito-local exited ({status}) before answering\n{}\n{}",
                child.stdout(),
                child.stderr_tail()
            ));
        }
        if endpoint.is_none() {
            endpoint = logged_port(&child.stdout()).map(|p| format!("http://127.0.0.1:{p}"));
        }
        if let Some(url) = &endpoint {
            let health = client.get(format!("{url}/health")).send().await;
            if health.is_ok_and(|r| r.status() == 200) {
                return Ok((child, url.clone()));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "cognito-local did not answer /health within {START_TIMEOUT:?} \
                 (logged endpoint: {endpoint:?})\n{}\n{}",
                child.stdout(),
                child.stderr_tail()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A child process that is killed and reaped when dropped. Spawned with
/// [`ChildGuard::spawn`], its stdout and stderr go to files so that they can be read
/// and shown when something fails.
pub struct ChildGuard {
    name: String,
    child: Child,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed, stdout and stderr to `{name}.stdout` and
    /// `{name}.stderr` in `log_dir`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Self, String> {
        let stdout = log_dir.join(format!("{name}.stdout"));
        let stderr = log_dir.join(format!("{name}.stderr"));
        let out = File::create(&stdout).map_err(|e| format!("create {stdout:?}: {e}"))?;
        let err = File::create(&stderr).map_err(|e| format!("create {stderr:?}: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    /// Guards a child spawned by the caller (its pipes as the caller set them).
    pub fn adopt(name: &str, child: Child) -> Self {
        Self {
            name: name.to_owned(),
            child,
            stdout: None,
            stderr: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `sig` (`-TERM`, `-HUP`, ...) with `kill`.
    pub fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .args([sig, &self.child.id().to_string()])
                .status()
                .unwrap()
                .success(),
            "kill {sig} {}",
            self.name
        );
    }

    /// Everything written to stdout so far (empty for an adopted child).
    pub fn stdout(&self) -> String {
        self.stdout
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Everything written to stderr so far (empty for an adopted child).
    pub fn stderr(&self) -> String {
        self.stderr
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The last part of stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let all = self.stderr();
        let lines: Vec<&str> = all.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!(
            "--- last {} lines of {} stderr ---\n{}\n--- end of {} stderr ---",
            lines.len() - start,
            self.name,
            lines[start..].join("\n"),
            self.name
        )
    }

    /// Waits (bounded, polling) for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not finish within {timeout:?}\n{}",
                    self.name,
                    self.stderr_tail()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
