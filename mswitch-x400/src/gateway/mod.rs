//! The RFC 2156 (MIXER) gateway between X.400 and Internet mail: pure mappings, no I/O.
//!
//! - [`address`]: RFC 822 mailboxes ⇄ X.400 O/R addresses (RFC 2156 chapter 4), driven by
//!   the domain ⇄ O/R prefix rule table of [`address::MixerTables`];
//! - [`convert`]: messages both ways (IPM ⇄ RFC 5322/MIME, envelopes);
//! - [`reports`]: X.400 reports ⇄ RFC 3464 DSNs;
//! - `channel` (feature `tokio`): the gateway as a processing channel.

pub mod address;
pub mod convert;
pub mod reports;

#[cfg(feature = "tokio")]
pub mod channel;
