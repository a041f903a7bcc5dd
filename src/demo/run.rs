//! The `demo` command: binds the proxy's sockets first (so the real port is known with
//! `--listen 127.0.0.1:0`), starts the demo issuer and the echo backend, writes a
//! fresh session key to a private temporary file (removed once the configuration has
//! read it), configures the proxy against them
//! (bearer tokens and browser sign-in), starts it, and prints where to point a browser,
//! the users' passwords and ready-to-paste `curl` commands.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::idp::{CALLBACK_PATH, SPA_PATH};
use super::spa::serve_backend;
use super::{
    ACCESS_KEY, DEMO_CLIENT, DEMO_POOL, DemoError, DemoUser, ID_KEY, Idp, IdpSettings,
    access_claims, id_claims,
};
use crate::config::Config;
use crate::issuer::DevIssuer;
use crate::{Listeners, server};

/// What `cognito-sidecar demo` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Proxy address (port 0: any free port).
    pub listen: SocketAddr,
    /// Admin address.
    pub admin_listen: SocketAddr,
    /// Lifetime of the tokens the issuer mints at sign-in and refresh, in seconds
    /// (short lifetimes show sessions refreshing).
    pub token_lifetime_seconds: u64,
}

/// The browser sign-in part of the demo configuration.
#[derive(Debug, Clone, Copy)]
pub struct DemoLogin<'a> {
    /// `http://<proxy address>`, as browsers reach it.
    pub external_url: &'a str,
    /// The file holding the session key (hex).
    pub session_keys_file: &'a Path,
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The demo configuration for the given addresses: the demo pool, browser sign-in
/// against the demo issuer at `idp`, and the routes (`/public/` and `/spa/` public,
/// `/api/` bearer only, `/admin/` for the `admins` group, everything else signs
/// browsers in).
///
/// # Errors
/// Only if the generated TOML is invalid (a bug).
pub fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    idp: SocketAddr,
    login: &DemoLogin<'_>,
) -> Result<Config, DemoError> {
    let keys_file = toml_string(&login.session_keys_file.to_string_lossy());
    let external_url = toml_string(login.external_url);
    Ok(Config::from_toml(&format!(
        r#"
        listen = "{listen}"
        admin_listen = "{admin}"
        upstream = "http://{upstream}"
        log_format = "text"
        [[pools]]
        name = "demo"
        id = "{DEMO_POOL}"
        client_ids = ["{DEMO_CLIENT}"]
        token_use = ["id", "access"]
        jwks_url = "http://{idp}/{DEMO_POOL}/.well-known/jwks.json"
        # The issuer shares this process's clock: no leeway, so a short
        # --token-lifetime-seconds shows sessions refreshing on time.
        leeway_seconds = 0
        [identity]
        pool_header = "X-Auth-Pool"
        [login]
        client_id = "{DEMO_CLIENT}"
        domain = "http://{idp}"
        external_url = {external_url}
        callback_path = "{CALLBACK_PATH}"
        cookie_secure = false
        session_keys_file = {keys_file}
        [[routes]]
        path = "/public/"
        auth = "public"
        [[routes]]
        path = "{SPA_PATH}"
        auth = "public"
        [[routes]]
        path = "/api/"
        auth = "required"
        [[routes]]
        path = "/admin/"
        auth = "login"
        groups = ["admins"]
        [[routes]]
        path = "/"
        auth = "login"
        "#
    ))?)
}

/// A session key in a file only this user can read, removed when dropped.
struct SessionKeysFile {
    path: PathBuf,
}

impl SessionKeysFile {
    /// Writes one fresh 32-byte key (64 hex characters) to a new file in the temporary
    /// directory, named with the process id and a random suffix, mode 0600.
    fn create() -> Result<Self, DemoError> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| DemoError::Random)?;
        let mut suffix = [0u8; 6];
        aws_lc_rs::rand::fill(&mut suffix).map_err(|_| DemoError::Random)?;
        let hex = |b: &[u8]| {
            b.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        };
        let path = std::env::temp_dir().join(format!(
            "cognito-sidecar-demo-{}-{}.keys",
            std::process::id(),
            hex(&suffix)
        ));
        let mut options = std::fs::OpenOptions::new();
        // create_new: never follow or reuse a file someone else put there.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut handle = options.open(&path).map_err(DemoError::SessionKeys)?;
        // From here on, an error removes the file (the guard drops).
        let guard = Self { path };
        writeln!(handle, "{}", hex(&key)).map_err(DemoError::SessionKeys)?;
        Ok(guard)
    }
}

impl Drop for SessionKeysFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The origin browsers use for a listener: a wildcard address is reached on loopback.
fn external_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Runs the demo until `shutdown` resolves.
///
/// # Errors
/// [`DemoError`] if keys cannot be generated, ports cannot be bound or the session
/// keys file cannot be written.
pub async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    // Like Cognito: ID and access tokens are signed with different keys.
    let issuer = Arc::new(DevIssuer::generate(&[ID_KEY, ACCESS_KEY])?);
    let users = vec![
        DemoUser::with_random_password("alice", &["admins"]).ok_or(DemoError::Random)?,
        DemoUser::with_random_password("bob", &["users"]).ok_or(DemoError::Random)?,
    ];
    // The proxy's sockets first: the sign-in redirect URIs need the real port.
    let proxy_listener = server::bind(options.listen).await?;
    let admin_listener = server::bind(options.admin_listen).await?;
    let listen = proxy_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let external = external_url(listen);

    let mut idp_settings = IdpSettings::new(&external, users.clone());
    idp_settings.token_lifetime_seconds = options.token_lifetime_seconds;
    let idp = Idp::start(Arc::clone(&issuer), idp_settings).await?;
    let echo_addr = serve_backend(TcpListener::bind("127.0.0.1:0").await?, &idp.base_url())?;
    let keys_file = SessionKeysFile::create()?;

    let login = DemoLogin {
        external_url: &external,
        session_keys_file: &keys_file.path,
    };
    let config = demo_config(listen, admin_addr, echo_addr, idp.addr(), &login)?;
    // Loading the configuration read the key; the demo never reloads it. Removing the
    // file now rather than at exit leaves nothing behind even if the process is killed.
    drop(keys_file);
    let listeners = Listeners {
        proxy: proxy_listener.into(),
        admin: admin_listener,
    };
    let mut running = crate::start(config, listeners, shutdown).await?;
    running.ready().await;
    println!(
        "{}",
        start_up_text(&issuer, &external, &running, &idp, &users)
    );
    running.wait().await;
    Ok(())
}

