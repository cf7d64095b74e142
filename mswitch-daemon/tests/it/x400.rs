//! X.400 P1 between two mswitchd instances on loopback, checked on the wire by tshark.
//!
//! Each instance is an MTA of its own domain (PRMD-A, PRMD-B) with a local X.400 store for
//! `O=Ex` in its domain and a P1 route to the other. The test itself plays a third MTA
//! (`test-mta`, known to both) that hands messages and probes in over P1.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mswitch_core::address::ORAddress;
use mswitch_core::id::Timestamp;
use mswitch_testkit::tshark::Capture;
use mswitch_testkit::{free_port, wait_until};
use mswitch_x400::driver::{P1Client, P1DriverError};
use mswitch_x400::mta::MtaIdentity;
use mswitch_x400::mts::{
    ContentType, Message, MessageTransferEnvelope, MtsApdu, MtsIdentifier, ORName,
    PerRecipientMessageTransferFields, Probe, ProbeTransferEnvelope, ReportType,
    TraceInformationElement, non_delivery_diagnostic, non_delivery_reason,
};
use mswitch_x400::p1::{AssociationConfig, BindCredentials};

use crate::common::Daemon;

const A_ORIG: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Orig/";
const A_SMITH: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Smith/G=Jane/";
const B_JONES: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Jones/";
const B_ORIG: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Other/";
const B_GHOST: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Nowhere/S=Ghost/";

/// The configuration of instance `me` (`a` or `b`) listening for P1 on `port`, with its peer
/// MTA at `peer_port` (which may be a proxy in front of it).
fn config(me: char, port: u16, peer_port: u16) -> String {
    let (mine, theirs) = if me == 'a' { ('A', 'B') } else { ('B', 'A') };
    let (me_l, them_l) = (mine.to_ascii_lowercase(), theirs.to_ascii_lowercase());
    format!(
        r#"[server]
hostname = "{me_l}.x400.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[x400]
mta_name = "mta-{me_l}"
country = "GB"
admd = " "
prmd = "PRMD-{mine}"
password = "secret-{me_l}"
listen = "127.0.0.1:{port}"
idle_timeout = "30s"

[[x400.peer]]
name = "mta-{them_l}"
address = "127.0.0.1:{peer_port}"
password = "secret-{them_l}"

[[x400.peer]]
name = "test-mta"
address = "127.0.0.1:9"
password = "secret-t"

[[channel]]
name = "p1"
type = "p1"

[[channel]]
name = "x400-local"
type = "x400-store"
path = "x400"

[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/"
action = "refuse"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Ex/"
action = "local"
channel = "x400-local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{theirs}/"
channel = "p1"
mta = "mta-{them_l}"
"#
    )
}

fn or(text: &str) -> ORAddress {
    text.parse().expect("std-or address")
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

fn test_mta() -> MtaIdentity {
    MtaIdentity::new("test-mta", "GB", " ", Some("PRMD-T"))
}

fn trace() -> Vec<TraceInformationElement> {
    let t = test_mta();
    let time = mswitch_x400::mts::UtcTime::from_timestamp(now()).expect("time");
    vec![TraceInformationElement {
        global_domain: t.global_domain,
        domain_supplied: mswitch_x400::mts::DomainSuppliedInformation {
            arrival_time: time,
            routing_action: mswitch_x400::mts::RoutingAction::Relayed,
            attempted_domain: None,
            deferred_time: None,
            converted_eits: None,
            other_actions: None,
        },
    }]
}

fn recipients(to: &[&str]) -> Vec<PerRecipientMessageTransferFields> {
    to.iter()
        .enumerate()
        .map(|(i, r)| PerRecipientMessageTransferFields::new(ORName::from(or(r)), i as i64 + 1))
        .collect()
}

pub(crate) fn message(id: &str, from: &str, to: &[&str], content: &[u8]) -> Vec<u8> {
    MtsApdu::Message(Message {
        envelope: MessageTransferEnvelope {
            message_identifier: MtsIdentifier::new(test_mta().global_domain, id),
            originator_name: ORName::from(or(from)),
            original_eits: None,
            content_type: ContentType::BuiltIn(22),
            content_identifier: None,
            priority: None,
            per_message_indicators: None,
            deferred_delivery_time: None,
            per_domain_bilateral_information: None,
            trace_information: trace(),
            extensions: Vec::new(),
            per_recipient_fields: recipients(to),
            unknown: Vec::new(),
        },
        content: content.to_vec(),
    })
    .encode()
    .expect("encode the message")
}

/// A P1 message whose content is an IPM with `subject` and one IA5 text body part.
pub(crate) fn ipm_message(id: &str, from: &str, to: &[&str], subject: &str, text: &str) -> Vec<u8> {
    use mswitch_x400::ipm::{
        BodyPart, Heading, InformationObject, Ipm, IpmIdentifier, ORDescriptor, RecipientSpecifier,
    };
    let mut heading = Heading::new(IpmIdentifier::new(None, format!("ipm-{id}")));
    heading.originator = Some(ORDescriptor::formal(ORName::from(or(from))));
    heading.primary_recipients = to
        .iter()
        .map(|r| RecipientSpecifier::new(ORDescriptor::formal(ORName::from(or(r)))))
        .collect();
    heading.set_subject(subject).expect("subject");
    let content = InformationObject::Ipm(Ipm::new(heading, vec![BodyPart::ia5_text(text)]))
        .encode()
        .expect("encode the IPM");
    message(id, from, to, &content)
}

fn probe(id: &str, from: &str, to: &[&str]) -> Vec<u8> {
    MtsApdu::Probe(Probe {
        envelope: ProbeTransferEnvelope {
            probe_identifier: MtsIdentifier::new(test_mta().global_domain, id),
            originator_name: ORName::from(or(from)),
            original_eits: None,
            content_type: ContentType::BuiltIn(22),
            content_identifier: None,
            content_length: Some(2000),
            per_message_indicators: None,
            per_domain_bilateral_information: None,
            trace_information: trace(),
            extensions: Vec::new(),
            per_recipient_fields: recipients(to),
            unknown: Vec::new(),
        },
    })
    .encode()
    .expect("encode the probe")
}

/// Binds to `port` as test-mta with `password` and transfers each APDU.
pub(crate) fn transfer(port: u16, password: &str, apdus: &[Vec<u8>]) -> Result<(), P1DriverError> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut c = P1Client::connect(
            SocketAddr::from(([127, 0, 0, 1], port)),
            AssociationConfig::default(),
            BindCredentials {
                mta_name: Some("test-mta".into()),
                password: Some(password.as_bytes().to_vec()),
            },
            Duration::from_secs(10),
        )
        .await?;
        for a in apdus {
            c.transfer(a).await?;
        }
        c.release().await
    })
}

