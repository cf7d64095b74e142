//! O/R address patterns: which attributes of the hierarchy a routing-tree node constrains,
//! and how each value is matched.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use mswitch_core::address::{MAX_STD_OR_LENGTH, ORAddress, UB_ORGANIZATIONAL_UNITS};
use thiserror::Error;

/// The quoting character of RFC 2156 std-or text: `$x` is the character `x`, taken literally.
const QUOTE: char = '$';

/// An attribute of the O/R address hierarchy, in the order in which routing descends it
/// (RFC 1801 §8: country, administration domain, private domain, organization,
/// organizational units, then the attributes that name the recipient).
///
/// The derived order is the hierarchy: a constraint on a later attribute is deeper in the
/// routing tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OrAttribute {
    /// `C`, the country.
    Country,
    /// `ADMD`, the administration management domain.
    Admd,
    /// `PRMD`, the private management domain.
    Prmd,
    /// `O`, the organization.
    Organization,
    /// `OU1` … `OU4`, an organizational unit by its position (1 to 4).
    OrganizationalUnit(usize),
    /// `S`, the surname.
    Surname,
    /// `G`, the given name.
    GivenName,
    /// `I`, the initials.
    Initials,
    /// `GQ`, the generation qualifier.
    GenerationQualifier,
    /// `CN`, the common name.
    CommonName,
    /// `UA-ID`, the numeric user identifier.
    NumericUserId,
    /// `T-ID`, the terminal identifier.
    TerminalId,
    /// `X121`, the network address.
    NetworkAddress,
    /// `DD.type`, a domain-defined attribute of this type (kept in upper case: types are
    /// compared without regard to case).
    DomainDefined(String),
}

impl OrAttribute {
    /// How deep in the hierarchy the attribute is: 1 for the country, 16 for a
    /// domain-defined attribute (all of them at the same depth).
    pub fn depth(&self) -> usize {
        match self {
            OrAttribute::Country => 1,
            OrAttribute::Admd => 2,
            OrAttribute::Prmd => 3,
            OrAttribute::Organization => 4,
            OrAttribute::OrganizationalUnit(n) => 4 + n,
            OrAttribute::Surname => 9,
            OrAttribute::GivenName => 10,
            OrAttribute::Initials => 11,
            OrAttribute::GenerationQualifier => 12,
            OrAttribute::CommonName => 13,
            OrAttribute::NumericUserId => 14,
            OrAttribute::TerminalId => 15,
            OrAttribute::NetworkAddress => 16,
            OrAttribute::DomainDefined(_) => 17,
        }
    }

    /// The value of this attribute in `address`, `None` when it is absent.
    pub fn value_in<'a>(&self, address: &'a ORAddress) -> Option<&'a str> {
        let name = address.personal_name.as_ref();
        match self {
            OrAttribute::Country => address.country.as_deref(),
            OrAttribute::Admd => address.admd.as_deref(),
            OrAttribute::Prmd => address.prmd.as_deref(),
            OrAttribute::Organization => address.organization.as_deref(),
            OrAttribute::OrganizationalUnit(n) => n
                .checked_sub(1)
                .and_then(|i| address.organizational_units.get(i))
                .map(String::as_str),
            OrAttribute::Surname => name.map(|n| n.surname.as_str()),
            OrAttribute::GivenName => name.and_then(|n| n.given_name.as_deref()),
            OrAttribute::Initials => name.and_then(|n| n.initials.as_deref()),
            OrAttribute::GenerationQualifier => {
                name.and_then(|n| n.generation_qualifier.as_deref())
            }
            OrAttribute::CommonName => address.common_name.as_deref(),
            OrAttribute::NumericUserId => address.numeric_user_id.as_deref(),
            OrAttribute::TerminalId => address.terminal_id.as_deref(),
            OrAttribute::NetworkAddress => address.network_address.as_deref(),
            OrAttribute::DomainDefined(kind) => address
                .domain_defined
                .iter()
                .find(|dd| dd.kind.trim().eq_ignore_ascii_case(kind))
                .map(|dd| dd.value.as_str()),
        }
    }

    /// Whether values compare as NumericString (spaces ignored) rather than
    /// PrintableString.
    fn is_numeric(&self) -> bool {
        matches!(
            self,
            OrAttribute::NumericUserId | OrAttribute::NetworkAddress
        )
    }
}

