//! `cairn`: the one binary. `cairn serve` runs everything in one process;
//! `cairn config defaults` prints the default configuration.

mod config;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Multi-tenant, Prometheus-compatible metrics store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the store: remote write in, PromQL out.
    Serve(ServeArgs),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// YAML configuration file; without it the embedded defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overrides `server.http_listen_address`.
    #[arg(long = "http.listen-address")]
    http_listen_address: Option<String>,
    /// Overrides `storage.path`.
    #[arg(long = "storage.path")]
    storage_path: Option<PathBuf>,
    /// Overrides `server.log_level` (error, warn, info, debug, trace).
    #[arg(long = "log.level")]
    log_level: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the whole default configuration, one comment per field.
    Defaults,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{}", config::defaults_yaml());
            ExitCode::SUCCESS
        }
        Command::Serve(args) => match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("cairn: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(address) = args.http_listen_address {
        config.server.http_listen_address = address;
    }
    if let Some(path) = args.storage_path {
        config.storage.path = path;
    }
    if let Some(level) = args.log_level {
        config.server.log_level = level;
    }
    config.validate().map_err(|e| e.to_string())?;
    init_logging(&config.server.log_level)?;
    let options = config.server_options().map_err(|e| e.to_string())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cairn")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let server = cairn_server::Server::bind(options.clone())
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.listen_address))?;
        let address = server.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(
            address = %address,
            data_dir = %options.data_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            "cairn listening"
        );
        server.run(shutdown_signal()).await.map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            message
        })
    })
}

fn init_logging(level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("invalid log level {level:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