/// The files delivered to `address` in the X.400 store of `daemon`.
fn delivered(daemon: &Daemon, address: &str) -> Vec<PathBuf> {
    let dir = mswitch_daemon::x400store::mailbox(&daemon.dir().join("x400"), &or(address));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn wait_for(daemon: &Daemon, address: &str, count: usize) -> Vec<PathBuf> {
    let got = wait_until(Duration::from_secs(30), || {
        let f = delivered(daemon, address);
        (f.len() >= count).then_some(f)
    });
    match got {
        Some(f) => f,
        None => panic!(
            "{address} did not get {count} deliveries; log:\n{}",
            daemon.log()
        ),
    }
}

fn decode(path: &Path) -> MtsApdu {
    MtsApdu::decode(&std::fs::read(path).expect("read the delivery")).expect("an MTS-APDU")
}

#[test]
fn two_switches_exchange_messages_probes_and_reports_over_p1() {
    let (pa, pb) = (free_port(), free_port());
    let a = Daemon::start(&config('a', pa, pb), &[pa]);
    let b = Daemon::start(&config('b', pb, pa), &[pb]);
    // Started once both listen: the harness's readiness probes are no part of the check.
    let mut capture = Capture::start(&[pa, pb]);

    // A wrong password is refused at bind time.
    let refused = transfer(pa, "wrong", &[]);
    assert!(
        matches!(
            refused,
            Err(P1DriverError::BindRefused {
                transient: false,
                ..
            })
        ),
        "{refused:?}"
    );

    // A → B: one known recipient, one that B refuses.
    let body = b"an IPM travels unchanged".repeat(40);
    transfer(
        pa,
        "secret-t",
        &[message("msg-ab-1", A_ORIG, &[B_JONES, B_GHOST], &body)],
    )
    .expect("transfer into A");
    let jones = wait_for(&b, B_JONES, 1);
    let MtsApdu::Message(m) = decode(&jones[0]) else {
        panic!("not a message");
    };
    assert_eq!(m.content, body);
    assert_eq!(m.envelope.message_identifier.local_identifier, "msg-ab-1");
    assert_eq!(m.envelope.originator_name.address, or(A_ORIG));
    // Trace: the test MTA's domain, then A's, then B's.
    let domains: Vec<_> = m
        .envelope
        .trace_information
        .iter()
        .map(|t| t.global_domain.prmd.clone().unwrap_or_default())
        .collect();
    assert_eq!(domains, ["PRMD-T", "PRMD-A", "PRMD-B"]);
    let internal: Vec<_> = m
        .envelope
        .internal_trace()
        .expect("internal trace")
        .into_iter()
        .map(|t| t.mta_name)
        .collect();
    assert_eq!(internal, ["mta-a", "mta-b"]);

    // The refused recipient comes back to A's originator as a non-delivery report.
    let reports = wait_for(&a, A_ORIG, 1);
    let MtsApdu::Report(ndr) = decode(&reports[0]) else {
        panic!("not a report");
    };
    assert_eq!(ndr.content.subject_identifier.local_identifier, "msg-ab-1");
    assert_eq!(ndr.content.per_recipient_fields.len(), 1);
    let f = &ndr.content.per_recipient_fields[0];
    assert_eq!(f.actual_recipient_name.address, or(B_GHOST));
    assert_eq!(
        f.last_trace_information.report_type,
        ReportType::NonDelivery {
            reason_code: non_delivery_reason::UNABLE_TO_TRANSFER,
            diagnostic_code: Some(non_delivery_diagnostic::UNRECOGNISED_OR_NAME),
        }
    );

    // B → A.
    transfer(
        pb,
        "secret-t",
        &[message("msg-ba-1", B_ORIG, &[A_SMITH], b"the other way")],
    )
    .expect("transfer into B");
    let smith = wait_for(&a, A_SMITH, 1);
    let MtsApdu::Message(m) = decode(&smith[0]) else {
        panic!("not a message");
    };
    assert_eq!(m.content, b"the other way");

    // A probe through A to B is answered with a delivery report, and never delivered.
    transfer(pa, "secret-t", &[probe("probe-1", A_ORIG, &[B_JONES])]).expect("probe");
    let reports = wait_for(&a, A_ORIG, 2);
    let dr = reports
        .iter()
        .map(|p| decode(p))
        .find_map(|apdu| match apdu {
            MtsApdu::Report(r) if r.content.subject_identifier.local_identifier == "probe-1" => {
                Some(r)
            }
            _ => None,
        })
        .expect("a report on the probe");
    assert!(matches!(
        dr.content.per_recipient_fields[0]
            .last_trace_information
            .report_type,
        ReportType::Delivery { .. }
    ));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        delivered(&b, B_JONES).len(),
        1,
        "a probe is never delivered"
    );

    // And the other way: a probe through B to A, whose report travels A → B.
    transfer(pb, "secret-t", &[probe("probe-2", B_ORIG, &[A_SMITH])]).expect("probe");
    let reports = wait_for(&b, B_ORIG, 1);
    let MtsApdu::Report(dr) = decode(&reports[0]) else {
        panic!("not a report");
    };
    assert_eq!(dr.content.subject_identifier.local_identifier, "probe-2");
    assert_eq!(
        delivered(&a, A_SMITH).len(),
        1,
        "a probe is never delivered"
    );

    // MSWITCH_KEEP_CAPTURE=DIR keeps the capture and the delivered MTS-APDUs (fuzz seeds).
    if let Ok(dir) = std::env::var("MSWITCH_KEEP_CAPTURE") {
        let dir = Path::new(&dir);
        let _ = std::fs::copy(capture.stop(), dir.join("p1.pcap"));
        let all = [A_ORIG, A_SMITH]
            .iter()
            .flat_map(|r| delivered(&a, r))
            .chain([B_JONES, B_ORIG].iter().flat_map(|r| delivered(&b, r)));
        for (i, f) in all.enumerate() {
            let _ = std::fs::copy(f, dir.join(format!("apdu-{i}.ber")));
        }
    }
    // tshark decodes every frame without a warning, and the P1 fields are what was sent.
    drop(a);
    drop(b);
    let problems = capture.problems();
    assert!(
        problems.trim().is_empty(),
        "tshark found problems:\n{problems}"
    );
    // The envelope of msg-ab-1 as tshark decodes it on the A → B hop (the transfer that
    // carries A's trace): identifier, originator, both recipients, content type, trace.
    let hop = capture.tshark(&[
        "-Y",
        "p1.local_identifier == \"msg-ab-1\" && p1.mta_name == \"mta-a\"",
        "-V",
    ]);
    for line in [
        "message-identifier (/C=GB/A= /P=PRMD-T/ $ msg-ab-1)",
        "originator-name (/C=GB/A= /P=PRMD-A/O=Ex/S=Orig/)",
        "recipient-name (/C=GB/A= /P=PRMD-B/O=Ex/S=Jones/)",
        "recipient-name (/C=GB/A= /P=PRMD-B/O=Nowhere/S=Ghost/)",
        "built-in: interpersonal-messaging-1988 (22)",
        "TraceInformationElement (/C=GB/A= /P=PRMD-T/ relayed)",
        "TraceInformationElement (/C=GB/A= /P=PRMD-A/ relayed)",
        "InternalTraceInformationElement (/C=GB/A= /P=PRMD-A/ mta-a relayed)",
    ] {
        assert!(
            hop.contains(line),
            "tshark did not decode {line:?} on the A → B hop:\n{hop}"
        );
    }
    // The other transfers: B → A, the probe and the reports.
    let fields = capture.tshark(&["-Y", "p1", "-T", "fields", "-e", "p1.local_identifier"]);
    for id in ["msg-ab-1", "msg-ba-1", "probe-1", "probe-2"] {
        assert!(fields.contains(id), "{id} not decoded by tshark:\n{fields}");
    }
    let summary = capture.tshark(&["-Y", "p1"]);
    for line in [
        "Bind-Argument mta-a simple",
        "Bind-Result mta-b simple",
        "Bind-Argument mta-b simple",
        "Bind-Result mta-a simple",
        "Bind-Error (authentication-error)",
        "non-delivery report",
        "Transfer delivery report",
    ] {
        assert!(
            summary.contains(line),
            "tshark did not show {line:?}:\n{summary}"
        );
    }
}

