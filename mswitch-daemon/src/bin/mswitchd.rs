//! `mswitchd`: the mswitch daemon.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use mswitch_daemon::config::{Config, LogFormat};
use mswitch_daemon::switch::{Registry, Switch};
use tokio::signal::unix::{SignalKind, signal};

/// The mswitch message switch daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it, the embedded default is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for everything the daemon writes (queue, mailboxes).
    #[arg(long, value_name = "DIR", default_value = "mswitch-data")]
    data_dir: PathBuf,
    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    check_config: bool,
    /// Print a password-file line for USER, reading the password from standard input, and exit.
    #[arg(long, value_name = "USER")]
    hash_password: Option<String>,
    /// How long to wait for running deliveries at shutdown, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_grace: u64,
}

fn load(args: &Args) -> Result<Config, String> {
    match &args.config {
        Some(path) => Config::load(path, &args.data_dir),
        None => Config::embedded(&args.data_dir),
    }
    .map_err(|e| e.to_string())
}

fn init_logging(format: LogFormat) {
    let level = std::env::var("MSWITCH_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn hash_password(user: &str) -> ExitCode {
    if user.is_empty() || user.contains(':') {
        eprintln!("mswitchd: a user name must be non-empty and without ':'");
        return ExitCode::from(2);
    }
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("mswitchd: cannot read the password from standard input");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    let mut salt = [0u8; 16];
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // The salt needs to be unique, not secret.
    let mut h =
        std::hash::BuildHasher::build_hasher(&std::collections::hash_map::RandomState::new());
    std::hash::Hasher::write_u128(&mut h, seed);
    let a = std::hash::Hasher::finish(&h).to_le_bytes();
    std::hash::Hasher::write_u32(&mut h, std::process::id());
    let b = std::hash::Hasher::finish(&h).to_le_bytes();
    salt[..8].copy_from_slice(&a);
    salt[8..].copy_from_slice(&b);
    match mswitch_smtp::sasl::hash_password(password, &salt, 4096) {
        Ok(verifier) => {
            println!("{user}:{verifier}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mswitchd: {e}");
            ExitCode::from(2)
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(user) = &args.hash_password {
        return hash_password(user);
    }
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mswitchd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        print!("{config}");
        println!("mswitchd: configuration OK ({})", config.origin);
        return ExitCode::SUCCESS;
    }
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mswitchd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, config))
}

async fn run(args: Args, config: Config) -> ExitCode {
    tracing::info!(configuration = %config.origin, data_dir = %config.data_dir.display(),
        "mswitchd starting");
    let mut switch = match Switch::start(config, Registry::new()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("mswitchd: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        eprintln!("mswitchd: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let mut stamp = args.config.as_deref().and_then(modified);
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    loop {
        let reload = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => true,
            _ = usr1.recv() => {
                tracing::info!("retrying every deferred message now (SIGUSR1)");
                switch.retry_now();
                false
            }
            _ = poll.tick() => {
                let now = args.config.as_deref().and_then(modified);
                let changed = now.is_some() && now != stamp;
                stamp = now;
                changed
            }
        };
        if reload {
            match load(&args) {
                Ok(c) => {
                    if let Err(e) = switch.reload(c) {
                        tracing::error!(error = %e, "reload failed; the old configuration stays");
                    }
                }
                Err(e) => tracing::error!(error = %e, "reload failed; the old configuration stays"),
            }
        }
    }
    tracing::info!("shutting down");
    switch
        .shutdown(Duration::from_secs(args.shutdown_grace))
        .await;
    ExitCode::SUCCESS
}
