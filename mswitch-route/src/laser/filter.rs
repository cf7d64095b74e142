//! RFC 4515 search filters: escaping of assertion values and the filter template into which
//! the address is put.
//!
//! Every value that comes from a message (an address, a local part, a domain) reaches the
//! directory only through [`escape_value`], so no address can change the shape of the filter:
//! `"a*"@example.com` looks for the literal `a*@example.com`, never for every mail that starts
//! with `a`.

use std::fmt;

use mswitch_core::address::Mailbox;

/// Escapes `value` for use as an assertion value in an RFC 4515 filter.
///
/// RFC 4515 §3 requires `*` `(` `)` `\` and NUL to be written as `\2a` `\28` `\29` `\5c` `\00`.
/// This function also escapes the other ASCII control characters (so a filter never carries a
/// raw control character into a log line) and every byte of a non-ASCII character (so the
/// filter is plain ASCII); both are valid `valueencoding` and match the same values. Everything
/// else is copied as it is.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_ascii() && !c.is_ascii_control() && !matches!(c, '*' | '(' | ')' | '\\') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('\\');
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0x0f));
            }
        }
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0x0f)])
}

/// Why a filter template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterTemplateError {
    /// The template has no placeholder, so every address would find the same entries.
    #[error(
        "filter template {0:?} has no placeholder ({{}}, {{address}}, {{local}} or {{domain}})"
    )]
    NoPlaceholder(String),
    /// A `{...}` that is not one of the known placeholders, or a lone `{` or `}`.
    #[error("filter template {template:?}: unknown placeholder or lone brace at offset {offset}")]
    BadPlaceholder {
        /// The template.
        template: String,
        /// Byte offset of the brace.
        offset: usize,
    },
    /// The template is not one parenthesized filter (unbalanced parentheses, or text outside
    /// the outer pair).
    #[error("filter template {0:?} is not one parenthesized filter")]
    Unbalanced(String),
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The whole address in its RFC 5321 form, domain in lower-case A-labels.
    Address,
    /// The local part, unquoted.
    Local,
    /// The domain, lower-case A-labels.
    Domain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Field),
}