/// A TCP proxy that cuts the first connection after `cut_after` bytes from the client.
fn cutting_proxy(listen: u16, target: u16, cut_after: usize) -> Arc<AtomicBool> {
    let cut = Arc::new(AtomicBool::new(false));
    let done = cut.clone();
    let listener = TcpListener::bind(("127.0.0.1", listen)).expect("bind the proxy");
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let limit = if n == 0 { Some(cut_after) } else { None };
            let done = done.clone();
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || pipe(s2, c2, None, None));
            std::thread::spawn(move || pipe(client, server, limit, Some(done)));
        }
    });
    cut
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<usize>,
    done: Option<Arc<AtomicBool>>,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 4096];
    let mut sent = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(l) if sent + n >= l => {
                let _ = to.write_all(&buf[..l - sent]);
                if let Some(d) = &done {
                    d.store(true, Ordering::SeqCst);
                }
                break;
            }
            _ => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_transfer_cut_off_mid_activity_is_retried_and_delivered_once() {
    let (pa, pb, proxy) = (free_port(), free_port(), free_port());
    // A reaches B through the proxy, which cuts A's first association in the middle of the
    // message's activity (after the bind, well inside the 200 kB of content).
    let cut = cutting_proxy(proxy, pb, 60_000);
    let a = Daemon::start(&config('a', pa, proxy), &[pa]);
    let b = Daemon::start(&config('b', pb, pa), &[pb]);
    let body = vec![b'x'; 200_000];
    transfer(
        pa,
        "secret-t",
        &[message("msg-cut-1", A_ORIG, &[B_JONES], &body)],
    )
    .expect("transfer into A");
    let jones = wait_for(&b, B_JONES, 1);
    assert!(
        cut.load(Ordering::SeqCst),
        "the proxy did not cut the first association"
    );
    let MtsApdu::Message(m) = decode(&jones[0]) else {
        panic!("not a message");
    };
    assert_eq!(m.content, body);
    // Delivered once: nothing more arrives, and A's queue is empty.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(delivered(&b, B_JONES).len(), 1, "{}", b.log());
    assert!(
        a.log().contains("P1 transfer failed") || a.log().contains("interrupted"),
        "the cut was not seen as a failed transfer:\n{}",
        a.log()
    );
}

