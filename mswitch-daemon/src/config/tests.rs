use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/data"))
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded(Path::new("/data")).expect("the embedded default must parse");
    assert_eq!(c.hostname, "localhost");
    assert_eq!(c.queue_path, Path::new("/data/queue"));
    let addrs: Vec<String> = c.listeners.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(addrs, vec!["127.0.0.1:2525", "127.0.0.1:2587"]);
    assert_eq!(c.listeners[1].service, ListenerService::Submission);
    assert_eq!(
        c.channels[0].path.as_deref(),
        Some(Path::new("/data/maildir"))
    );
    assert_eq!(c.local_domains[0].to_ascii(), "localhost");
}

#[test]
fn unknown_key_names_its_line() {
    let text = EMBEDDED_DEFAULT.replace(
        "hostname = \"localhost\"",
        "hostname = \"localhost\"\nhostnme = \"x\"",
    );
    let err = parse(&text).expect_err("unknown key");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(msg.contains("hostnme"), "{msg}");
    let line = text
        .lines()
        .position(|l| l.starts_with("hostnme"))
        .map(|i| i + 1)
        .expect("inserted line");
    assert!(msg.contains(&format!("line {line}")), "{msg}");
}

#[test]
fn bad_values_say_what_was_expected() {
    let cases = [
        (
            "\"127.0.0.0/8\"",
            "\"127.0.0.0/40\"",
            "routing.trusted_networks[0]",
        ),
        ("127.0.0.1:2525", "localhost:smtp", "listener[0].address"),
        (
            "local_channel = \"local\"",
            "local_channel = \"nowhere\"",
            "routing.local_channel",
        ),
        (
            "hostname = \"localhost\"",
            "hostname = \"bad host\"",
            "server.hostname",
        ),
        (
            "name = \"submission\"",
            "name = \"smtp\"",
            "listener[1].name",
        ),
    ];
    for (from, to, key) in cases {
        let text = EMBEDDED_DEFAULT.replacen(from, to, 1);
        assert_ne!(text, EMBEDDED_DEFAULT, "test case {from} did not apply");
        match parse(&text) {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{to}: expected an invalid {key}, got {other:?}"),
        }
    }
    let err = parse(&EMBEDDED_DEFAULT.replace("service = \"relay\"", "service = \"relya\""))
        .expect_err("bad enum");
    assert!(err.to_string().contains("relya"), "{err}");
}