/// What the demo prints once the proxy is ready.
fn start_up_text(
    issuer: &DevIssuer,
    external: &str,
    running: &crate::Running,
    idp: &Idp,
    users: &[DemoUser],
) -> String {
    let addr = running.proxy_addr;
    let admin = running.admin_addr;
    // Tokens for the curl examples, valid for an hour whatever --token-lifetime-seconds.
    let t = crate::clock::unix_now();
    let bob_id = issuer.mint(ID_KEY, &id_claims("bob", &["users"], t, t + 3600));
    let bob_access = issuer.mint(ACCESS_KEY, &access_claims("bob", &["users"], t, t + 3600));
    let alice_access = issuer.mint(
        ACCESS_KEY,
        &access_claims("alice", &["admins"], t, t + 3600),
    );
    let expired = issuer.mint(ID_KEY, &id_claims("bob", &["users"], t - 7200, t - 3600));

    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&format!(
        "\ncognito-sidecar demo: proxy on http://{addr}, admin on http://{admin}"
    ));
    line(&format!(
        "(embedded issuer for pool {DEMO_POOL}, client {DEMO_CLIENT}, on {}; echo backend)\n",
        idp.base_url()
    ));
    line(&format!(
        "Browser sign-in: open {external}/ (sign out: {external}/_auth/sign-out; \
         /admin/ needs group admins)"
    ));
    line(&format!(
        "Single-page app (code flow + PKCE in the page, bearer calls to /api/): {external}{SPA_PATH}"
    ));
    line("Users (new passwords on every start):");
    for u in users {
        line(&format!(
            "  {:<6} password {}  groups: {}",
            u.username,
            u.password,
            u.groups.join(", ")
        ));
    }
    line("");
    line(
        "# 200: an ID token; the echo shows X-Auth-Sub, X-Auth-Username, X-Auth-Email, X-Auth-Groups ...",
    );
    line(&format!(
        "curl -i http://{addr}/hello -H 'Authorization: Bearer {bob_id}'\n"
    ));
    line("# 200: an access token (X-Auth-Scope, X-Auth-Token-Use: access)");
    line(&format!(
        "curl -i http://{addr}/hello -H 'Authorization: Bearer {bob_access}'\n"
    ));
    line("# 401 invalid_token, \"The access token expired\"");
    line(&format!(
        "curl -i http://{addr}/hello -H 'Authorization: Bearer {expired}'\n"
    ));
    line("# 403 insufficient_scope: bob is not in group admins");
    line(&format!(
        "curl -i http://{addr}/admin/panel -H 'Authorization: Bearer {bob_access}'\n"
    ));
    line("# 200: alice is in group admins");
    line(&format!(
        "curl -i http://{addr}/admin/panel -H 'Authorization: Bearer {alice_access}'\n"
    ));
    line(
        "# 401 without a token (a browser is sent to sign in instead); 200 on the public route, spoofed identity headers stripped",
    );
    line(&format!("curl -i http://{addr}/hello"));
    line(&format!(
        "curl -i http://{addr}/public/info -H 'X-Auth-Sub: admin'\n"
    ));
    line("# health and metrics");
    line(&format!(
        "curl http://{admin}/readyz; curl -s http://{admin}/metrics | grep cognito_sidecar_auth_denied"
    ));
    line("\nPress Ctrl-C to stop.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_reached_on_loopback() {
        assert_eq!(
            external_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(external_url("[::]:81".parse().unwrap()), "http://[::1]:81");
        assert_eq!(
            external_url("127.0.0.2:9".parse().unwrap()),
            "http://127.0.0.2:9"
        );
    }

    #[test]
    fn the_session_keys_file_is_private_holds_one_key_and_is_removed_on_drop() {
        let file = SessionKeysFile::create().unwrap();
        let path = file.path.clone();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn the_demo_configuration_signs_browsers_in_everywhere_but_the_public_routes() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let login = DemoLogin {
            external_url: "http://127.0.0.1:8080",
            session_keys_file: Path::new("/nonexistent/keys"),
        };
        // A missing keys file is a configuration error: the load reads it.
        assert!(demo_config(a(8080), a(9901), a(1), a(2), &login).is_err());
        let file = SessionKeysFile::create().unwrap();
        let login = DemoLogin {
            session_keys_file: &file.path,
            ..login
        };
        let config = demo_config(a(8080), a(9901), a(1), a(2), &login).unwrap();
        let dbg = format!("{config:?}");
        assert!(dbg.contains("http://127.0.0.1:2/oauth2/authorize"), "{dbg}");
        assert!(dbg.contains("Login"), "{dbg}");
    }
}
