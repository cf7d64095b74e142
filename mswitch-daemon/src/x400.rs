//! The daemon's X.400 assembly: P1 settings from `[x400]`, the routing of O/R addresses
//! through the X.400 routing trees, and X.400 reports in place of RFC 3464 notices for X.400
//! messages.

use std::sync::Arc;

use mswitch_core::address::Address;
use mswitch_core::envelope::Envelope;
use mswitch_core::status::Status;
use mswitch_x400::channel::{P1Settings, PeerMta};
use mswitch_x400::mta::{MtaIdentity, ReportEntry};

use crate::config::{Config, X400Config};

/// The name of the P1 listener's inbound channel (in logs and submissions).
pub const P1_INBOUND: &str = "p1-in";

/// The MTA identity of `[x400]`.
pub fn identity(x: &X400Config) -> MtaIdentity {
    MtaIdentity::new(&x.mta_name, &x.country, &x.admd, x.prmd.as_deref())
}

/// The settings both P1 channels share, if `[x400]` is configured.
pub fn p1_settings(config: &Config) -> Option<Arc<P1Settings>> {
    let x = config.x400.as_ref()?;
    Some(Arc::new(P1Settings {
        identity: identity(x),
        password: x.password.as_ref().map(|p| p.as_bytes().to_vec()),
        tsel: x.tsel.clone(),
        peers: x
            .peers
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    PeerMta {
                        name: p.name.clone(),
                        address: p.address,
                        password: p.password.as_ref().map(|s| s.as_bytes().to_vec()),
                        our_password: p.our_password.as_ref().map(|s| s.as_bytes().to_vec()),
                        tsel: p.tsel.clone(),
                        dialogue_mode: if p.two_way_alternate {
                            mswitch_x400::p1::DialogueMode::TwoWayAlternate
                        } else {
                            mswitch_x400::p1::DialogueMode::Monologue
                        },
                    },
                )
            })
            .collect(),
        require_authentication: x.require_authentication,
        max_apdu: usize::try_from(config.max_message_size.saturating_add(1 << 20))
            .unwrap_or(usize::MAX),
        timeout: x.idle_timeout,
        alternates: alternates(config, x),
    }))
}

/// The routing trees' alternates for the P1 channels: every route of the recipient through a
/// P1 channel, in the order to try (balanced by the key).
fn alternates(config: &Config, x: &X400Config) -> Option<mswitch_x400::channel::Alternates> {
    let routing = Arc::new(x.routing.build().ok()?);
    let p1: Vec<mswitch_core::id::ChannelId> = config
        .channels
        .iter()
        .filter(|c| c.kind == crate::config::ChannelType::P1)
        .map(|c| mswitch_core::id::ChannelId::new(&c.name))
        .collect();
    Some(Arc::new(move |or, key| {
        routing
            .alternates(or, key)
            .into_iter()
            .filter(|r| p1.contains(&r.channel))
            .map(|r| r.next_hop)
            .collect()
    }))
}

/// What an X.400 report needs from a QMGR notice.
pub struct ReportRequest<'a> {
    /// The queued message.
    pub envelope: &'a Envelope,
    /// Its content: the MTS-APDU.
    pub content: &'a [u8],
    /// The recipients reported on: index, delivered or not, and the status.
    pub recipients: Vec<(usize, bool, Status)>,
}

/// Builds the X.400 report for a notice on an X.400 message: `None` when no report is due
/// (no recipient to report, a report on a report) — the envelope and the report MTS-APDU to
/// queue otherwise.
pub fn report(
    x: &X400Config,
    req: &ReportRequest<'_>,
    now: mswitch_core::id::Timestamp,
) -> Result<Option<(Envelope, Vec<u8>)>, String> {
    let me = identity(x);
    let entries: Vec<ReportEntry> = req
        .recipients
        .iter()
        .filter_map(|(i, delivered, status)| {
            let r = req.envelope.recipients.get(*i)?;
            let Address::X400(or) = &r.address else {
                return None;
            };
            Some(if *delivered {
                ReportEntry::delivered(or)
            } else {
                ReportEntry::from_status(&r.address, status)
            })
        })
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    match mswitch_x400::mta::report(req.content, &entries, &me, now) {
        Ok(Some(r)) => Ok(Some((r.envelope, r.apdu))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

// P3 (MTS access).

/// The name of the P3 listener's inbound channel (in logs and submissions).
pub const P3_INBOUND: &str = "p3-in";

/// The settings the P3 listener and the P3 channels share, if `[x400]` is configured.
pub fn p3_settings(config: &Config) -> Option<Arc<mswitch_x400::channel::P3Settings>> {
    use mswitch_x400::channel::{MessageStore, P3Settings, P3User};
    let x = config.x400.as_ref()?;
    let password = x.password.clone().unwrap_or_default();
    Some(Arc::new(P3Settings {
        identity: identity(x),
        password: password.clone(),
        users: x
            .users
            .iter()
            .map(|u| P3User {
                address: u.address.clone(),
                password: u.password.as_bytes().to_vec(),
            })
            .collect(),
        stores: x
            .stores
            .iter()
            .map(|s| MessageStore {
                address_prefix: s.address_prefix.clone(),
                address: s.address,
                password: s.password.clone().unwrap_or_else(|| password.clone()),
            })
            .collect(),
        tsel: x.p3_tsel.clone(),
        max_pdu: usize::try_from(config.max_message_size.saturating_add(1 << 20))
            .unwrap_or(usize::MAX),
        timeout: x.idle_timeout,
    }))
}
