//! The objects served: the applTable row of the switch (NETWORK-SERVICES-MIB, RFC 2788,
//! `mib-2.27`), its mtaTable row and its mtaGroupTable rows (MTA-MIB, RFC 2789, `mib-2.28`),
//! all under `applIndex` [`APPL_INDEX`].
//!
//! The daemon fills a [`Snapshot`] with plain numbers; [`MibView::new`] turns it into the
//! sorted list of object instances that Get, GetNext and GetBulk are answered from. No I/O.
//!
//! Columns a figure is not kept for are left out, not served as 0: a Get of them answers
//! `noSuchInstance` (RFC 2789 asks exactly that of group columns a group does not use), and a
//! GetNext skips them. Which columns are served is listed in `docs/config.md` (`[snmp]`).

use std::time::Duration;

use super::pdu::{Oid, Value};

/// The `applIndex` of the switch in applTable, mtaTable and mtaGroupTable.
pub const APPL_INDEX: u32 = 1;

/// `application` (RFC 2788): `mib-2.27`.
pub const APPLICATION: [u32; 7] = [1, 3, 6, 1, 2, 1, 27];
/// `applEntry`: `application.1.1`.
pub const APPL_ENTRY: [u32; 9] = [1, 3, 6, 1, 2, 1, 27, 1, 1];
/// `applTCPProtoID` (RFC 2788): `application.4`; `{applTCPProtoID port}` names a TCP protocol.
pub const APPL_TCP_PROTO_ID: [u32; 8] = [1, 3, 6, 1, 2, 1, 27, 4];
/// `mta` (RFC 2789): `mib-2.28`.
pub const MTA: [u32; 7] = [1, 3, 6, 1, 2, 1, 28];
/// `mtaEntry`: `mta.1.1`.
pub const MTA_ENTRY: [u32; 9] = [1, 3, 6, 1, 2, 1, 28, 1, 1];
/// `mtaGroupEntry`: `mta.2.1`.
pub const MTA_GROUP_ENTRY: [u32; 9] = [1, 3, 6, 1, 2, 1, 28, 2, 1];

/// applEntry columns (RFC 2788).
pub mod appl {
    /// `applName`.
    pub const NAME: u32 = 2;
    /// `applDirectoryName`.
    pub const DIRECTORY_NAME: u32 = 3;
    /// `applVersion`.
    pub const VERSION: u32 = 4;
    /// `applUptime`.
    pub const UPTIME: u32 = 5;
    /// `applOperStatus`.
    pub const OPER_STATUS: u32 = 6;
    /// `applLastChange`.
    pub const LAST_CHANGE: u32 = 7;
    /// `applInboundAssociations`.
    pub const INBOUND_ASSOCIATIONS: u32 = 8;
    /// `applOutboundAssociations`.
    pub const OUTBOUND_ASSOCIATIONS: u32 = 9;
    /// `applAccumulatedInboundAssociations`.
    pub const ACCUMULATED_INBOUND_ASSOCIATIONS: u32 = 10;
    /// `applFailedOutboundAssociations`.
    pub const FAILED_OUTBOUND_ASSOCIATIONS: u32 = 15;
    /// `applDescription`.
    pub const DESCRIPTION: u32 = 16;
    /// The last column (`applURL`).
    pub const LAST: u32 = 17;
    /// `applOperStatus` `up(1)`.
    pub const UP: i32 = 1;
}

/// mtaEntry columns (RFC 2789).
pub mod mta {
    /// `mtaReceivedMessages`.
    pub const RECEIVED_MESSAGES: u32 = 1;
    /// `mtaStoredMessages`.
    pub const STORED_MESSAGES: u32 = 2;
    /// `mtaTransmittedMessages`.
    pub const TRANSMITTED_MESSAGES: u32 = 3;
    /// `mtaReceivedVolume`.
    pub const RECEIVED_VOLUME: u32 = 4;
    /// `mtaStoredVolume`.
    pub const STORED_VOLUME: u32 = 5;
    /// `mtaTransmittedVolume`.
    pub const TRANSMITTED_VOLUME: u32 = 6;
    /// `mtaReceivedRecipients`.
    pub const RECEIVED_RECIPIENTS: u32 = 7;
    /// `mtaStoredRecipients`.
    pub const STORED_RECIPIENTS: u32 = 8;
    /// `mtaTransmittedRecipients`.
    pub const TRANSMITTED_RECIPIENTS: u32 = 9;
    /// The last column (`mtaLoopsDetected`).
    pub const LAST: u32 = 12;
}

