//! `mswitchctl`: the management client of mswitchd.
//!
//! It talks to the daemon's local management socket (`DATA_DIR/mswitch.sock`), one JSON request
//! per line (`docs/management.md`). Tables for people by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 1 the daemon refused the operation (unknown message, busy, bad request);
//! 2 usage error; 3 the daemon could not be reached.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mswitch_daemon::management::{PROTOCOL_VERSION, Request, RequestLine, ResponseLine};
use mswitch_daemon::switch::MessageFilter;
use serde_json::Value;

/// Manage a running mswitchd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The daemon's management socket.
    #[arg(long, value_name = "PATH", default_value = "mswitch-data/mswitch.sock")]
    socket: PathBuf,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    json: bool,
    /// management-tcp: over TCP instead (`--connect`).
    #[command(flatten)]
    tcp: TcpArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Queue counts by channel, peer, priority, state and age.
    Summary,
    /// List queued messages (oldest first).
    List {
        /// Only with a pending recipient through this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only with a pending recipient to this next hop (as `summary` shows it).
        #[arg(long)]
        peer: Option<String>,
        /// Only with a recipient in this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only from senders containing this text.
        #[arg(long)]
        sender: Option<String>,
        /// Only with a recipient containing this text.
        #[arg(long)]
        recipient: Option<String>,
        /// Only at least this many seconds old.
        #[arg(long, value_name = "SECONDS")]
        min_age: Option<u64>,
        /// Only of this priority (normal, urgent, ...).
        #[arg(long)]
        priority: Option<String>,
        /// Only held messages.
        #[arg(long)]
        held: bool,
        /// Only messages with a deferred recipient.
        #[arg(long)]
        deferred: bool,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one message: envelope and each recipient's state.
    Show {
        /// Queue id.
        id: String,
    },
    /// Hold a message (nothing more is attempted until it is released).
    Hold {
        /// Queue id.
        id: String,
    },
    /// Release a held message.
    Release {
        /// Queue id.
        id: String,
    },
    /// Delete a message.
    Delete {
        /// Queue id.
        id: String,
        /// Send its sender a non-delivery report.
        #[arg(long)]
        notify: bool,
    },
    /// Retry a message now, or every deferred message (`--all`).
    Retry {
        /// Queue id.
        id: Option<String>,
        /// Every deferred message.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// With --peer: this channel's messages to that next hop.
        #[arg(long, requires = "peer", conflicts_with_all = ["id", "all"])]
        channel: Option<String>,
        /// The next hop as `summary` shows it (`[host]:port`, `mx:domain`, ...).
        #[arg(long, requires = "channel")]
        peer: Option<String>,
    },
    /// Change a channel's or a listener's controls (with no option: show them).
    Channel {
        /// The channel (outbound) or listener (inbound) name.
        name: String,
        /// Stop outbound delivery (running attempts finish).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Resume outbound delivery.
        #[arg(long)]
        enable: bool,
        /// With --disable/--enable: the listener's new connections instead (421 while disabled).
        #[arg(long)]
        inbound: bool,
        /// Start nothing for this many seconds (0 clears).
        #[arg(long, value_name = "SECONDS")]
        delay: Option<u64>,
        /// Start only messages of at least this priority (`none` clears).
        #[arg(long, value_name = "PRIORITY")]
        min_priority: Option<String>,
        /// Fail every waiting message of the channel now, with notices.
        #[arg(long)]
        time_out: bool,
    },
    /// Send one recipient's copy of a message to another address instead.
    Redirect {
        /// Queue id.
        id: String,
        /// The recipient's address.
        recipient: String,
        /// The new address.
        to: String,
    },
    /// Every peer: jobs running, and self-tuning's concurrency limit and why.
    Peers,
    /// Print delivery events as they happen (one JSON object per line) until interrupted.
    Watch,
    /// Pin a self-tuned peer's concurrency (a number), or give it back to tuning (`auto`).
    Pin {
        /// The channel.
        channel: String,
        /// The next hop as `peers` shows it.
        peer: String,
        /// The limit, or `auto`.
        limit: String,
    },
    /// Reload the daemon's configuration.
    Reload,
}

