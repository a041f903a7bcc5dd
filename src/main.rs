//! The `cognito-sidecar` command line: `run` (the default), `check-config`,
//! `verify-token` and `demo`. Exit codes: 0 success, 64 invalid configuration or
//! usage, 1 runtime failure (or, for `verify-token`, a rejected token).

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use cognito_sidecar::config::{Config, LogFormat};
use cognito_sidecar::{Listeners, StartError, demo, diagnose};

/// Exit code for configuration and usage errors (BSD `EX_USAGE`).
const EX_USAGE: u8 = 64;

/// Authenticating reverse proxy for Amazon Cognito user-pool tokens.
///
/// cognito-sidecar sits in front of an HTTP service. Requests without a valid Cognito
/// ID or access token (RS256, keys from the pool's JWKS) are rejected with RFC 6750
/// answers; verified identity reaches the backend as X-Auth-* headers; everything else
/// streams through. Health and Prometheus metrics are served on a separate admin port.
///
/// Configuration comes from a TOML file (--config or COGNITO_SIDECAR_CONFIG) and
/// COGNITO_SIDECAR_* environment variables (nested keys joined by "__", e.g.
/// COGNITO_SIDECAR_LIMITS__UPSTREAM_TIMEOUT_SECONDS=30). See config.example.toml.
///
/// Exit codes: 0 clean shutdown, 64 invalid configuration, 1 runtime failure.
#[derive(Parser, Debug)]
#[command(name = "cognito-sidecar", version, about, long_about)]
struct Cli {
    /// TOML configuration file. Every key can be overridden by a COGNITO_SIDECAR_<KEY>
    /// environment variable (nested keys with "__", e.g. COGNITO_SIDECAR_LIMITS__MAX_HEADERS).
    #[arg(long, short = 'c', global = true, env = "COGNITO_SIDECAR_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy (the default when no command is given).
    ///
    /// On SIGTERM or Ctrl-C: /readyz fails at once, the listener keeps accepting for
    /// shutdown.pre_stop_delay_seconds, then stops; in-flight requests and WebSockets get
    /// shutdown.drain_timeout_seconds; the process exits 0. On SIGHUP, or when the
    /// configuration file changes, the configuration is validated and swapped in
    /// atomically; an invalid one is logged and ignored.
    Run,
    /// Validate the configuration, print the effective settings and exit.
    ///
    /// Exit code 0 when valid; 64 with one line per problem, each naming its key. A
    /// warning on standard error names the routes in report mode (exit code still 0).
    CheckConfig,
    /// Explain whether a token would be accepted, and why not.
    ///
    /// Fetches the configured pools' keys once, runs the same decision the proxy runs
    /// for METHOD PATH, and prints the token's claims, the verdict in plain words and
    /// the identity headers the backend would receive. Exit code 0 accepted, 1 rejected,
    /// 64 configuration error. The token is never logged.
    VerifyToken {
        /// Only this pool (by name) may verify the token.
        #[arg(long)]
        pool: Option<String>,
        /// Request path to check the route rules for.
        #[arg(long, default_value = "/")]
        path: String,
        /// Request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The token (without "Bearer "), or "-" to read it from standard input.
        token: String,
    },
    /// Start a self-contained demo: embedded issuer, echo backend and the proxy.
    ///
    /// Prints ready-to-paste curl commands showing a 200 with identity headers, an
    /// expired token's 401, a missing group's 403 and header-spoofing protection, and
    /// the URLs of browser sign-in and of a single-page app with the demo users'
    /// passwords (new on every start).
    /// Development aid only: a normal run never mints tokens.
    Demo {
        /// Proxy address for the demo.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin address for the demo.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: SocketAddr,
        /// Lifetime of the tokens the embedded issuer mints at sign-in and refresh
        /// (short lifetimes show browser sessions refreshing).
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        token_lifetime_seconds: u64,
    },
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal && std::env::var_os("NO_COLOR").is_none());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn load(path: Option<&Path>) -> Result<Config, String> {
    Config::load(path).map_err(|e| {
        let source = path.map_or_else(|| "environment".to_owned(), |p| p.display().to_string());
        format!("{source}: {e}")
    })
}

fn run(runtime: &tokio::runtime::Runtime, path: Option<PathBuf>) -> ExitCode {
    let cfg = match load(path.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("cognito-sidecar: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    init_logging(cfg.log_format, &cfg.log_level);
    runtime.block_on(async move {
        let listeners = match Listeners::bind(&cfg).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot bind listeners");
                return ExitCode::FAILURE;
            }
        };
        match cognito_sidecar::start(cfg, listeners, shutdown_signal()).await {
            Ok(running) => {
                let reloader = tokio::spawn(cognito_sidecar::reload::watch(
                    Arc::clone(&running.live),
                    cognito_sidecar::reload::WatchSettings::for_file(path),
                ));
                running.wait().await;
                reloader.abort();
                ExitCode::SUCCESS
            }
            // Unusable certificate, key or CA files are configuration errors.
            Err(e @ (StartError::Tls(_) | StartError::Shared(_))) => {
                tracing::error!(error = %e, "invalid configuration");
                eprintln!("cognito-sidecar: {e}");
                ExitCode::from(EX_USAGE)
            }
            Err(e) => {
                tracing::error!(error = %e, "cognito-sidecar failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn verify_token(
    runtime: &tokio::runtime::Runtime,
    path: Option<&Path>,
    pool: Option<&str>,
    token: &str,
    method: &str,
    route: &str,
) -> ExitCode {
    let cfg = match load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("cognito-sidecar: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let token = if token == "-" {
        let mut s = String::new();
        if std::io::stdin().read_to_string(&mut s).is_err() {
            eprintln!("cognito-sidecar: cannot read the token from standard input");
            return ExitCode::from(EX_USAGE);
        }
        s
    } else {
        token.to_owned()
    };
    let token = token.trim().trim_start_matches("Bearer ").trim();
    match runtime.block_on(diagnose::verify_token(&cfg, pool, token, method, route)) {
        Ok(v) => {
            let _ = write!(std::io::stdout(), "{}", v.report);
            if v.accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cognito-sidecar: {e}");
            ExitCode::from(EX_USAGE)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cognito-sidecar: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Demo {
            listen,
            admin_listen,
            token_lifetime_seconds,
        }) => {
            init_logging(LogFormat::Text, "warn,access=info");
            let options = demo::DemoOptions {
                listen,
                admin_listen,
                token_lifetime_seconds,
            };
            match runtime.block_on(demo::run(options, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cognito-sidecar demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::CheckConfig) => match load(cli.config.as_deref()) {
            Ok(cfg) => {
                // Ignore a closed pipe (`check-config | head`): the verdict is the exit code.
                let _ = writeln!(std::io::stdout(), "configuration is valid\n{cfg:#?}");
                // A warning, not a problem: the exit code stays 0.
                if let Some(warning) = cfg.report_mode_warning() {
                    eprintln!("cognito-sidecar: warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cognito-sidecar: {e}");
                ExitCode::from(EX_USAGE)
            }
        },
        Some(Command::VerifyToken {
            pool,
            path,
            method,
            token,
        }) => verify_token(
            &runtime,
            cli.config.as_deref(),
            pool.as_deref(),
            &token,
            &method,
            &path,
        ),
        Some(Command::Run) | None => run(&runtime, cli.config),
    }
}