#[test]
fn an_unreachable_mta_falls_back_to_the_routes_alternate() {
    let (pa, pb, dead) = (free_port(), free_port(), free_port());
    // A's route to PRMD-B names an MTA nobody listens for, with mta-b as its alternate.
    let a_config = config('a', pa, pb)
        .replace(
            "mta = \"mta-b\"",
            "mta = \"mta-down\"\nalternates = [\"mta-b\"]",
        )
        .replace(
            "[[x400.peer]]\nname = \"test-mta\"",
            &format!(
                "[[x400.peer]]\nname = \"mta-down\"\naddress = \"127.0.0.1:{dead}\"\n\n\
                 [[x400.peer]]\nname = \"test-mta\""
            ),
        );
    let a = Daemon::start(&a_config, &[pa]);
    let b = Daemon::start(&config('b', pb, pa), &[pb]);
    transfer(
        pa,
        "secret-t",
        &[message(
            "msg-alt-1",
            A_ORIG,
            &[B_JONES],
            b"by the alternate",
        )],
    )
    .expect("transfer into A");
    let jones = wait_for(&b, B_JONES, 1);
    let MtsApdu::Message(m) = decode(&jones[0]) else {
        panic!("not a message");
    };
    assert_eq!(m.envelope.message_identifier.local_identifier, "msg-alt-1");
    assert!(
        a.log().contains("trying the next alternate MTA"),
        "no fall-back in A's log:\n{}",
        a.log()
    );
}