impl fmt::Display for OrAttribute {
    /// The RFC 2156 keyword: `C`, `ADMD`, `PRMD`, `O`, `OU1`…`OU4`, `S`, `G`, `I`, `GQ`,
    /// `CN`, `UA-ID`, `T-ID`, `X121`, `DD.type`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrAttribute::Country => f.write_str("C"),
            OrAttribute::Admd => f.write_str("ADMD"),
            OrAttribute::Prmd => f.write_str("PRMD"),
            OrAttribute::Organization => f.write_str("O"),
            OrAttribute::OrganizationalUnit(n) => write!(f, "OU{n}"),
            OrAttribute::Surname => f.write_str("S"),
            OrAttribute::GivenName => f.write_str("G"),
            OrAttribute::Initials => f.write_str("I"),
            OrAttribute::GenerationQualifier => f.write_str("GQ"),
            OrAttribute::CommonName => f.write_str("CN"),
            OrAttribute::NumericUserId => f.write_str("UA-ID"),
            OrAttribute::TerminalId => f.write_str("T-ID"),
            OrAttribute::NetworkAddress => f.write_str("X121"),
            OrAttribute::DomainDefined(kind) => write!(f, "DD.{kind}"),
        }
    }
}

/// One element of a value pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    /// This character (compared without regard to case).
    Literal(char),
    /// `?`: any one character.
    One,
    /// `*`: any run of characters, perhaps none.
    Many,
}

/// How a node matches the value of one attribute.
///
/// Written in a std-or pair (`PRMD=Isode`):
/// - a value: that value, compared as X.400 compares names (case ignored, leading and
///   trailing spaces dropped, runs of inner spaces taken as one; spaces ignored in `UA-ID`
///   and `X121`);
/// - a single space (`ADMD= `, or `ADMD=$ `): the blank ADMD, the X.400 "any ADMD". It is a
///   literal here: it matches an address whose ADMD is blank, not every ADMD (write
///   `ADMD=*` for that);
/// - `*`: the attribute is present, whatever its value;
/// - a glob: `*` any run of characters, `?` any one character (`Smi*`, `*son`, `J?nes`); `$*`
///   and `$?` are a literal `*` and `?`, and `$/`, `$=`, `$;`, `$$` as in std-or text;
/// - nothing (`PRMD=`): the attribute is absent.
#[derive(Debug, Clone, Eq)]
pub struct ValuePattern {
    /// The tokens as written (case kept, for display).
    written: Vec<Token>,
    /// The tokens compared: literals in lower case, spaces normalized.
    normal: Vec<Token>,
}

/// What kind of value pattern this is, from the most specific to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PatternKind {
    /// `*`: any value, but present.
    Any,
    /// A glob with `*` or `?`.
    Glob,
    /// An exact value.
    Exact,
    /// The attribute must be absent.
    Absent,
}

impl ValuePattern {
    /// A pattern that matches exactly this value (no wildcards).
    pub fn exact(value: &str, numeric: bool) -> Self {
        Self::from_tokens(value.chars().map(Token::Literal).collect(), numeric)
    }

    fn from_tokens(written: Vec<Token>, numeric: bool) -> Self {
        let normal = normalize_tokens(&written, numeric);
        ValuePattern { written, normal }
    }

    /// What kind of pattern this is.
    pub fn kind(&self) -> PatternKind {
        if self.written.is_empty() {
            PatternKind::Absent
        } else if self.written == [Token::Many] {
            PatternKind::Any
        } else if self.written.iter().any(|t| !matches!(t, Token::Literal(_))) {
            PatternKind::Glob
        } else {
            PatternKind::Exact
        }
    }

    /// How many literal characters the pattern holds (the more, the more specific a glob).
    fn literals(&self) -> usize {
        self.normal
            .iter()
            .filter(|t| matches!(t, Token::Literal(_)))
            .count()
    }

    /// Whether `value` (`None`: the attribute is absent) matches.
    pub fn matches(&self, value: Option<&str>, numeric: bool) -> bool {
        match (self.kind(), value) {
            (PatternKind::Absent, v) => v.is_none(),
            (_, None) => false,
            (_, Some(value)) => {
                let value = normalize_value(value, numeric);
                glob_match(&self.normal, &value)
            }
        }
    }
}