fn request(command: &Command) -> Result<Request, String> {
    Ok(match command {
        Command::Summary => Request::Summary,
        Command::List {
            channel,
            peer,
            domain,
            sender,
            recipient,
            min_age,
            priority,
            held,
            deferred,
            offset,
            limit,
        } => Request::List {
            filter: MessageFilter {
                channel: channel.clone(),
                peer: peer.clone(),
                domain: domain.clone(),
                sender: sender.clone(),
                recipient: recipient.clone(),
                min_age: *min_age,
                priority: priority.clone(),
                held: held.then_some(true),
                deferred: deferred.then_some(true),
            },
            offset: *offset,
            limit: *limit,
        },
        Command::Show { id } => Request::Show { id: id.clone() },
        Command::Hold { id } => Request::Hold { id: id.clone() },
        Command::Release { id } => Request::Release { id: id.clone() },
        Command::Delete { id, notify } => Request::Delete {
            id: id.clone(),
            notify: *notify,
        },
        Command::Retry {
            id,
            all,
            channel,
            peer,
        } => match (id, all, channel, peer) {
            (Some(id), false, None, None) => Request::Retry {
                id: Some(id.clone()),
                channel: None,
                peer: None,
            },
            (None, true, None, None) => Request::Retry {
                id: None,
                channel: None,
                peer: None,
            },
            (None, false, Some(c), Some(p)) => Request::Retry {
                id: None,
                channel: Some(c.clone()),
                peer: Some(p.clone()),
            },
            _ => return Err("give a queue id, --all, or --channel with --peer".into()),
        },
        Command::Channel {
            name,
            disable,
            enable,
            inbound,
            delay,
            min_priority,
            time_out,
        } => {
            let switch = match (disable, enable) {
                (true, _) => Some(false),
                (_, true) => Some(true),
                _ => None,
            };
            if *inbound && switch.is_none() {
                return Err("--inbound goes with --disable or --enable".into());
            }
            Request::Channel {
                name: name.clone(),
                change: mswitch_daemon::switch::ChannelChange {
                    outbound: switch.filter(|_| !inbound),
                    inbound: switch.filter(|_| *inbound),
                    delay: *delay,
                    min_priority: min_priority.clone(),
                    time_out: *time_out,
                },
            }
        }
        Command::Redirect { id, recipient, to } => Request::Redirect {
            id: id.clone(),
            recipient: recipient.clone(),
            to: to.clone(),
        },
        Command::Peers => Request::Peers,
        Command::Watch => Request::Watch,
        Command::Pin {
            channel,
            peer,
            limit,
        } => Request::Pin {
            channel: channel.clone(),
            peer: peer.clone(),
            limit: if limit == "auto" {
                None
            } else {
                Some(
                    limit
                        .parse()
                        .map_err(|_| format!("{limit:?}: a number, or auto"))?,
                )
            },
        },
        Command::Reload => Request::Reload,
    })
}

fn call(socket: &PathBuf, request: Request) -> Result<ResponseLine, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach mswitchd at {}: {e} (is it running? --socket names another)",
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let line = RequestLine {
        version: PROTOCOL_VERSION,
        request,
    };
    let mut out = serde_json::to_vec(&line).map_err(|e| e.to_string())?;
    out.push(b'\n');
    stream
        .write_all(&out)
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from mswitchd: {e}"))?;
    serde_json::from_str(&answer).map_err(|e| format!("unreadable answer from mswitchd: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_counts(title: &str, v: &Value) {
    if let Some(map) = v.as_object()
        && !map.is_empty()
    {
        println!("{title}:");
        for (k, n) in map {
            println!("  {k:<40} {}", text(n));
        }
    }
}

fn print_message_line(m: &Value) {
    let pending = m["recipients"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| matches!(r["state"].as_str(), Some("pending" | "deferred")))
                .count()
        })
        .unwrap_or(0);
    println!(
        "{:<16} {:>7}s {:>9} {:<9} {:>3} {}{}",
        text(&m["id"]),
        text(&m["age"]),
        text(&m["size"]),
        text(&m["priority"]),
        pending,
        text(&m["from"]),
        if m["held"].as_bool() == Some(true) {
            "  (held)"
        } else {
            ""
        }
    );
}

