//! The Prometheus endpoint (`[metrics]`): scraped with curl and read with a Prometheus
//! text-format parser (`prometheus-parse`) while mail goes through the daemon.

use std::process::Command;
use std::time::Duration;

use mswitch_testkit::{free_port, wait_until};
use prometheus_parse::{Sample, Scrape, Value};

use crate::common::Daemon;
use crate::delivery::{Client, message};

/// Messages sent to the local domain.
const N: usize = 5;

/// A switch for `local.test` (Maildir) that relays for loopback clients to a smarthost nobody
/// listens on, with its metrics on `metrics_port`.
fn config(port: u16, metrics_port: u16) -> String {
    let nowhere = free_port();
    format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["local.test"]
local_channel = "local"
trusted_networks = ["127.0.0.0/8"]
smarthost = "127.0.0.1:{nowhere}"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
tls = "none"

[metrics]
address = "127.0.0.1:{metrics_port}"
"#
    )
}

/// An HTTP GET with curl: the status code, the response head and the body.
fn curl(url: &str) -> (u16, String, String) {
    let out = match Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", url])
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("curl is not installed: apt-get install curl")
        }
        Err(e) => panic!("cannot run curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("a UTF-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of the response head: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    (status, head.to_owned(), body.to_owned())
}

/// One scrape of the endpoint, parsed.
fn scrape(port: u16) -> Scrape {
    let (status, head, body) = curl(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(status, 200, "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        })
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type:?}"
    );
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("the text format parses")
}

/// The samples of `metric` whose labels include every one of `labels`.
fn samples<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .collect()
}

/// The value of the one sample of `metric` with `labels` (0 when there is none).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(s, metric, labels);
    assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
    match found.first().map(|x| &x.value) {
        None => 0.0,
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{metric}: not a single value: {other:?}"),
    }
}

fn delivered(s: &Scrape) -> f64 {
    value(
        s,
        "mswitch_deliveries_total",
        &[("channel", "local"), ("status", "delivered")],
    )
}

/// Scrapes until `done` holds (30 s at most) and returns that scrape.
fn scrape_until(port: u16, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    let found = wait_until(Duration::from_secs(30), || {
        let s = scrape(port);
        if done(&s) {
            return Some(s);
        }
        last = Some(s);
        None
    });
    found.unwrap_or_else(|| {
        panic!(
            "{what} in 30 s; last scrape: {:#?}",
            last.map(|s| s.samples)
        )
    })
}

#[test]
fn the_endpoint_counts_what_went_through() {
    let (port, metrics_port) = (free_port(), free_port());
    let daemon = Daemon::start(&config(port, metrics_port), &[port, metrics_port]);

    // Before any mail: the families are there, the counters at zero.
    let s = scrape(metrics_port);
    for family in [
        "mswitch_messages_received_total",
        "mswitch_deliveries_total",
        "mswitch_delivery_seconds",
        "mswitch_messages_queued",
        "mswitch_queue_syncs_total",
        "mswitch_queue_writes_total",
        "mswitch_queue_disk_bytes",
    ] {
        assert!(s.docs.contains_key(family), "# HELP of {family}");
    }
    assert_eq!(
        value(&s, "mswitch_messages_received_total", &[("listener", "mx")]),
        0.0
    );
    assert_eq!(value(&s, "mswitch_messages_queued", &[]), 0.0);

    // N messages to the local domain, in one session.
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    let s = scrape(metrics_port);
    assert_eq!(
        value(&s, "mswitch_connections_active", &[("listener", "mx")]),
        1.0,
        "the open session"
    );
    for i in 0..N {
        c.expect("MAIL FROM:<someone@client.test>", 250);
        c.expect("RCPT TO:<bob@local.test>", 250);
        let reply = c.data(&message(
            "someone@client.test",
            "bob@local.test",
            &format!("metrics {i}"),
        ));
        assert_eq!(reply.0, 250, "{}", reply.1);
    }
    c.expect("QUIT", 221);
    drop(c);

    let s = scrape_until(metrics_port, "every message delivered and removed", |s| {
        delivered(s) >= N as f64
            && value(s, "mswitch_messages_queued", &[]) == 0.0
            && value(s, "mswitch_connections_active", &[("listener", "mx")]) == 0.0
    });
    let n = N as f64;
    assert_eq!(
        value(&s, "mswitch_messages_received_total", &[("listener", "mx")]),
        n
    );
    assert_eq!(delivered(&s), n);
    for status in ["sent", "deferred", "bounced", "expanded"] {
        assert_eq!(
            value(
                &s,
                "mswitch_deliveries_total",
                &[("channel", "local"), ("status", status)]
            ),
            0.0,
            "{status}"
        );
    }
    // The histogram: N observations, cumulative buckets ending at +Inf with N.
    assert_eq!(value(&s, "mswitch_delivery_seconds_count", &[]), n);
    assert!(value(&s, "mswitch_delivery_seconds_sum", &[]) >= 0.0);
    let histogram = samples(&s, "mswitch_delivery_seconds", &[]);
    let Some(Value::Histogram(buckets)) = histogram.first().map(|x| &x.value) else {
        panic!("mswitch_delivery_seconds is not a histogram: {histogram:?}");
    };
    assert_eq!(buckets.len(), 16, "15 bounds and +Inf");
    let mut bounds: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(bounds.first().map(|b| b.0), Some(0.01));
    assert_eq!(bounds.last(), Some(&(f64::INFINITY, n)));
    assert!(
        bounds.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {bounds:?}"
    );
    // The queue is empty; it wrote and synced for every message.
    assert!(samples(&s, "mswitch_queue_recipients", &[]).is_empty());
    assert!(value(&s, "mswitch_queue_syncs_total", &[]) >= n);
    assert!(
        value(&s, "mswitch_queue_writes_total", &[]) >= value(&s, "mswitch_queue_syncs_total", &[])
    );
    assert!(value(&s, "mswitch_queue_disk_bytes", &[]) > 0.0);
    assert_eq!(daemon.maildir_messages("bob", "local.test").len(), N);

    // One message for a smarthost that does not answer: deferred, and still queued.
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<someone@client.test>", 250);
    c.expect("RCPT TO:<far@remote.example>", 250);
    let reply = c.data(&message(
        "someone@client.test",
        "far@remote.example",
        "metrics remote",
    ));
    assert_eq!(reply.0, 250, "{}", reply.1);
    c.expect("QUIT", 221);
    let s = scrape_until(metrics_port, "the remote recipient deferred", |s| {
        value(
            s,
            "mswitch_deliveries_total",
            &[("channel", "out"), ("status", "deferred")],
        ) >= 1.0
    });
    assert_eq!(value(&s, "mswitch_messages_queued", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "mswitch_queue_recipients",
            &[("channel", "out"), ("priority", "normal")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "mswitch_messages_received_total", &[("listener", "mx")]),
        n + 1.0
    );
    assert_eq!(
        value(&s, "mswitch_delivery_seconds_count", &[]),
        n,
        "not delivered"
    );

    // Other paths are not found.
    let (status, head, _) = curl(&format!("http://127.0.0.1:{metrics_port}/"));
    assert_eq!(status, 404, "{head}");
}