/// A search filter with placeholders for the address being routed.
///
/// Placeholders: `{}` or `{address}` (the address in its RFC 5321 form, `local@domain`, the
/// local part quoted when it must be and the domain in lower-case A-labels, as IA5String
/// attributes such as `mail` hold it), `{local}` (the local part, unquoted) and `{domain}`.
/// `{{` and `}}` stand for literal braces. Each value is escaped with [`escape_value`] when the
/// filter is built.
///
/// The default, [`FilterTemplate::DEFAULT`], is `(|(mail={})(mailLocalAddress={}))`: the
/// primary address of an `inetOrgPerson` or any of the addresses of an
/// `inetLocalMailRecipient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl FilterTemplate {
    /// The default template.
    pub const DEFAULT: &'static str = "(|(mail={})(mailLocalAddress={}))";

    /// Parses a template: at least one placeholder, and one balanced parenthesized filter.
    pub fn new(template: &str) -> Result<Self, FilterTemplateError> {
        let bad = |offset| FilterTemplateError::BadPlaceholder {
            template: template.to_owned(),
            offset,
        };
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['{', '}']) {
            let offset = template.len() - rest.len() + i;
            text.push_str(&rest[..i]);
            let tail = &rest[i..];
            let (piece, len) = if tail.starts_with("{{") || tail.starts_with("}}") {
                (None, 2)
            } else if tail.starts_with('}') {
                return Err(bad(offset));
            } else {
                let end = tail.find('}').ok_or_else(|| bad(offset))?;
                let field = match &tail[1..end] {
                    "" | "address" => Field::Address,
                    "local" => Field::Local,
                    "domain" => Field::Domain,
                    _ => return Err(bad(offset)),
                };
                (Some(field), end + 1)
            };
            match piece {
                None => text.push_str(&tail[..1]),
                Some(field) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Value(field));
                }
            }
            rest = &tail[len..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Value(_))) {
            return Err(FilterTemplateError::NoPlaceholder(template.to_owned()));
        }
        // One parenthesized filter: the depth returns to zero only at the very end. Escaped
        // parentheses are written `\28` `\29` in a filter, so every literal one counts.
        let literal: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Value(_) => "x",
            })
            .collect();
        let literal = literal.trim();
        let mut depth = 0usize;
        for (i, c) in literal.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| FilterTemplateError::Unbalanced(template.to_owned()))?;
                    if depth == 0 && i + 1 != literal.len() {
                        return Err(FilterTemplateError::Unbalanced(template.to_owned()));
                    }
                }
                _ if depth == 0 => {
                    return Err(FilterTemplateError::Unbalanced(template.to_owned()));
                }
                _ => {}
            }
        }
        if depth != 0 || literal.is_empty() {
            return Err(FilterTemplateError::Unbalanced(template.to_owned()));
        }
        Ok(FilterTemplate {
            source: template.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The filter for `mailbox`, every value escaped; `None` if a value contains NUL (which a
    /// [`Mailbox`] never does): slapd 2.5 ends an IA5String assertion value at an escaped NUL,
    /// so `(mail=alice@example.com\00xyz)` finds alice, and no escaping can prevent that.
    pub fn build(&self, mailbox: &Mailbox) -> Option<String> {
        self.render(
            &lookup_key(mailbox),
            mailbox.local_part().as_str(),
            &domain_key(mailbox),
        )
    }

    fn render(&self, address: &str, local: &str, domain: &str) -> Option<String> {
        if [address, local, domain].iter().any(|v| v.contains('\0')) {
            return None;
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Value(Field::Address) => out.push_str(&escape_value(address)),
                Piece::Value(Field::Local) => out.push_str(&escape_value(local)),
                Piece::Value(Field::Domain) => out.push_str(&escape_value(domain)),
            }
        }
        Some(out)
    }
}

impl Default for FilterTemplate {
    fn default() -> Self {
        FilterTemplate {
            source: Self::DEFAULT.to_owned(),
            pieces: vec![
                Piece::Text("(|(mail=".to_owned()),
                Piece::Value(Field::Address),
                Piece::Text(")(mailLocalAddress=".to_owned()),
                Piece::Value(Field::Address),
                Piece::Text("))".to_owned()),
            ],
        }
    }
}

impl fmt::Display for FilterTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The domain of `mailbox` as the directory holds it: lower-case A-labels; an address
/// literal as written, brackets included.
fn domain_key(mailbox: &Mailbox) -> String {
    match mailbox.domain() {
        Some(d) => d.to_ascii().to_owned(),
        None => mailbox.domain_part().to_string(),
    }
}

/// The address as it is looked up (and cached): `local@domain`, the local part in its
/// RFC 5321 form (quoted when it must be), the domain in lower-case A-labels.
pub(crate) fn lookup_key(mailbox: &Mailbox) -> String {
    format!("{}@{}", mailbox.local_part(), domain_key(mailbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(s: &str) -> Mailbox {
        match Mailbox::parse(s) {
            Ok(m) => m,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn build(t: &FilterTemplate, m: &Mailbox) -> String {
        t.build(m).expect("no NUL in a mailbox")
    }

    #[test]
    fn values_with_nul_are_never_searched() {
        let t = FilterTemplate::default();
        assert_eq!(
            t.render("alice@example.com\0x", "alice", "example.com"),
            None
        );
        assert_eq!(t.render("a@b", "a\0", "b"), None);
        assert_eq!(t.render("a@b", "a", "b\0"), None);
        assert_eq!(
            t.render("a@b", "a", "b").as_deref(),
            Some("(|(mail=a@b)(mailLocalAddress=a@b))")
        );
    }

    #[test]
    fn rfc4515_specials_are_escaped() {
        // RFC 4515 §3: the five characters that must be escaped.
        assert_eq!(escape_value("*"), "\\2a");
        assert_eq!(escape_value("("), "\\28");
        assert_eq!(escape_value(")"), "\\29");
        assert_eq!(escape_value("\\"), "\\5c");
        assert_eq!(escape_value("\0"), "\\00");
        // RFC 4515 §4 examples: (o=Parens R Us \28for all your parenthetical needs\29),
        // (cn=*\2A*), (filename=C:\5cMyFile).
        assert_eq!(
            escape_value("Parens R Us (for all your parenthetical needs)"),
            "Parens R Us \\28for all your parenthetical needs\\29"
        );
        assert_eq!(escape_value("C:\\MyFile"), "C:\\5cMyFile");
        assert_eq!(escape_value("a*)(uid=*"), "a\\2a\\29\\28uid=\\2a");
        assert_eq!(escape_value("alice@example.com"), "alice@example.com");
        assert_eq!(escape_value(""), "");
    }

    #[test]
    fn controls_and_non_ascii_are_escaped_bytewise() {
        assert_eq!(escape_value("a\r\nb\x7f"), "a\\0d\\0ab\\7f");
        // RFC 4515 §4: (sn=Lu\c4\8di\c4\87) for "Lučić".
        assert_eq!(escape_value("Lučić"), "Lu\\c4\\8di\\c4\\87");
    }

    #[test]
    fn escaped_output_never_contains_a_special() {
        let all: String = (0u8..=127)
            .map(char::from)
            .chain(['é', '€', '😀'])
            .collect();
        let e = escape_value(&all);
        assert!(e.is_ascii());
        assert!(!e.contains(['*', '(', ')', '\0']));
        // Every backslash starts a two-digit hex escape.
        let bytes = e.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\\' {
                assert!(bytes.len() > i + 2, "{e}");
                assert!(bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit());
            }
        }
    }

    #[test]
    fn default_template_builds_the_expected_filter() {
        let t = FilterTemplate::default();
        assert_eq!(
            t,
            FilterTemplate::new(FilterTemplate::DEFAULT).expect("default parses")
        );
        assert_eq!(
            build(&t, &mailbox("alice@Example.COM")),
            "(|(mail=alice@example.com)(mailLocalAddress=alice@example.com))"
        );
    }

    #[test]
    fn quoted_local_parts_cannot_change_the_filter() {
        let t = FilterTemplate::default();
        assert_eq!(
            build(&t, &mailbox("\"a*\"@example.com")),
            "(|(mail=a\\2a@example.com)(mailLocalAddress=a\\2a@example.com))"
        );
        assert_eq!(
            build(&t, &mailbox("a*@example.com")),
            "(|(mail=a\\2a@example.com)(mailLocalAddress=a\\2a@example.com))"
        );
        // The local part `x)(mail=*` needs quoting; the quotes are part of the value.
        assert_eq!(
            build(&t, &mailbox("\"x)(mail=*\"@example.com")),
            "(|(mail=\"x\\29\\28mail=\\2a\"@example.com)\
             (mailLocalAddress=\"x\\29\\28mail=\\2a\"@example.com))"
        );
        // A quoted backslash: RFC 5321 form `"a\\b"`, each backslash escaped.
        assert_eq!(
            build(&t, &mailbox("\"a\\\\b\"@example.com")),
            "(|(mail=\"a\\5c\\5cb\"@example.com)(mailLocalAddress=\"a\\5c\\5cb\"@example.com))"
        );
    }

    #[test]
    fn local_and_domain_placeholders() {
        let t =
            FilterTemplate::new("(&(uid={local})(associatedDomain={domain}))").expect("template");
        assert_eq!(
            build(&t, &mailbox("\"a(b\"@Bücher.Example")),
            "(&(uid=a\\28b)(associatedDomain=xn--bcher-kva.example))"
        );
        let t = FilterTemplate::new("(mail={address})").expect("template");
        assert_eq!(
            build(&t, &mailbox("bob@example.com")),
            "(mail=bob@example.com)"
        );
        let t = FilterTemplate::new("(&(mail={})(description={{x}}))").expect("template");
        assert_eq!(
            build(&t, &mailbox("bob@example.com")),
            "(&(mail=bob@example.com)(description={x}))"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(
            FilterTemplate::new("(objectClass=*)"),
            Err(FilterTemplateError::NoPlaceholder("(objectClass=*)".into()))
        );
        assert!(matches!(
            FilterTemplate::new("(mail={user})"),
            Err(FilterTemplateError::BadPlaceholder { offset: 6, .. })
        ));
        assert!(matches!(
            FilterTemplate::new("(mail={)"),
            Err(FilterTemplateError::BadPlaceholder { offset: 6, .. })
        ));
        assert!(matches!(
            FilterTemplate::new("(mail=})"),
            Err(FilterTemplateError::BadPlaceholder { offset: 6, .. })
        ));
        for t in [
            "(mail={}",
            "mail={}",
            "(mail={}))",
            "(mail={})(uid={})",
            ")(mail={})(",
            "",
        ] {
            assert_eq!(
                FilterTemplate::new(t),
                Err(if t.is_empty() {
                    FilterTemplateError::NoPlaceholder(String::new())
                } else {
                    FilterTemplateError::Unbalanced(t.into())
                }),
                "{t}"
            );
        }
        assert!(FilterTemplate::new("  (mail={})  ").is_ok());
    }
}
