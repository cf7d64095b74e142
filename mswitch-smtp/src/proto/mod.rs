//! SMTP wire formats.

pub mod command;
pub mod reply;
