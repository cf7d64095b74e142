//! mswitch-smtp: SMTP, submission and LMTP server and client engines as sans-IO state
//! machines, STARTTLS (rustls) and SASL, and the SMTP/LMTP channels (tokio, behind a feature).
//!
//! Not implemented yet: this crate is a placeholder in the workspace until the SMTP engines land.
#![forbid(unsafe_code)]