impl PartialEq for ValuePattern {
    /// Patterns are equal when they match the same values.
    fn eq(&self, other: &Self) -> bool {
        self.normal == other.normal && self.written.is_empty() == other.written.is_empty()
    }
}

impl Hash for ValuePattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normal.hash(state);
        self.written.is_empty().hash(state);
    }
}

impl fmt::Display for ValuePattern {
    /// The std-or value: wildcards bare, literal `/ = ; $ * ?` quoted with `$`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in &self.written {
            match token {
                Token::Many => f.write_str("*")?,
                Token::One => f.write_str("?")?,
                Token::Literal(c) => {
                    if matches!(c, '/' | '=' | ';' | '$' | '*' | '?') {
                        write!(f, "{QUOTE}")?;
                    }
                    write!(f, "{c}")?;
                }
            }
        }
        Ok(())
    }
}

/// Lower-case literals; for printable values, runs of spaces become one and leading and
/// trailing spaces go; for numeric values, spaces go.
fn normalize_tokens(tokens: &[Token], numeric: bool) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for token in tokens {
        match token {
            Token::Literal(' ') if numeric => {}
            Token::Literal(' ') => {
                if !matches!(out.last(), None | Some(Token::Literal(' '))) {
                    out.push(Token::Literal(' '));
                }
            }
            Token::Literal(c) => out.push(Token::Literal(c.to_ascii_lowercase())),
            other => out.push(other.clone()),
        }
    }
    if out.last() == Some(&Token::Literal(' ')) {
        out.pop();
    }
    out
}

/// The value in the form patterns are compared with (see [`normalize_tokens`]).
fn normalize_value(value: &str, numeric: bool) -> Vec<char> {
    if numeric {
        return value.chars().filter(|c| *c != ' ').collect();
    }
    let mut out = Vec::with_capacity(value.len());
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    out
}

/// Glob matching with backtracking to the last `*` only: linear in practice, quadratic at
/// worst, on values of at most a few hundred characters.
fn glob_match(pattern: &[Token], value: &[char]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Token::Many) => {
                star = Some((p, v));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                v += 1;
            }
            Some(Token::Literal(c)) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|t| *t == Token::Many)
}

/// Which addresses a routing-tree node stands for: constraints on some attributes of the
/// hierarchy, each with a [`ValuePattern`]. Attributes not named are not constrained.
///
/// Written as a std-or prefix (`/C=GB/ADMD= /PRMD=Isode/O=Example/`), parsed by
/// [`NodePattern::parse`]; printed the same way, most significant attribute first. `/`
/// alone is the empty pattern, which matches every address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodePattern {
    /// Sorted by attribute (the hierarchy), each attribute once.
    constraints: Vec<(OrAttribute, ValuePattern)>,
}

/// Why a text is not a node pattern.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The text is longer than the longest std-or address.
    #[error("pattern of {actual} bytes, more than the limit of {limit}")]
    TooLong {
        /// The limit (`MAX_STD_OR_LENGTH`).
        limit: usize,
        /// The length of the text.
        actual: usize,
    },
    /// A component has no `=`.
    #[error("{component:?} is not a KEYWORD=value pair")]
    MissingEquals {
        /// The component.
        component: String,
    },
    /// The keyword is not one of the O/R address attributes routing knows.
    #[error("unknown O/R address keyword {keyword:?}")]
    UnknownKeyword {
        /// The keyword as written.
        keyword: String,
    },
    /// The same attribute is constrained twice.
    #[error("{attribute} is given twice")]
    Duplicate {
        /// The attribute.
        attribute: OrAttribute,
    },
    /// More than four organizational units.
    #[error("more than {UB_ORGANIZATIONAL_UNITS} organizational units")]
    TooManyOrganizationalUnits,
    /// A character that no value of the attribute can hold.
    #[error("{attribute}: {character:?} is not allowed")]
    BadCharacter {
        /// The attribute.
        attribute: OrAttribute,
        /// The character.
        character: char,
    },
    /// A `$` at the end of a value, quoting nothing.
    #[error("{attribute}: a `$` at the end quotes nothing")]
    DanglingQuote {
        /// The attribute.
        attribute: OrAttribute,
    },
}

