//! `cairn`: the one binary. `cairn serve` runs everything in one process;
//! `cairn config defaults` prints the default configuration; `cairn users add`
//! writes an entry of the basic-auth users file; `cairn tenants` prints the
//! tenants overview of a running server; `cairn import` backfills a tenant
//! from OpenMetrics text.

mod config;
mod import;
mod tenants;

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
    /// Backfill a tenant from OpenMetrics (or Prometheus) text with
    /// timestamps, into blocks that a running server picks up within one
    /// maintenance interval.
    Import(ImportArgs),
    /// Basic-auth users file helpers.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Print every tenant of a running server: active series, ingestion
    /// rate, bytes stored, last write (needs an admin user when auth is on).
    Tenants(tenants::TenantsArgs),
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add a user, or update an existing one (password always; tenant lists
    /// when given). Prompts for the password unless --password-stdin.
    Add(UsersAddArgs),
}

#[derive(clap::Args, Debug)]
struct UsersAddArgs {
    /// User name (the basic-auth user; also its tenant with auth.user_as_tenant).
    name: String,
    /// Tenants the user may read, comma-separated; `*` for all.
    #[arg(long = "tenants-read", value_delimiter = ',')]
    tenants_read: Option<Vec<String>>,
    /// Tenants the user may write, comma-separated; `*` for all.
    #[arg(long = "tenants-write", value_delimiter = ',')]
    tenants_write: Option<Vec<String>>,
    /// Grant (true) or revoke (false) the admin endpoints; unchanged when absent.
    #[arg(long)]
    admin: Option<bool>,
    /// The users file to create or update.
    #[arg(long, default_value = "users.yaml")]
    file: PathBuf,
    /// Read the password from the first line of standard input.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
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

#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// The tenant to import into.
    #[arg(long)]
    tenant: String,
    /// YAML configuration file, as for `serve` (its `storage.path` is where
    /// the data goes); without it `./data`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overrides `storage.path`.
    #[arg(long = "storage.path")]
    storage_path: Option<PathBuf>,
    /// Input syntax: `openmetrics` (timestamps in seconds, `# EOF` at the
    /// end; what promtool takes) or `prometheus` (timestamps in ms).
    #[arg(long, value_enum, default_value = "openmetrics")]
    format: import::Format,
    /// The input file; `-` reads standard input.
    file: PathBuf,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the whole default configuration, one comment per field.
    Defaults,
}

/// glibc gives threads that allocate at the same time their own heaps
/// ("arenas"), up to eight per core, and memory freed in one stays there.
/// One arena per core (at least two) keeps the head's resident memory
/// about 10 % lower on the 100k-series ingest benchmark for no clear CPU
/// cost (BENCHMARKS.md, issue 8 fifth round). `MALLOC_ARENA_MAX` set in
/// the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter; this runs first in
    // `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{}", config::defaults_yaml());
            ExitCode::SUCCESS
        }
        Command::Users {
            command: UsersCommand::Add(args),
        } => match users_add(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("cairn: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Tenants(args) => match tenants::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("cairn: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Import(args) => match import_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("cairn: import refused, nothing imported: {message}");
                ExitCode::FAILURE
            }
        },
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
            .map_err(|e| error_chain(&e))?;
        let address = server.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(
            address = %address,
            data_dir = %options.data_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            "cairn listening"
        );
        server
            .run(shutdown_signal())
            .await
            .map_err(|e| error_chain(&e))
    })
}

fn import_command(args: ImportArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(path) = args.storage_path {
        config.storage.path = path;
    }
    config.validate().map_err(|e| e.to_string())?;
    let tenant = cairn_model::TenantId::new(&args.tenant)
        .map_err(|e| format!("invalid tenant {:?}: {e}", args.tenant))?;
    let options = config.server_options().map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let report = import::run(
        &options.data_dir,
        &tenant,
        &args.file,
        args.format,
        options.tsdb.block_range_ms,
    )
    .map_err(|e| error_chain(&e))?;
    eprintln!(
        "imported {} samples of {} series into {} blocks ({} to {} ms) of tenant {} in {:.1}s",
        report.samples,
        report.series,
        report.blocks,
        report.min_time.unwrap_or(0),
        report.max_time.unwrap_or(0),
        tenant,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// An error and its sources, joined by `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn users_add(args: UsersAddArgs) -> Result<(), String> {
    use cairn_server::auth::{hash_password, UserEntry, UsersFile};
    if args.name.is_empty() || args.name.contains(':') || args.name.chars().any(char::is_control) {
        return Err(format!(
            "invalid user name {:?}: it must be non-empty, without ':' or control characters",
            args.name
        ));
    }
    for tenant in args
        .tenants_read
        .iter()
        .chain(args.tenants_write.iter())
        .flatten()
    {
        if tenant != "*" {
            cairn_model::TenantId::new(tenant)
                .map_err(|e| format!("invalid tenant {tenant:?}: {e}"))?;
        }
    }
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let first = rpassword::prompt_password(format!("password for {}: ", args.name))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let second = rpassword::prompt_password("repeat the password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != second {
            return Err("the passwords differ".into());
        }
        first
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let mut file = UsersFile::load_or_empty(&args.file).map_err(|e| error_chain(&e))?;
    let entry = file
        .users
        .entry(args.name.clone())
        .or_insert_with(UserEntry::default);
    entry.password_hash = hash_password(&password).map_err(|e| e.to_string())?;
    if let Some(read) = args.tenants_read {
        entry.read = read;
    }
    if let Some(write) = args.tenants_write {
        entry.write = write;
    }
    if let Some(admin) = args.admin {
        entry.admin = admin;
    }
    file.save(&args.file)
        .map_err(|e| format!("cannot write {}: {e}", args.file.display()))?;
    eprintln!("user {} written to {}", args.name, args.file.display());
    Ok(())
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
