//! The `cognito-sidecar` command line: `run` (the default), `check-config` and `demo`.
//! Exit codes: 0 success, 64 invalid configuration or usage, 1 runtime failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cognito_sidecar::config::{Config, LogFormat};
use cognito_sidecar::{Listeners, StartError, demo};

/// Exit code for configuration and usage errors (BSD `EX_USAGE`).
const EX_USAGE: u8 = 64;

/// Authenticating reverse proxy for Amazon Cognito user-pool tokens.
///
/// Requests without a valid Cognito ID or access token are rejected; verified
/// identity is passed to the backend in headers; everything else streams through.
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
    Run,
    /// Validate the configuration, print the effective settings and exit (0 valid, 64 invalid).
    CheckConfig,
    /// Start a self-contained demo: embedded issuer, echo backend and the proxy, with
    /// ready-to-paste curl commands. Development aid only.
    Demo {
        /// Proxy address for the demo.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin address for the demo.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: SocketAddr,
    },
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
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

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    Config::load(cli.config.as_deref()).map_err(|e| {
        let source = cli
            .config
            .as_ref()
            .map_or_else(|| "environment".to_owned(), |p| p.display().to_string());
        eprintln!("cognito-sidecar: {source}: {e}");
        ExitCode::from(EX_USAGE)
    })
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
        }) => {
            init_logging(LogFormat::Text, "warn,access=info");
            match runtime.block_on(demo::run(listen, admin_listen, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cognito-sidecar demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::CheckConfig) => match load(&cli) {
            Ok(cfg) => {
                println!("configuration is valid\n{cfg:#?}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Some(Command::Run) | None => {
            let cfg = match load(&cli) {
                Ok(cfg) => cfg,
                Err(code) => return code,
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
                match cognito_sidecar::run(cfg, listeners, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    // Unusable certificate, key or CA files are configuration errors.
                    Err(e @ (StartError::Tls(_) | StartError::Upstream(_))) => {
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
    }
}
