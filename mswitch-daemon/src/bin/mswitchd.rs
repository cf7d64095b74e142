//! `mswitchd`: the mswitch daemon.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use mswitch_daemon::config::{Config, LogFormat};
use mswitch_daemon::gateway_directory::GatewayDirectoryRule;
use mswitch_daemon::switch::{
    DirectorySnapshot, DirectorySource, DirectoryWatch, Registry, Switch,
};
use mswitch_route::directory::DirectoryTables;
use mswitch_route::x400::X400DirectoryTree;
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
    // Every record on one line: what clients sent never splits or forges a log line.
    let writer = mswitch_daemon::logging::EscapingWriter::new(format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
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

/// What happened in the main loop.
enum Event {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP, the configuration file changed, or mswitchctl asked (with where to answer).
    Reload(Option<mswitch_daemon::management::ReloadRequest>),
    /// A snapshot of the directory was read.
    Directory(DirectorySnapshot),
    /// Nothing that needs a reload (SIGUSR1, a file poll without change).
    Nothing,
}

/// The configuration as its parts: the file's, and the parts of the directory's snapshots
/// applied (each kept until a newer read of that part merges).
#[derive(Clone)]
struct Parts {
    file: Config,
    tables: Option<DirectoryTables>,
    x400_trees: Option<Vec<X400DirectoryTree>>,
    gateway_rules: Option<Vec<GatewayDirectoryRule>>,
    /// The last part of each kind that did not merge, so that the same one read again at
    /// the next poll is not reported again.
    rejected: DirectorySnapshot,
}

impl Parts {
    /// The file's configuration alone.
    fn new(file: Config) -> Parts {
        Parts {
            file,
            tables: None,
            x400_trees: None,
            gateway_rules: None,
            rejected: DirectorySnapshot::default(),
        }
    }

    /// The file's configuration with the directory's parts merged in.
    fn merged(&self) -> Result<Config, String> {
        let mut c = match &self.tables {
            Some(t) => self.file.with_directory(t).map_err(|e| e.to_string())?,
            None => self.file.clone(),
        };
        if let Some(t) = &self.x400_trees {
            c = c.with_x400_trees(t).map_err(|e| e.to_string())?;
        }
        if let Some(r) = &self.gateway_rules {
            c = c.with_gateway_rules(r).map_err(|e| e.to_string())?;
        }
        Ok(c)
    }

    /// Takes the parts of `snapshot` that were read, differ from the current ones, and merge;
    /// a part that does not merge is logged (naming the entry at fault) and the current one
    /// stays. Whether anything changed.
    fn take(&mut self, snapshot: DirectorySnapshot, starting: bool) -> bool {
        let mut changed = false;
        if let Some(t) = snapshot.tables
            && self.tables.as_ref() != Some(&t)
            && self.rejected.tables.as_ref() != Some(&t)
        {
            let (domains, aliases, lists) = counts(&t);
            if starting {
                tracing::info!(domains, aliases, lists, "directory configuration read");
            } else {
                tracing::info!(domains, aliases, lists, "directory configuration changed");
            }
            let old = self.tables.replace(t);
            match self.merged() {
                Ok(_) => {
                    changed = true;
                    self.rejected.tables = None;
                }
                Err(e) => {
                    tracing::error!(error = %e,
                        "directory configuration not applied; the current one stays");
                    self.rejected.tables = std::mem::replace(&mut self.tables, old);
                }
            }
        }
        if let Some(t) = snapshot.x400_trees
            && self.x400_trees.as_ref() != Some(&t)
            && self.rejected.x400_trees.as_ref() != Some(&t)
        {
            let trees = t.len();
            let routes: usize = t.iter().map(|t| t.routes.len()).sum();
            if starting {
                tracing::info!(trees, routes, "X.400 routing trees read from the directory");
            } else {
                tracing::info!(
                    trees,
                    routes,
                    "X.400 routing trees in the directory changed"
                );
            }
            let old = self.x400_trees.replace(t);
            match self.merged() {
                Ok(_) => {
                    changed = true;
                    self.rejected.x400_trees = None;
                }
                Err(e) => {
                    tracing::error!(error = %e,
                        "X.400 routing trees from the directory not applied; the current ones \
                         stay");
                    self.rejected.x400_trees = std::mem::replace(&mut self.x400_trees, old);
                }
            }
        }
        if let Some(r) = snapshot.gateway_rules
            && self.gateway_rules.as_ref() != Some(&r)
            && self.rejected.gateway_rules.as_ref() != Some(&r)
        {
            let rules = r.len();
            if starting {
                tracing::info!(rules, "gateway address rules read from the directory");
            } else {
                tracing::info!(rules, "gateway address rules in the directory changed");
            }
            let old = self.gateway_rules.replace(r);
            match self.merged() {
                Ok(_) => {
                    changed = true;
                    self.rejected.gateway_rules = None;
                }
                Err(e) => {
                    tracing::error!(error = %e,
                        "gateway address rules from the directory not applied; the current \
                         ones stay");
                    self.rejected.gateway_rules = std::mem::replace(&mut self.gateway_rules, old);
                }
            }
        }
        changed
    }
}

/// Reads the directory of `config` (if any) every poll interval, the first time after `first`.
fn watch_directory(config: &Config, first: Option<Duration>) -> Option<DirectoryWatch> {
    let d = config.directory.as_ref()?;
    let first = first.or(d.poll)?;
    match DirectorySource::new(d) {
        Ok(source) => Some(DirectoryWatch::spawn(Arc::new(source), first, d.poll)),
        Err(e) => {
            tracing::error!(error = %e, "the directory cannot be read");
            None
        }
    }
}

/// The next snapshot of `watch`; never, without a watch or once it has ended.
async fn next_snapshot(watch: &mut Option<DirectoryWatch>) -> DirectorySnapshot {
    if let Some(w) = watch
        && let Some(snapshot) = w.next().await
    {
        return snapshot;
    }
    std::future::pending().await
}

fn counts(t: &DirectoryTables) -> (usize, usize, usize) {
    (t.local_domains.len(), t.aliases.len(), t.lists.len())
}

async fn run(args: Args, config: Config) -> ExitCode {
    tracing::info!(configuration = %config.origin, data_dir = %config.data_dir.display(),
        "mswitchd starting");
    // The directory's configuration is read before the switch starts, so that its addresses
    // are never refused for want of it; if it cannot be read, the switch starts without it and
    // the poll tries again.
    let mut parts = Parts::new(config);
    if let Some(d) = &parts.file.directory {
        let source = match DirectorySource::new(d) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("mswitchd: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let snapshot = source.load().await;
        if snapshot.tables.is_none() {
            tracing::error!(url = %d.ldap.url,
                "cannot read the directory configuration; starting without it");
        }
        let url = d.ldap.url.clone();
        parts.take(snapshot, true);
        tracing::info!(url = %url, "directory read");
    }
    let config = match parts.merged() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e,
                "the directory configuration cannot be applied; starting without it");
            parts = Parts::new(parts.file.clone());
            parts.file.clone()
        }
    };
    // management-tcp: the TCP listener's files are read and its address bound before the
    // switch starts, so that a mistake in `[management]` stops the start.
    let management_tcp = match &parts.file.management {
        Some(m) => match mswitch_daemon::management_tcp::ManagementListener::bind(m).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("mswitchd: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // The management socket is bound before the switch starts listening, so that once the
    // switch answers on its ports, mswitchctl can reach it too.
    let socket = args.data_dir.join("mswitch.sock");
    let _ = std::fs::create_dir_all(&args.data_dir);
    let management_socket = match mswitch_daemon::management::bind(&socket) {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::error!(socket = %socket.display(), error = %e,
                "no management socket: mswitchctl cannot reach this daemon");
            None
        }
    };
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
    // The management socket (mswitchctl), in the data directory.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    let reload_tcp = reload_tx.clone(); // management-tcp
    let management = management_socket.map(|listener| {
        tokio::spawn(mswitch_daemon::management::serve(
            listener,
            socket.clone(),
            switch.management(),
            reload_tx,
        ))
    });
    // management-tcp: the TCP listener serves; its reload requests come here like the socket's.
    let management_tcp = management_tcp.map(|l| l.spawn(switch.management(), Some(reload_tcp)));
    let mut watch = watch_directory(&parts.file, None);
    let mut stamp = args.config.as_deref().and_then(modified);
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    loop {
        let event = tokio::select! {
            _ = term.recv() => Event::Stop,
            _ = int.recv() => Event::Stop,
            _ = hup.recv() => Event::Reload(None),
            Some(answer) = reload_rx.recv() => Event::Reload(Some(answer)),
            _ = usr1.recv() => {
                tracing::info!("retrying every deferred message now (SIGUSR1)");
                switch.retry_now();
                Event::Nothing
            }
            _ = poll.tick() => {
                let now = args.config.as_deref().and_then(modified);
                let changed = now.is_some() && now != stamp;
                stamp = now;
                if changed { Event::Reload(None) } else { Event::Nothing }
            }
            tables = next_snapshot(&mut watch) => Event::Directory(tables),
        };
        match event {
            Event::Stop => break,
            Event::Nothing => {}
            Event::Directory(snapshot) => {
                let mut next = parts.clone();
                if !next.take(snapshot, false) {
                    // Nothing to apply; a rejected part is remembered.
                    parts = next;
                    continue;
                }
                match next.merged() {
                    Ok(c) => match switch.reload(c) {
                        Ok(()) => parts = next,
                        Err(e) => tracing::error!(error = %e,
                            "directory configuration not applied; the current one stays"),
                    },
                    Err(e) => tracing::error!(error = %e,
                        "directory configuration not applied; the current one stays"),
                }
            }
            Event::Reload(answer) => {
                let file = match load(&args) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "reload failed; the old configuration stays");
                        if let Some(a) = answer {
                            let _ = a.send(Err(e));
                        }
                        continue;
                    }
                };
                // The last snapshot is merged into the new file; without [directory] there is
                // none. The directory is read again at once (a new one, or the same one for a
                // SIGHUP that should see its changes too).
                let d = file.directory.as_ref();
                let next = Parts {
                    tables: parts.tables.clone().filter(|_| d.is_some()),
                    x400_trees: parts
                        .x400_trees
                        .clone()
                        .filter(|_| d.is_some_and(|d| d.x400.is_some())),
                    gateway_rules: parts
                        .gateway_rules
                        .clone()
                        .filter(|_| d.is_some_and(|d| d.gateway_base.is_some())),
                    // Parts rejected under the old file may fit the new one.
                    rejected: DirectorySnapshot::default(),
                    file,
                };
                let applied = next
                    .merged()
                    .and_then(|c| switch.reload(c).map_err(|e| e.to_string()));
                match applied {
                    Ok(()) => {
                        parts = next;
                        if let Some(t) = &management_tcp {
                            t.reload(parts.file.management.as_ref()); // management-tcp
                        }
                        watch = watch_directory(&parts.file, Some(Duration::ZERO));
                        if let Some(a) = answer {
                            let _ = a.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload failed; the old configuration stays");
                        if let Some(a) = answer {
                            let _ = a.send(Err(e));
                        }
                    }
                }
            }
        }
    }
    drop(watch);
    drop(management_tcp); // management-tcp
    if let Some(m) = management {
        m.abort();
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("shutting down");
    switch
        .shutdown(Duration::from_secs(args.shutdown_grace))
        .await;
    ExitCode::SUCCESS
}