/// mtaGroupEntry columns (RFC 2789).
pub mod group {
    /// `mtaGroupReceivedMessages`.
    pub const RECEIVED_MESSAGES: u32 = 2;
    /// `mtaGroupStoredMessages`.
    pub const STORED_MESSAGES: u32 = 4;
    /// `mtaGroupTransmittedMessages`.
    pub const TRANSMITTED_MESSAGES: u32 = 5;
    /// `mtaGroupReceivedVolume`.
    pub const RECEIVED_VOLUME: u32 = 6;
    /// `mtaGroupStoredVolume`.
    pub const STORED_VOLUME: u32 = 7;
    /// `mtaGroupTransmittedVolume`.
    pub const TRANSMITTED_VOLUME: u32 = 8;
    /// `mtaGroupReceivedRecipients`.
    pub const RECEIVED_RECIPIENTS: u32 = 9;
    /// `mtaGroupStoredRecipients`.
    pub const STORED_RECIPIENTS: u32 = 10;
    /// `mtaGroupTransmittedRecipients`.
    pub const TRANSMITTED_RECIPIENTS: u32 = 11;
    /// `mtaGroupOldestMessageStored`.
    pub const OLDEST_MESSAGE_STORED: u32 = 12;
    /// `mtaGroupInboundAssociations`.
    pub const INBOUND_ASSOCIATIONS: u32 = 13;
    /// `mtaGroupOutboundAssociations`.
    pub const OUTBOUND_ASSOCIATIONS: u32 = 14;
    /// `mtaGroupAccumulatedInboundAssociations`.
    pub const ACCUMULATED_INBOUND_ASSOCIATIONS: u32 = 15;
    /// `mtaGroupFailedOutboundAssociations`.
    pub const FAILED_OUTBOUND_ASSOCIATIONS: u32 = 20;
    /// `mtaGroupMailProtocol`.
    pub const MAIL_PROTOCOL: u32 = 24;
    /// `mtaGroupName`.
    pub const NAME: u32 = 25;
    /// `mtaGroupDescription`.
    pub const DESCRIPTION: u32 = 28;
    /// `mtaGroupHierarchy`.
    pub const HIERARCHY: u32 = 31;
    /// The last column (`mtaGroupLastOutboundAssociationAttempt`).
    pub const LAST: u32 = 34;
}

/// `mtaGroupHierarchy` of the listener groups: the breakdown of reception (RFC 2789: groups
/// with the same negative value are one breakdown of the MTA's activity).
pub const HIERARCHY_RECEPTION: i32 = -1;
/// `mtaGroupHierarchy` of the channel groups: the breakdown of storage and transmission.
pub const HIERARCHY_TRANSMISSION: i32 = -2;

/// The applTable row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Application {
    /// `applName`.
    pub name: String,
    /// `applVersion`.
    pub version: String,
    /// `applDescription`.
    pub description: String,
    /// How long ago the switch started: `applUptime` and `applLastChange` are the master's
    /// sysUpTime at that moment (0 if it was before the master started).
    pub running_for: Duration,
    /// `applInboundAssociations`: SMTP connections open now.
    pub inbound_associations: u64,
    /// `applOutboundAssociations`: outbound connections in use now.
    pub outbound_associations: u64,
    /// `applAccumulatedInboundAssociations`: SMTP connections admitted since start.
    pub accumulated_inbound_associations: u64,
    /// `applFailedOutboundAssociations`: outbound connections that could not be made.
    pub failed_outbound_associations: u64,
}

/// The mtaTable row: counters since the switch started, and what the queue holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtaFigures {
    /// Messages received.
    pub received_messages: u64,
    /// Octets of the messages received.
    pub received_octets: u64,
    /// Recipients of the messages received.
    pub received_recipients: u64,
    /// Messages in the queue.
    pub stored_messages: u64,
    /// Octets of the messages in the queue.
    pub stored_octets: u64,
    /// Recipients not yet final in the queue.
    pub stored_recipients: u64,
    /// Messages transmitted (deliveries that reached at least one recipient).
    pub transmitted_messages: u64,
    /// Octets of the messages transmitted.
    pub transmitted_octets: u64,
    /// Recipients transmitted (delivered, or taken over by a peer).
    pub transmitted_recipients: u64,
}