#[test]
fn two_way_alternate_carries_both_directions_on_one_association() {
    let (pa, pb) = (free_port(), free_port());
    let twa = |c: String, peer: &str| {
        c.replace(
            &format!("name = \"{peer}\"\n"),
            &format!("name = \"{peer}\"\ndialogue_mode = \"twa\"\n"),
        )
    };
    let a = Daemon::start(&twa(config('a', pa, pb), "mta-b"), &[pa]);
    let b = Daemon::start(&twa(config('b', pb, pa), "mta-a"), &[pb]);
    let mut capture = Capture::start(&[pa, pb]);
    // A opens the association to B for this message.
    transfer(
        pa,
        "secret-t",
        &[message("msg-twa-1", A_ORIG, &[B_JONES], b"A to B")],
    )
    .expect("transfer into A");
    wait_for(&b, B_JONES, 1);
    // B's message to A goes back on the association A opened: B asks for the turn.
    transfer(
        pb,
        "secret-t",
        &[message("msg-twa-2", B_ORIG, &[A_SMITH], b"B to A")],
    )
    .expect("transfer into B");
    let smith = wait_for(&a, A_SMITH, 1);
    let MtsApdu::Message(m) = decode(&smith[0]) else {
        panic!("not a message");
    };
    assert_eq!(m.content, b"B to A");
    // Connections to A's listener: the test's only. B never opened one.
    let syns = capture.tshark(&[
        "-Y",
        &format!("tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == {pa}"),
    ]);
    assert_eq!(syns.lines().count(), 1, "connections to A:\n{syns}");
    // The turn passed: RTTP in a Please Tokens SPDU, then Give Tokens Confirm / Ack.
    let session = capture.tshark(&["-Y", "ses", "-V"]);
    for line in [
        "Please tokens PDU",
        "rttp-apdu: 0",
        "GIVE TOKENS CONFIRM (GTC)",
        "GIVE TOKENS ACK (GTA)",
    ] {
        assert!(session.contains(line), "tshark did not show {line:?}");
    }
    let problems = capture.problems();
    assert!(
        problems.trim().is_empty(),
        "tshark found problems:\n{problems}"
    );
    drop(a);
    drop(b);
}

/// The directory tree of A's routes to PRMD-B (`[directory] x400_trees = ["dir"]`): the
/// route to B is there only.
const DIRECTORY_TREE: &str = "\
dn: ou=x400-routing,dc=example,dc=com
objectClass: organizationalUnit
ou: x400-routing

dn: cn=dir,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: dir

dn: cn=C=GB,cn=dir,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: C=GB

dn: cn=ADMD=$\\ ,cn=C=GB,cn=dir,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: ADMD=$ 

dn: cn=PRMD=PRMD-B,cn=ADMD=$\\ ,cn=C=GB,cn=dir,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: PRMD=PRMD-B
description: channel=p1
description: mta=mta-b

";

const PRMD_B_DN: &str =
    "cn=PRMD=PRMD-B,cn=ADMD=$\\ ,cn=C=GB,cn=dir,ou=x400-routing,dc=example,dc=com";

