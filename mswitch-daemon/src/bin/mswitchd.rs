//! `mswitchd`: the mswitch daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mswitch_daemon::config::Config;

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
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => Config::load(path, &args.data_dir),
        None => Config::embedded(&args.data_dir),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mswitchd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("mswitchd: configuration OK ({})", config.origin);
        return ExitCode::SUCCESS;
    }
    print!("{config}");
    println!(
        "mswitchd: this build does not accept or deliver mail yet (the SMTP engines and the \
         scheduler that wire the queue into a switch are still to come); it has validated and \
         reported its configuration and now exits without listening."
    );
    ExitCode::SUCCESS
}