impl NodePattern {
    /// The empty pattern: every address.
    pub fn any() -> Self {
        NodePattern::default()
    }

    /// Parses a std-or prefix: `KEYWORD=value` pairs separated by `/` (or `;`), leading and
    /// trailing separators optional, keywords without regard to case: `C`, `ADMD` (`A`),
    /// `PRMD` (`P`), `O`, `OU` (repeated: the next unit) or `OU1`…`OU4`, `S`, `G`, `I`,
    /// `GQ` (`Q`), `CN`, `UA-ID` (`N-ID`), `T-ID`, `X121` (`X.121`), `DD.type` (`DDA:type`,
    /// `RFC-822`). Values are [`ValuePattern`]s.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.len() > MAX_STD_OR_LENGTH {
            return Err(PatternError::TooLong {
                limit: MAX_STD_OR_LENGTH,
                actual: text.len(),
            });
        }
        let components = split_unquoted(text);
        let last = components.len().saturating_sub(1);
        let pairs = components
            .into_iter()
            .enumerate()
            .filter(|(i, c)| !(c.trim().is_empty() && (*i == 0 || *i == last)))
            .map(|(_, c)| c);
        Self::from_pairs(pairs)
    }

    /// Builds a pattern from `KEYWORD=value` pairs, one per item (no splitting on `/`): the
    /// relative names of a routing tree in the directory, from the top down.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, PatternError> {
        let mut constraints: Vec<(OrAttribute, ValuePattern)> = Vec::new();
        let mut next_unit = 1;
        for pair in pairs {
            let pair = pair.trim_start_matches([' ', '\t']);
            let Some(equals) = find_unquoted(pair, '=') else {
                return Err(PatternError::MissingEquals {
                    component: pair.to_owned(),
                });
            };
            let (keyword, value) = (pair[..equals].trim_end(), &pair[equals + 1..]);
            let attribute = match classify(keyword, next_unit)? {
                Some(attribute) => attribute,
                None => return Err(PatternError::TooManyOrganizationalUnits),
            };
            if let OrAttribute::OrganizationalUnit(n) = attribute {
                next_unit = next_unit.max(n + 1);
            }
            if constraints.iter().any(|(a, _)| *a == attribute) {
                return Err(PatternError::Duplicate { attribute });
            }
            let pattern = parse_value(&attribute, value)?;
            constraints.push((attribute, pattern));
        }
        constraints.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(NodePattern { constraints })
    }

    /// The constraints, most significant attribute first.
    pub fn constraints(&self) -> &[(OrAttribute, ValuePattern)] {
        &self.constraints
    }

    /// The depth of the deepest attribute constrained; 0 for the empty pattern.
    pub fn depth(&self) -> usize {
        self.constraints
            .last()
            .map(|(attribute, _)| attribute.depth())
            .unwrap_or(0)
    }

    /// Whether `address` matches every constraint.
    pub fn matches(&self, address: &ORAddress) -> bool {
        self.constraints.iter().all(|(attribute, pattern)| {
            pattern.matches(attribute.value_in(address), attribute.is_numeric())
        })
    }

    /// Compares specificity: the deeper pattern first; at the same depth, attribute by
    /// attribute from the top, a constrained attribute before an unconstrained one, an
    /// absent or exact value before a glob, a glob with more literal characters before one
    /// with fewer, a glob before `*`; then by the text, so that the order is total.
    pub fn cmp_specificity(&self, other: &Self) -> Ordering {
        other
            .depth()
            .cmp(&self.depth())
            .then_with(|| {
                let mut a = self.constraints.iter().peekable();
                let mut b = other.constraints.iter().peekable();
                loop {
                    match (a.peek(), b.peek()) {
                        (None, None) => return Ordering::Equal,
                        (Some(_), None) => return Ordering::Less,
                        (None, Some(_)) => return Ordering::Greater,
                        (Some((aa, ap)), Some((ba, bp))) => {
                            if aa != ba {
                                // The one that constrains the higher attribute first.
                                return aa.cmp(ba);
                            }
                            let rank = |p: &ValuePattern| match p.kind() {
                                PatternKind::Absent | PatternKind::Exact => (3, 0),
                                PatternKind::Glob => (2, p.literals()),
                                PatternKind::Any => (1, 0),
                            };
                            let order = rank(bp).cmp(&rank(ap));
                            if order != Ordering::Equal {
                                return order;
                            }
                            a.next();
                            b.next();
                        }
                    }
                }
            })
            .then_with(|| self.to_string().cmp(&other.to_string()))
    }
}