/// One mtaGroupTable row. `None` leaves the column out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// `mtaGroupIndex`: fixed once given, until the switch restarts.
    pub index: u32,
    /// `mtaGroupName`.
    pub name: String,
    /// `mtaGroupDescription`.
    pub description: String,
    /// `mtaGroupHierarchy`.
    pub hierarchy: i32,
    /// `mtaGroupMailProtocol` as `{applTCPProtoID port}`.
    pub tcp_port: Option<u16>,
    /// `mtaGroupReceivedMessages`.
    pub received_messages: Option<u64>,
    /// `mtaGroupReceivedVolume`, in octets.
    pub received_octets: Option<u64>,
    /// `mtaGroupReceivedRecipients`.
    pub received_recipients: Option<u64>,
    /// `mtaGroupStoredMessages`.
    pub stored_messages: Option<u64>,
    /// `mtaGroupStoredVolume`, in octets.
    pub stored_octets: Option<u64>,
    /// `mtaGroupStoredRecipients`.
    pub stored_recipients: Option<u64>,
    /// `mtaGroupOldestMessageStored`.
    pub oldest_message_stored: Option<Duration>,
    /// `mtaGroupTransmittedMessages`.
    pub transmitted_messages: Option<u64>,
    /// `mtaGroupTransmittedVolume`, in octets.
    pub transmitted_octets: Option<u64>,
    /// `mtaGroupTransmittedRecipients`.
    pub transmitted_recipients: Option<u64>,
    /// `mtaGroupInboundAssociations`.
    pub inbound_associations: Option<u64>,
    /// `mtaGroupAccumulatedInboundAssociations`.
    pub accumulated_inbound_associations: Option<u64>,
    /// `mtaGroupOutboundAssociations`.
    pub outbound_associations: Option<u64>,
    /// `mtaGroupFailedOutboundAssociations`.
    pub failed_outbound_associations: Option<u64>,
}

/// Everything served, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The applTable row.
    pub application: Application,
    /// The mtaTable row.
    pub mta: MtaFigures,
    /// The mtaGroupTable rows, any order.
    pub groups: Vec<Group>,
}

/// A `Counter32`: the count modulo 2^32 (RFC 2578 §7.1.6: it wraps).
fn counter(n: u64) -> Value {
    Value::Counter32(n as u32)
}