fn print(command: &Command, result: &Value) {
    match command {
        Command::Summary => {
            for key in ["messages", "recipients", "held", "in_flight"] {
                println!("{key:<12} {}", text(&result[key]));
            }
            print_counts("by channel", &result["by_channel"]);
            print_counts("by peer", &result["by_peer"]);
            print_counts("by priority", &result["by_priority"]);
            print_counts("by state", &result["by_state"]);
            print_counts("by age", &result["by_age"]);
        }
        Command::List { .. } => {
            println!(
                "{:<16} {:>8} {:>9} {:<9} {:>3} FROM",
                "ID", "AGE", "SIZE", "PRIORITY", "RCP"
            );
            if let Some(list) = result["messages"].as_array() {
                for m in list {
                    print_message_line(m);
                }
                println!(
                    "({} shown of {} matching)",
                    list.len(),
                    text(&result["total"])
                );
            }
        }
        Command::Show { .. } => {
            for key in ["id", "from", "priority", "size", "age", "held"] {
                println!("{key:<9} {}", text(&result[key]));
            }
            if let Some(list) = result["recipients"].as_array() {
                for r in list {
                    println!(
                        "  {:<40} {:<9} {} via {} attempts {} {}",
                        text(&r["address"]),
                        text(&r["state"]),
                        text(&r["channel"]),
                        text(&r["next_hop"]),
                        text(&r["attempts"]),
                        r["last"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Peers => {
            println!(
                "{:<12} {:<32} {:>6} {:>5} {:>8}  REASON",
                "CHANNEL", "PEER", "ACTIVE", "LIMIT", "MSG/S"
            );
            for p in result.as_array().into_iter().flatten() {
                let rate = p["rate"]
                    .as_f64()
                    .map_or("-".to_owned(), |r| format!("{r:.1}"));
                println!(
                    "{:<12} {:<32} {:>6} {:>5} {:>8}  {}{}",
                    text(&p["channel"]),
                    text(&p["peer"]),
                    text(&p["active"]),
                    text(&p["limit"]),
                    rate,
                    p["reason"].as_str().unwrap_or(""),
                    if p["resting"].as_bool() == Some(true) {
                        " (resting after failures)"
                    } else {
                        ""
                    }
                );
            }
        }
        _ => println!("{result}"),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let request = match request(&args.command) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mswitchctl: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(args.command, Command::Watch) && args.tcp.connect.is_none() {
        return match watch(&args.socket, request) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mswitchctl: {e}");
                ExitCode::from(3)
            }
        };
    }
    // management-tcp: the socket, or TCP with --connect.
    let response = match call_any(&args, request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mswitchctl: {e}");
            return ExitCode::from(3);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
    }
    if !response.ok {
        let (code, message) = response
            .error
            .map(|e| (e.code, e.message))
            .unwrap_or_default();
        if !args.json {
            eprintln!("mswitchctl: {message} ({code})");
        }
        return ExitCode::from(1);
    }
    if !args.json {
        print(&args.command, &response.result.unwrap_or(Value::Null));
    }
    ExitCode::SUCCESS
}

// management-tcp: reaching the daemon over TCP (`--connect`, docs/management.md "Over TCP").

/// Options to reach the daemon's TCP listener (`[management]`) instead of the socket. The
/// password never goes on the command line: `--password-file`, or `MSWITCH_PASSWORD`.
#[derive(Debug, clap::Args)]
struct TcpArgs {
    /// Reach the daemon's TCP management listener at HOST:PORT (TLS) instead of the socket.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Log in as USER with a password; with --cert, the user to act as (default: the
    /// certificate's name).
    #[arg(long, value_name = "USER", requires = "connect")]
    user: Option<String>,
    /// A file whose first line is the password (default: the MSWITCH_PASSWORD environment
    /// variable).
    #[arg(long, value_name = "FILE", requires = "connect")]
    password_file: Option<PathBuf>,
    /// The SASL mechanism for the password: PLAIN (the default) or SCRAM-SHA-256.
    #[arg(long, value_name = "MECHANISM", requires = "connect")]
    mechanism: Option<String>,
    /// CA certificates (PEM) to verify the daemon's certificate (default: the system's
    /// roots).
    #[arg(long, value_name = "FILE", requires = "connect")]
    ca_file: Option<PathBuf>,
    /// Log in with this client certificate (PEM; SASL EXTERNAL) instead of a password.
    #[arg(long, value_name = "FILE", requires_all = ["connect", "key"])]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["connect", "cert"])]
    key: Option<PathBuf>,
}

/// Exits with a usage error (code 2).
fn tcp_usage(message: &str) -> ! {
    <Args as clap::CommandFactory>::command()
        .bin_name("mswitchctl")
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

/// The request over the socket, or over TCP with `--connect`.
fn call_any(args: &Args, request: Request) -> Result<ResponseLine, String> {
    match &args.tcp.connect {
        None => call(&args.socket, request),
        Some(address) => call_tcp(address, &args.tcp, request),
    }
}

/// Connects with TLS, logs in, sends the request. A refused login is the answer (exit 1);
/// bad options or unreadable files are usage errors (exit 2); the rest is "not reached".
fn call_tcp(address: &str, tcp: &TcpArgs, request: Request) -> Result<ResponseLine, String> {
    use mswitch_daemon::management_tcp::{Client, ClientAuth};
    use mswitch_smtp::sasl::ClientMechanism;
    use mswitch_smtp::tls::{CertifiedKeyPem, Verification, client_config};

    if mswitch_daemon::config::HostPort::parse(address)
        .and_then(|h| h.port)
        .is_none()
    {
        tcp_usage(&format!("--connect {address:?}: expected HOST:PORT"));
    }
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .unwrap_or_else(|e| tcp_usage(&format!("cannot read {}: {e}", path.display())))
    };
    let verification = match &tcp.ca_file {
        Some(path) => Verification::CaFile(read(path)),
        None => Verification::SystemRoots,
    };
    let pair = match (&tcp.cert, &tcp.key) {
        (Some(c), Some(k)) => Some((read(c), read(k))),
        _ => None,
    };
    let client_cert = pair.as_ref().map(|(c, k)| CertifiedKeyPem {
        cert_chain: c,
        key: k,
    });
    let tls = match client_config(verification, client_cert) {
        Ok(tls) => tls,
        Err(e @ mswitch_smtp::tls::TlsConfigError::NoSystemRoots { .. }) => {
            return Err(format!(
                "cannot verify mswitchd's certificate: {e} (give --ca-file)"
            ));
        }
        Err(e) => tcp_usage(&format!("TLS: {e}")),
    };
    let password;
    let auth = if pair.is_some() {
        ClientAuth::External {
            authzid: tcp.user.as_deref(),
        }
    } else {
        let Some(user) = tcp.user.as_deref() else {
            tcp_usage("--connect needs --user (with a password) or --cert and --key");
        };
        password = match &tcp.password_file {
            Some(path) => {
                let text = String::from_utf8(read(path)).unwrap_or_else(|_| {
                    tcp_usage(&format!("{}: the password is not UTF-8", path.display()))
                });
                text.lines().next().unwrap_or("").to_owned()
            }
            None => std::env::var("MSWITCH_PASSWORD").unwrap_or_else(|_| {
                tcp_usage("give --password-file FILE, or set MSWITCH_PASSWORD")
            }),
        };
        let name = tcp.mechanism.as_deref().unwrap_or("PLAIN");
        let mechanism = ClientMechanism::from_name(name)
            .filter(|m| *m != ClientMechanism::Login)
            .unwrap_or_else(|| tcp_usage(&format!("--mechanism {name}: PLAIN or SCRAM-SHA-256")));
        ClientAuth::Password {
            mechanism,
            user,
            password: &password,
        }
    };
    let mut client = Client::connect(address, tls, Duration::from_secs(120))
        .map_err(|e| format!("cannot reach mswitchd at {address}: {e}"))?;
    let answer = client
        .authenticate(auth)
        .map_err(|e| format!("cannot log in to mswitchd at {address}: {e}"))?;
    if !answer.ok {
        return Ok(answer);
    }
    client
        .call(request)
        .map_err(|e| format!("no answer from mswitchd at {address}: {e}"))
}

/// Prints the daemon's delivery events, one JSON object per line, until it closes.
fn watch(socket: &PathBuf, request: Request) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach mswitchd at {}: {e}", socket.display()))?;
    let line = RequestLine {
        version: PROTOCOL_VERSION,
        request,
    };
    let mut out = serde_json::to_vec(&line).map_err(|e| e.to_string())?;
    out.push(b'\n');
    stream
        .write_all(&out)
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut lines = BufReader::new(stream).lines();
    let ack = lines
        .next()
        .ok_or("mswitchd closed the connection")?
        .map_err(|e| e.to_string())?;
    let ack: ResponseLine = serde_json::from_str(&ack).map_err(|e| e.to_string())?;
    if !ack.ok {
        return Err(ack.error.map(|e| e.message).unwrap_or_default());
    }
    let stdout = std::io::stdout();
    for l in lines {
        let l = l.map_err(|e| e.to_string())?;
        let mut o = stdout.lock();
        if writeln!(o, "{l}").and_then(|()| o.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