impl fmt::Display for NodePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/")?;
        for (attribute, pattern) in &self.constraints {
            write!(f, "{attribute}={pattern}/")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for NodePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodePattern::parse(s)
    }
}

/// Splits on `/` and `;` that are not quoted with `$`.
fn split_unquoted(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if quoted {
            quoted = false;
        } else if c == QUOTE {
            quoted = true;
        } else if c == '/' || c == ';' {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The byte position of the first `needle` not quoted with `$`.
fn find_unquoted(text: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if quoted {
            quoted = false;
        } else if c == QUOTE {
            quoted = true;
        } else if c == needle {
            return Some(i);
        }
    }
    None
}

/// The attribute a keyword names; `None` for a fifth `OU`.
fn classify(keyword: &str, next_unit: usize) -> Result<Option<OrAttribute>, PatternError> {
    let upper = keyword.to_ascii_uppercase();
    let attribute = match upper.as_str() {
        "C" => OrAttribute::Country,
        "ADMD" | "A" => OrAttribute::Admd,
        "PRMD" | "P" => OrAttribute::Prmd,
        "O" => OrAttribute::Organization,
        "OU" => {
            if next_unit > UB_ORGANIZATIONAL_UNITS {
                return Ok(None);
            }
            OrAttribute::OrganizationalUnit(next_unit)
        }
        "OU1" => OrAttribute::OrganizationalUnit(1),
        "OU2" => OrAttribute::OrganizationalUnit(2),
        "OU3" => OrAttribute::OrganizationalUnit(3),
        "OU4" => OrAttribute::OrganizationalUnit(4),
        "S" => OrAttribute::Surname,
        "G" => OrAttribute::GivenName,
        "I" => OrAttribute::Initials,
        "GQ" | "Q" => OrAttribute::GenerationQualifier,
        "CN" => OrAttribute::CommonName,
        "UA-ID" | "N-ID" => OrAttribute::NumericUserId,
        "T-ID" => OrAttribute::TerminalId,
        "X121" | "X.121" => OrAttribute::NetworkAddress,
        "RFC-822" => OrAttribute::DomainDefined("RFC-822".to_owned()),
        _ => {
            let kind = upper
                .strip_prefix("DD.")
                .or_else(|| upper.strip_prefix("DDA:"))
                .filter(|k| !k.trim().is_empty());
            match kind {
                Some(kind) => OrAttribute::DomainDefined(kind.trim().to_owned()),
                None => {
                    return Err(PatternError::UnknownKeyword {
                        keyword: keyword.to_owned(),
                    });
                }
            }
        }
    };
    Ok(Some(attribute))
}

/// Parses a std-or value into a pattern: `$x` literal, `*` and `?` wildcards. A value of
/// spaces only is one space (the blank ADMD).
fn parse_value(attribute: &OrAttribute, value: &str) -> Result<ValuePattern, PatternError> {
    let mut tokens = Vec::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let token = match c {
            QUOTE => match chars.next() {
                Some(quoted) => Token::Literal(quoted),
                None => {
                    return Err(PatternError::DanglingQuote {
                        attribute: attribute.clone(),
                    });
                }
            },
            '*' => Token::Many,
            '?' => Token::One,
            other => Token::Literal(other),
        };
        if let Token::Literal(c) = token {
            let allowed = if attribute.is_numeric() {
                c.is_ascii_digit() || c == ' '
            } else {
                is_printable(c)
            };
            if !allowed {
                return Err(PatternError::BadCharacter {
                    attribute: attribute.clone(),
                    character: c,
                });
            }
        }
        tokens.push(token);
    }
    if !tokens.is_empty() && tokens.iter().all(|t| *t == Token::Literal(' ')) {
        tokens.truncate(1);
    }
    Ok(ValuePattern::from_tokens(tokens, attribute.is_numeric()))
}

/// The ASN.1 PrintableString repertoire.
fn is_printable(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
        )
}