/// A `Gauge32`: latched at its maximum (RFC 2578 §7.1.7).
fn gauge(n: u64) -> Value {
    Value::Gauge32(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Kilo-octets (the unit of the MTA-MIB volumes), rounded up so that any traffic shows.
fn kilo(octets: u64) -> u64 {
    octets.div_ceil(1024)
}

/// A duration in hundredths of a second, as `TimeInterval` (an INTEGER 0..2147483647).
fn interval(d: Duration) -> Value {
    Value::Integer(i32::try_from(d.as_millis() / 10).unwrap_or(i32::MAX))
}

fn text(s: &str) -> Value {
    Value::OctetString(s.as_bytes().to_vec())
}

/// The object instances of a [`Snapshot`], sorted, with the columns they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MibView {
    objects: Vec<(Oid, Value)>,
    columns: Vec<Oid>,
}

impl MibView {
    /// The instances of `snapshot`. `master_uptime` is the master agent's sysUpTime now (from
    /// the session), for `applUptime` and `applLastChange`; without it they are left out.
    pub fn new(snapshot: &Snapshot, master_uptime: Option<u32>) -> MibView {
        let mut v = MibView::default();
        let a = &snapshot.application;
        let appl = |c: u32| Oid::from(APPL_ENTRY).child(&[c, APPL_INDEX]);
        v.add(appl(appl::NAME), text(&a.name));
        // No directory entry describes the switch: RFC 2788 gives the empty string for that.
        v.add(appl(appl::DIRECTORY_NAME), text(""));
        v.add(appl(appl::VERSION), text(&a.version));
        if let Some(now) = master_uptime {
            let ago = u32::try_from(a.running_for.as_millis() / 10).unwrap_or(u32::MAX);
            let started = Value::TimeTicks(now.saturating_sub(ago));
            v.add(appl(appl::UPTIME), started.clone());
            v.add(appl(appl::LAST_CHANGE), started);
        }
        v.add(appl(appl::OPER_STATUS), Value::Integer(appl::UP));
        v.add(
            appl(appl::INBOUND_ASSOCIATIONS),
            gauge(a.inbound_associations),
        );
        v.add(
            appl(appl::OUTBOUND_ASSOCIATIONS),
            gauge(a.outbound_associations),
        );
        v.add(
            appl(appl::ACCUMULATED_INBOUND_ASSOCIATIONS),
            counter(a.accumulated_inbound_associations),
        );
        v.add(
            appl(appl::FAILED_OUTBOUND_ASSOCIATIONS),
            counter(a.failed_outbound_associations),
        );
        v.add(appl(appl::DESCRIPTION), text(&a.description));

        let m = &snapshot.mta;
        let row = |c: u32| Oid::from(MTA_ENTRY).child(&[c, APPL_INDEX]);
        v.add(row(mta::RECEIVED_MESSAGES), counter(m.received_messages));
        v.add(row(mta::STORED_MESSAGES), gauge(m.stored_messages));
        v.add(
            row(mta::TRANSMITTED_MESSAGES),
            counter(m.transmitted_messages),
        );
        v.add(row(mta::RECEIVED_VOLUME), counter(kilo(m.received_octets)));
        v.add(row(mta::STORED_VOLUME), gauge(kilo(m.stored_octets)));
        v.add(
            row(mta::TRANSMITTED_VOLUME),
            counter(kilo(m.transmitted_octets)),
        );
        v.add(
            row(mta::RECEIVED_RECIPIENTS),
            counter(m.received_recipients),
        );
        v.add(row(mta::STORED_RECIPIENTS), gauge(m.stored_recipients));
        v.add(
            row(mta::TRANSMITTED_RECIPIENTS),
            counter(m.transmitted_recipients),
        );

        for g in &snapshot.groups {
            let cell = |c: u32| Oid::from(MTA_GROUP_ENTRY).child(&[c, APPL_INDEX, g.index]);
            let mut opt = |c: u32, value: Option<Value>| {
                if let Some(value) = value {
                    v.add(cell(c), value);
                }
            };
            use group::*;
            opt(RECEIVED_MESSAGES, g.received_messages.map(counter));
            opt(STORED_MESSAGES, g.stored_messages.map(gauge));
            opt(TRANSMITTED_MESSAGES, g.transmitted_messages.map(counter));
            opt(RECEIVED_VOLUME, g.received_octets.map(|o| counter(kilo(o))));
            opt(STORED_VOLUME, g.stored_octets.map(|o| gauge(kilo(o))));
            opt(
                TRANSMITTED_VOLUME,
                g.transmitted_octets.map(|o| counter(kilo(o))),
            );
            opt(RECEIVED_RECIPIENTS, g.received_recipients.map(counter));
            opt(STORED_RECIPIENTS, g.stored_recipients.map(gauge));
            opt(
                TRANSMITTED_RECIPIENTS,
                g.transmitted_recipients.map(counter),
            );
            opt(OLDEST_MESSAGE_STORED, g.oldest_message_stored.map(interval));
            opt(INBOUND_ASSOCIATIONS, g.inbound_associations.map(gauge));
            opt(OUTBOUND_ASSOCIATIONS, g.outbound_associations.map(gauge));
            opt(
                ACCUMULATED_INBOUND_ASSOCIATIONS,
                g.accumulated_inbound_associations.map(counter),
            );
            opt(
                FAILED_OUTBOUND_ASSOCIATIONS,
                g.failed_outbound_associations.map(counter),
            );
            opt(
                MAIL_PROTOCOL,
                g.tcp_port.map(|p| {
                    Value::ObjectIdentifier(Oid::from(APPL_TCP_PROTO_ID).child(&[u32::from(p)]))
                }),
            );
            opt(NAME, Some(text(&g.name)));
            opt(DESCRIPTION, Some(text(&g.description)));
            opt(HIERARCHY, Some(Value::Integer(g.hierarchy)));
        }
        v.objects.sort_by(|a, b| a.0.cmp(&b.0));
        // Two groups with one index would make two instances of one name: keep the first.
        v.objects.dedup_by(|b, a| a.0 == b.0);
        // Every column of the three entries is an object type of ours, served or not.
        for (entry, last) in [
            (APPL_ENTRY, appl::LAST),
            (MTA_ENTRY, mta::LAST),
            (MTA_GROUP_ENTRY, group::LAST),
        ] {
            for c in 1..=last {
                v.columns.push(Oid::from(entry).child(&[c]));
            }
        }
        v
    }

    fn add(&mut self, name: Oid, value: Value) {
        self.objects.push((name, value));
    }

    /// Every instance, in order.
    pub fn objects(&self) -> &[(Oid, Value)] {
        &self.objects
    }

    /// The value of `name` for a Get: its value, `noSuchInstance` under one of the columns,
    /// `noSuchObject` elsewhere.
    pub fn get(&self, name: &Oid) -> Value {
        match self.objects.binary_search_by(|(o, _)| o.cmp(name)) {
            Ok(i) => self.objects[i].1.clone(),
            Err(_) if self.columns.iter().any(|c| name.starts_with(c)) => Value::NoSuchInstance,
            Err(_) => Value::NoSuchObject,
        }
    }

    /// The first instance after `start` (or at it, when `include`) and before `end` (the null
    /// OID: no bound), for a GetNext.
    pub fn next(&self, start: &Oid, include: bool, end: &Oid) -> Option<&(Oid, Value)> {
        let i = self
            .objects
            .partition_point(|(o, _)| if include { o < start } else { o <= start });
        self.objects
            .get(i)
            .filter(|(o, _)| end.is_null() || o < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        s.parse().expect("a dotted OID")
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            application: Application {
                name: "mswitchd".into(),
                version: "0.1.0".into(),
                description: "mswitch".into(),
                running_for: Duration::from_secs(10),
                inbound_associations: 2,
                outbound_associations: 1,
                accumulated_inbound_associations: 7,
                failed_outbound_associations: 4,
            },
            mta: MtaFigures {
                received_messages: 3,
                received_octets: 1025,
                received_recipients: 4,
                stored_messages: 1,
                stored_octets: 0,
                stored_recipients: 1,
                transmitted_messages: (1 << 32) + 2,
                transmitted_octets: 2048,
                transmitted_recipients: 3,
            },
            groups: vec![
                Group {
                    index: 2,
                    name: "out".into(),
                    hierarchy: HIERARCHY_TRANSMISSION,
                    stored_messages: Some(u64::MAX),
                    oldest_message_stored: Some(Duration::from_millis(1234)),
                    ..Group::default()
                },
                Group {
                    index: 1,
                    name: "mx".into(),
                    hierarchy: HIERARCHY_RECEPTION,
                    tcp_port: Some(25),
                    received_messages: Some(3),
                    ..Group::default()
                },
            ],
        }
    }

    fn listing(v: &MibView) -> Vec<String> {
        v.objects()
            .iter()
            .map(|(o, val)| format!("{o} {val:?}"))
            .collect()
    }

    #[test]
    fn the_instances_are_sorted_and_converted() {
        let v = MibView::new(&snapshot(), Some(5000));
        let all = listing(&v);
        let mut sorted = v.objects().to_vec();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(v.objects(), &sorted[..]);
        for line in [
            "1.3.6.1.2.1.27.1.1.2.1 OctetString([109, 115, 119, 105, 116, 99, 104, 100])",
            "1.3.6.1.2.1.27.1.1.3.1 OctetString([])",
            // Started 10 s (1000 ticks) before the master's 5000.
            "1.3.6.1.2.1.27.1.1.5.1 TimeTicks(4000)",
            "1.3.6.1.2.1.27.1.1.6.1 Integer(1)",
            "1.3.6.1.2.1.27.1.1.7.1 TimeTicks(4000)",
            "1.3.6.1.2.1.27.1.1.8.1 Gauge32(2)",
            "1.3.6.1.2.1.27.1.1.9.1 Gauge32(1)",
            "1.3.6.1.2.1.27.1.1.10.1 Counter32(7)",
            "1.3.6.1.2.1.27.1.1.15.1 Counter32(4)",
            "1.3.6.1.2.1.28.1.1.1.1 Counter32(3)",
            "1.3.6.1.2.1.28.1.1.3.1 Counter32(2)",
            "1.3.6.1.2.1.28.1.1.4.1 Counter32(2)",
            "1.3.6.1.2.1.28.1.1.5.1 Gauge32(0)",
            "1.3.6.1.2.1.28.1.1.6.1 Counter32(2)",
            "1.3.6.1.2.1.28.2.1.2.1.1 Counter32(3)",
            "1.3.6.1.2.1.28.2.1.4.1.2 Gauge32(4294967295)",
            "1.3.6.1.2.1.28.2.1.12.1.2 Integer(123)",
            "1.3.6.1.2.1.28.2.1.24.1.1 ObjectIdentifier(Oid([1, 3, 6, 1, 2, 1, 27, 4, 25]))",
            "1.3.6.1.2.1.28.2.1.31.1.1 Integer(-1)",
            "1.3.6.1.2.1.28.2.1.31.1.2 Integer(-2)",
        ] {
            assert!(all.iter().any(|l| l == line), "{line} in {all:#?}");
        }
        // Columns a group has no figure for are not there.
        assert!(
            !all.iter()
                .any(|l| l.starts_with("1.3.6.1.2.1.28.2.1.2.1.2 "))
        );
        assert!(
            !all.iter()
                .any(|l| l.starts_with("1.3.6.1.2.1.28.2.1.24.1.2 "))
        );
        // Started before the master: 0; no master time: left out.
        let early = MibView::new(&snapshot(), Some(200));
        assert_eq!(
            early.get(&oid("1.3.6.1.2.1.27.1.1.5.1")),
            Value::TimeTicks(0)
        );
        let none = MibView::new(&snapshot(), None);
        assert_eq!(
            none.get(&oid("1.3.6.1.2.1.27.1.1.5.1")),
            Value::NoSuchInstance
        );
    }

    #[test]
    fn get_tells_missing_instances_from_missing_objects() {
        let v = MibView::new(&snapshot(), Some(0));
        assert_eq!(v.get(&oid("1.3.6.1.2.1.28.1.1.1.1")), Value::Counter32(3));
        for missing_instance in [
            "1.3.6.1.2.1.28.1.1.1.2",
            "1.3.6.1.2.1.28.1.1.12.1",
            "1.3.6.1.2.1.28.2.1.2.1.2",
            "1.3.6.1.2.1.27.1.1.17.1",
        ] {
            assert_eq!(
                v.get(&oid(missing_instance)),
                Value::NoSuchInstance,
                "{missing_instance}"
            );
        }
        for missing_object in [
            "1.3.6.1.2.1.28.1.1.13.1",
            "1.3.6.1.2.1.28.1.1",
            "1.3.6.1.2.1.28.3.1.1.1",
            "1.3.6.1.4.1",
        ] {
            assert_eq!(
                v.get(&oid(missing_object)),
                Value::NoSuchObject,
                "{missing_object}"
            );
        }
    }

    #[test]
    fn next_honours_include_and_end() {
        let v = MibView::new(&snapshot(), Some(0));
        let name = |r: Option<&(Oid, Value)>| r.map(|(o, _)| o.to_string());
        let null = Oid::null();
        assert_eq!(
            name(v.next(&oid("1.3.6.1.2.1.28"), false, &null)),
            Some("1.3.6.1.2.1.28.1.1.1.1".into())
        );
        assert_eq!(
            name(v.next(&oid("1.3.6.1.2.1.28.1.1.1.1"), true, &null)),
            Some("1.3.6.1.2.1.28.1.1.1.1".into())
        );
        assert_eq!(
            name(v.next(&oid("1.3.6.1.2.1.28.1.1.1.1"), false, &null)),
            Some("1.3.6.1.2.1.28.1.1.2.1".into())
        );
        // Skips the columns a group leaves out.
        assert_eq!(
            name(v.next(&oid("1.3.6.1.2.1.28.2.1.2.1.1"), false, &null)),
            Some("1.3.6.1.2.1.28.2.1.4.1.2".into())
        );
        // The end bound is excluded.
        assert_eq!(
            name(v.next(
                &oid("1.3.6.1.2.1.28.1.1.1.1"),
                false,
                &oid("1.3.6.1.2.1.28.1.1.2.1")
            )),
            None
        );
        assert_eq!(
            name(v.next(&oid("1.3.6.1.2.1.28.2.1.31.1.2"), false, &null)),
            None
        );
        assert_eq!(
            name(v.next(&Oid::null(), false, &null)),
            Some("1.3.6.1.2.1.27.1.1.2.1".into())
        );
    }
}
