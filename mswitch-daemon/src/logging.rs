//! The log writer: every record is one line, whatever the clients sent.
//!
//! Most fields that carry a client's text are quoted and escaped by the formatter (`?`
//! fields, JSON strings), and the SMTP parsers refuse control characters in commands. But a
//! field written with `%` (an address, a reply text) is written as it is, and some characters
//! are not controls to Rust or JSON yet break a line in a terminal, an editor or a log shipper:
//! NEL (U+0085) and the other C1 controls, LINE SEPARATOR (U+2028), PARAGRAPH SEPARATOR
//! (U+2029). [`EscapingWriter`] rewrites each of those, and every C0 control and DEL, as
//! `\u{XXXX}` (text) or `\uXXXX` (JSON, where that is the string escape), except the newline
//! that ends the record. So no client can forge or split a log line.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Whether `c` must not appear raw in a log line.
fn must_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Escapes one formatted record (see the module documentation). `json`: use the JSON string
/// escape, which is valid inside the JSON strings these characters can only appear in.
pub fn escape_record(record: &str, json: bool) -> String {
    let (body, end) = match record.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (record, ""),
    };
    if !body.chars().any(must_escape) {
        return record.to_owned();
    }
    let mut out = String::with_capacity(record.len() + 16);
    for c in body.chars() {
        if must_escape(c) {
            let n = u32::from(c);
            if json {
                out.push_str(&format!("\\u{n:04x}"));
            } else {
                out.push_str(&format!("\\u{{{n:04x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out.push_str(end);
    out
}

/// A writer that escapes each record before it reaches `inner` (standard error).
#[derive(Debug, Clone, Copy)]
pub struct EscapingWriter {
    json: bool,
}

impl EscapingWriter {
    /// For the text format, or for JSON.
    pub fn new(json: bool) -> Self {
        EscapingWriter { json }
    }
}

/// One record's writer: the formatter writes a whole record in one `write_all`.
#[derive(Debug)]
pub struct RecordWriter {
    json: bool,
    buf: Vec<u8>,
}

impl Write for RecordWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let record = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        let mut err = io::stderr().lock();
        err.write_all(escape_record(&record, self.json).as_bytes())?;
        err.flush()
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for EscapingWriter {
    type Writer = RecordWriter;

    fn make_writer(&'a self) -> RecordWriter {
        RecordWriter {
            json: self.json,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaking_characters_are_escaped_and_the_record_end_kept() {
        let r = "INFO received from=<a\u{2028}b@x> to=<c\u{85}d@y> e=\"f\rg\" h\u{1b}[2J\n";
        assert_eq!(
            escape_record(r, false),
            "INFO received from=<a\\u{2028}b@x> to=<c\\u{0085}d@y> e=\"f\\u{000d}g\" h\\u{001b}[2J\n"
        );
        let j = "{\"from\":\"<a\u{2028}b@x>\",\"x\":\"\u{7f}\"}\n";
        let escaped = escape_record(j, true);
        assert_eq!(escaped, "{\"from\":\"<a\\u2028b@x>\",\"x\":\"\\u007f\"}\n");
        // Still JSON, with the same value.
        let v: serde_json::Value = serde_json::from_str(&escaped).expect("JSON");
        assert_eq!(v["from"], "<a\u{2028}b@x>");
    }

    #[test]
    fn ordinary_records_are_untouched() {
        let r = "2026-01-01T00:00:00Z INFO x=\"ü €\" y=1\n";
        assert_eq!(escape_record(r, false), r);
        // A line break inside a record is escaped; only the last one ends it.
        assert_eq!(escape_record("a\nb\n", false), "a\\u{000a}b\n");
    }
}