/// X.400 routing trees read from the directory by mswitchd: A's only route to PRMD-B is in
/// slapd, and a message for B goes over P1 to B; the entry changed with ldapmodify to
/// `action=refuse` is applied at the next poll (the next message is not delivered: A's
/// originator gets a non-delivery report); an entry whose MTA is no `[[x400.peer]]` is
/// refused with its DN and the routes in force stay.
#[test]
fn routing_trees_from_the_directory_are_polled_and_applied() {
    let (pa, pb, ldap_port) = (free_port(), free_port(), free_port());
    let ldif = format!(
        "{}{DIRECTORY_TREE}",
        mswitch_testkit::slapd::Slapd::BASE_LDIF
    );
    let slapd = mswitch_testkit::slapd::Slapd::start(ldap_port, &ldif);
    let file_route = "[[x400_tree.route]]\nmatch = \"/C=GB/ADMD= /PRMD=PRMD-B/\"\nchannel = \"p1\"\nmta = \"mta-b\"\n";
    let a_config = config('a', pa, pb);
    assert!(a_config.contains(file_route));
    let a_config = format!(
        r#"{}
[directory]
url = "ldap://127.0.0.1:{ldap_port}/"
base = "dc=example,dc=com"
poll = "1s"
domain_filter = ""
alias_filter = ""
list_filter = ""
x400_routing_base = "ou=x400-routing,dc=example,dc=com"
x400_trees = ["dir"]
"#,
        a_config.replace(file_route, "")
    );
    let a = Daemon::start(&a_config, &[pa]);
    let b = Daemon::start(&config('b', pb, pa), &[pb]);
    assert!(
        a.log()
            .contains("X.400 routing trees read from the directory"),
        "{}",
        a.log()
    );
    let jones = |id: &str| message(id, A_ORIG, &[B_JONES], id.as_bytes());
    transfer(pa, "secret-t", &[jones("msg-dir-1")]).expect("transfer into A");
    let got = wait_for(&b, B_JONES, 1);
    let MtsApdu::Message(m) = decode(&got[0]) else {
        panic!("not a message");
    };
    assert_eq!(m.envelope.message_identifier.local_identifier, "msg-dir-1");

    // The route becomes a refusal in the directory.
    slapd.ldapmodify(&format!(
        "dn: {PRMD_B_DN}\nchangetype: modify\nreplace: description\ndescription: action=refuse\n"
    ));
    assert!(
        a.wait_for_log(
            &["X.400 routing trees in the directory changed"],
            1,
            Duration::from_secs(15)
        ),
        "{}",
        a.log()
    );
    assert!(a.wait_for_log(&["configuration reloaded"], 1, Duration::from_secs(5)));
    transfer(pa, "secret-t", &[jones("msg-dir-2")]).expect("transfer into A");
    let reports = wait_for(&a, A_ORIG, 1);
    let MtsApdu::Report(ndr) = decode(&reports[0]) else {
        panic!("not a report");
    };
    assert_eq!(ndr.content.subject_identifier.local_identifier, "msg-dir-2");
    let f = &ndr.content.per_recipient_fields[0];
    assert_eq!(f.actual_recipient_name.address, or(B_JONES));
    assert!(
        matches!(
            f.last_trace_information.report_type,
            ReportType::NonDelivery {
                reason_code: non_delivery_reason::UNABLE_TO_TRANSFER,
                ..
            }
        ),
        "{:?}",
        f.last_trace_information.report_type
    );

    // A route to an MTA that is no peer: refused with the entry's DN, the refusal stays.
    slapd.ldapmodify(&format!(
        "dn: {PRMD_B_DN}\nchangetype: modify\nreplace: description\n\
         description: channel=p1\ndescription: mta=mta-nobody\n"
    ));
    assert!(
        a.wait_for_log(
            &[
                "X.400 routing trees from the directory not applied",
                "mta: no [[x400.peer]] is named",
                "PRMD-B,cn=ADMD",
            ],
            1,
            Duration::from_secs(15)
        ),
        "{}",
        a.log()
    );
    transfer(pa, "secret-t", &[jones("msg-dir-3")]).expect("transfer into A");
    let reports = wait_for(&a, A_ORIG, 2);
    assert_eq!(reports.len(), 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(delivered(&b, B_JONES).len(), 1, "{}", b.log());
    let log = a.log();
    assert_eq!(
        log.matches("configuration reloaded").count(),
        1,
        "the bad entry was not applied"
    );
    assert_eq!(
        log.matches("X.400 routing trees from the directory not applied")
            .count(),
        1,
        "the same bad entry is reported once, not at every poll"
    );
}
