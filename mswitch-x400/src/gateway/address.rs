//! RFC 2156 chapter 4: mapping addresses between RFC 822 (Internet mail) and X.400.
//!
//! [`MixerTables`] holds the gateway's own names and an ordered table of domain ⇄ O/R
//! prefix rules (RFC 2156 §4.3, "mapping-table" one way and the reverse table the other).
//! [`MixerTables::to_or`] maps a [`Mailbox`] to an [`ORAddress`], [`MixerTables::to_mailbox`]
//! an [`ORAddress`] to a [`Mailbox`]. Everything here is pure: no I/O, no lookups.
//!
//! # RFC 822 → X.400 ([`MixerTables::to_or`])
//!
//! 1. A mailbox at the gateway's own domain must have a std-or local part (RFC 2156 §4.1.3,
//!    §4.4): `"/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/"@x400.example.com` is
//!    `/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/`.
//! 2. A mailbox whose domain a rule covers (the rule whose domain is the longest suffix of
//!    the mailbox's domain) takes the rule's O/R prefix. The domain labels to the left of the
//!    rule's domain fill the next levels of the O/R hierarchy, most significant (rightmost)
//!    first: the organization (`O`) when the prefix has neither `O` nor `OU`, then
//!    organizational units, at most [`UB_ORGANIZATIONAL_UNITS`] in all. The local part is
//!    then read as a std-or (`"/S=Smith/G=Jane/"@sales.example.com`: its attributes are
//!    added) or, once mapped to PrintableString with RFC 2156 §3.4 (`_` becomes `(u)`...),
//!    as an `encoded-pn` (§4.1.2): `Jane.Smith` is `G=Jane/S=Smith`, `J.Smith` is
//!    `I=J/S=Smith`, `Marshall.M.T.Rose` is `G=Marshall/I=MT/S=Rose`, a local part without
//!    dots such as `postmaster` is the surname alone.
//! 3. Any other mailbox, and one that a rule covers but whose local part or extra labels do
//!    not fit (not `encoded-pn`, a value over its X.411 upper bound, more than four OUs, an
//!    attribute given twice), is given the gateway's O/R address plus the domain-defined
//!    attribute `RFC-822` holding the whole `addr-spec` in the §3.4 mapping:
//!    `Jane_Doe@isp.example` becomes `/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=Jane(u)Doe(a)isp.example/`.
//!
//! # X.400 → RFC 822 ([`MixerTables::to_mailbox`])
//!
//! 1. An address with an `RFC-822` domain-defined attribute is the mailbox its value
//!    decodes to (§3.4 reversed), whatever the rest of the address.
//! 2. An address under a rule's O/R prefix (the deepest prefix that matches wins; prefixes
//!    are compared as X.400 compares values, without regard to case) is mapped to the rule's
//!    domain. The `O` and `OU` values below the prefix that are valid DNS labels become
//!    subdomains, the rest of the address becomes the local part: the `encoded-pn` of the
//!    personal name when that is all that is left (`Jane.Smith`), else the std-or of what is
//!    left (`"/CN=Jane Smith/"@sales.example.com`).
//! 3. Any other address becomes its std-or text as a quoted local part at the gateway
//!    domain: `"/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/"@x400.example.com`.
//!
//! In step 2 each candidate is mapped back with [`MixerTables::to_or`] and kept only if it
//! gives the same O/R address ([`ORAddress::matches`]); otherwise the next candidate (fewer
//! subdomains, the std-or local part, the next rule, finally step 3) is tried. So
//! `to_or(to_mailbox(o))` matches `o` for every address mapped by a rule or as a std-or,
//! and `to_mailbox(to_or(m)) == m` for every ASCII mailbox mapped by a rule in both
//! directions or given the `RFC-822` attribute (a std-or local part under a rule is taken
//! apart, so it comes back in its simplest form).
//!
//! # Configuration
//!
//! ```toml
//! gateway_domain = "x400.example.com"
//! gateway_or = "/C=GB/ADMD= /PRMD=Example/O=Internet/"
//!
//! [[rule]]
//! domain = "example.com"
//! or = "/C=GB/ADMD= /PRMD=Example/"
//!
//! [[rule]]
//! domain = "sales.example.com"
//! or = "/C=GB/ADMD= /PRMD=Example/O=Sales/"
//! direction = "both"          # or "822-to-x400", "x400-to-822"
//! subdomains = true           # labels left of the domain map to O / OU
//! ```

use std::cmp::Reverse;

use mswitch_core::address::{
    Domain, DomainDefinedAttribute, DomainPart, MAX_LABEL_LEN, MAX_LOCAL_PART_LEN, Mailbox,
    MailboxError, ORAddress, ORAddressAttribute, PrintableMappingError, StdOrError,
    UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH, UB_ORGANIZATIONAL_UNITS, ascii_from_printable,
    printable_from_ascii,
};
use serde::Deserialize;
use thiserror::Error;

/// The type of the domain-defined attribute that carries an RFC 822 address (RFC 2156 §4.4).
pub const RFC_822_ATTRIBUTE_TYPE: &str = "RFC-822";

/// The gateway's address mapping configuration, as read from TOML (see the module
/// documentation for an example).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixerConfig {
    /// The gateway's own domain: X.400 users no rule covers are written as std-or local
    /// parts at it (`"/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/"@x400.example.com`).
    pub gateway_domain: String,
    /// The gateway's O/R address prefix in the X.400 world, in std-or text; RFC 822 users no
    /// rule covers get it plus the `RFC-822` domain-defined attribute. Only `C`, `ADMD`,
    /// `PRMD`, `O` and `OU` may be given, and `C` and `ADMD` must be.
    pub gateway_or: String,
    /// The domain ⇄ O/R prefix rules (`[[rule]]`), in any order: the most specific wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<MixerRuleConfig>,
}

/// One `[[rule]]`: a domain and the O/R address prefix that stand for each other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixerRuleConfig {
    /// The RFC 822 domain, such as `sales.example.com`.
    pub domain: String,
    /// The O/R address prefix in std-or text, such as `/C=GB/ADMD= /PRMD=Example/O=Sales/`:
    /// only `C`, `ADMD`, `PRMD`, `O` and `OU`, with `C` and `ADMD`.
    #[serde(rename = "or")]
    pub or_prefix: String,
    /// Which way the rule maps; both by default.
    #[serde(default)]
    pub direction: RuleDirection,
    /// Whether subdomains of `domain` are covered too, their extra labels mapped to `O` and
    /// `OU` (RFC 2156 §4.3); true by default. When false only `domain` itself is covered.
    #[serde(default = "default_subdomains")]
    pub subdomains: bool,
}

/// Which way a rule maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum RuleDirection {
    /// Both ways (`"both"`).
    #[default]
    #[serde(rename = "both")]
    Both,
    /// RFC 822 to X.400 only (`"822-to-x400"`).
    #[serde(rename = "822-to-x400")]
    Rfc822ToX400,
    /// X.400 to RFC 822 only (`"x400-to-822"`).
    #[serde(rename = "x400-to-822")]
    X400ToRfc822,
}

impl RuleDirection {
    fn to_x400(self) -> bool {
        matches!(self, RuleDirection::Both | RuleDirection::Rfc822ToX400)
    }

    fn to_rfc822(self) -> bool {
        matches!(self, RuleDirection::Both | RuleDirection::X400ToRfc822)
    }
}

fn default_subdomains() -> bool {
    true
}

/// Why a [`MixerConfig`] was refused. Every variant is a configuration mistake; `rule`
/// numbers count the `[[rule]]` entries from 1, in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MixerConfigError {
    /// `gateway_domain` is not a domain name.
    #[error("gateway_domain {value:?} is not a domain name: {source}")]
    GatewayDomain {
        /// The value, as written.
        value: String,
        /// Why it is not a domain.
        source: MailboxError,
    },
    /// `gateway_or` is not a std-or address with `C` and `ADMD`.
    #[error("gateway_or {value:?} is not an O/R address with C and ADMD: {source}")]
    GatewayOr {
        /// The value, as written.
        value: String,
        /// Why it is refused.
        source: StdOrError,
    },
    /// `gateway_or` has an attribute other than `C`, `ADMD`, `PRMD`, `O` and `OU`.
    #[error("gateway_or may hold only C, ADMD, PRMD, O and OU, not {attribute}")]
    GatewayOrAttribute {
        /// The first attribute not allowed.
        attribute: ORAddressAttribute,
    },
    /// A rule's `domain` is not a domain name.
    #[error("rule {rule}: domain {value:?} is not a domain name: {source}")]
    RuleDomain {
        /// The rule's number, from 1.
        rule: usize,
        /// The value, as written.
        value: String,
        /// Why it is not a domain.
        source: MailboxError,
    },
    /// A rule's `or` is not a std-or address with `C` and `ADMD`.
    #[error("rule {rule}: or {value:?} is not an O/R address with C and ADMD: {source}")]
    RuleOr {
        /// The rule's number, from 1.
        rule: usize,
        /// The value, as written.
        value: String,
        /// Why it is refused.
        source: StdOrError,
    },
    /// A rule's `or` has an attribute other than `C`, `ADMD`, `PRMD`, `O` and `OU`.
    #[error("rule {rule}: or may hold only C, ADMD, PRMD, O and OU, not {attribute}")]
    RuleOrAttribute {
        /// The rule's number, from 1.
        rule: usize,
        /// The first attribute not allowed.
        attribute: ORAddressAttribute,
    },
    /// Two rules map the same domain to X.400.
    #[error("rule {rule}: domain {domain} already mapped to X.400 by rule {first}")]
    DuplicateDomain {
        /// The later rule's number, from 1.
        rule: usize,
        /// The earlier rule's number, from 1.
        first: usize,
        /// The domain.
        domain: String,
    },
    /// Two rules map the same O/R prefix to RFC 822.
    #[error("rule {rule}: O/R prefix {prefix} already mapped to RFC 822 by rule {first}")]
    DuplicatePrefix {
        /// The later rule's number, from 1.
        rule: usize,
        /// The earlier rule's number, from 1.
        first: usize,
        /// The prefix, in std-or text.
        prefix: String,
    },
}

/// Why an address could not be mapped. Which side is at fault is said on each variant; the
/// caller turns it into a refusal of the recipient (SMTP 553 / 5.1.3, X.400 non-delivery
/// `unable-to-transfer` with `unrecognised-OR-name`) or of the originator.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MappingError {
    /// The mailbox's local part is not ASCII (an RFC 6531 address): RFC 2156 maps only ASCII
    /// into PrintableString. The address is incompatible with X.400.
    #[error("{mailbox}: a non-ASCII local part has no X.400 form")]
    NonAsciiLocalPart {
        /// The mailbox.
        mailbox: String,
    },
    /// A mailbox at the gateway's own domain whose local part is not a std-or address
    /// (`/…/`): it names nobody in X.400. The fault of whoever wrote the address.
    #[error("{mailbox}: the local part at the gateway domain must be an X.400 std-or address")]
    NotStdOr {
        /// The mailbox.
        mailbox: String,
    },
    /// A mailbox at the gateway's own domain whose std-or local part does not parse. The
    /// fault of whoever wrote the address.
    #[error("{mailbox}: bad std-or local part: {source}")]
    BadStdOr {
        /// The mailbox.
        mailbox: String,
        /// What is wrong with the std-or text.
        source: StdOrError,
    },
    /// The RFC 822 address, in the §3.4 mapping, is longer than the X.411 upper bound of a
    /// domain-defined attribute value ([`UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH`]): it has
    /// no X.400 form. The address is incompatible with X.400.
    #[error("{addr_spec}: {length} characters as an RFC-822 attribute, more than the limit of {limit}", limit = UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH)]
    Rfc822TooLong {
        /// The address, as it would be written in the attribute before the mapping.
        addr_spec: String,
        /// The length of the mapped value.
        length: usize,
    },
    /// The O/R address is not valid X.411 (an empty value, a value over its upper bound…).
    /// The fault of whoever sent it.
    #[error("invalid O/R address: {source}")]
    InvalidORAddress {
        /// What is wrong with it.
        source: StdOrError,
    },
    /// The `RFC-822` attribute's value is not in the §3.4 mapping. The fault of the X.400
    /// side that wrote it.
    #[error("RFC-822 attribute {value:?} is not a mapped address: {source}")]
    Rfc822AttributeEncoding {
        /// The attribute's value.
        value: String,
        /// What is wrong with it.
        source: PrintableMappingError,
    },
    /// The `RFC-822` attribute decodes to something that is not a mailbox. The fault of the
    /// X.400 side that wrote it.
    #[error("RFC-822 attribute decodes to {text:?}, not a mailbox: {source}")]
    Rfc822AttributeMailbox {
        /// The decoded text.
        text: String,
        /// Why it is not a mailbox.
        source: MailboxError,
    },
    /// The O/R address has no rule, and its std-or text is longer than an RFC 5321 local
    /// part may be ([`MAX_LOCAL_PART_LEN`]): it has no RFC 822 form. The address is
    /// incompatible with Internet mail.
    #[error("{std_or}: {length} octets as a local part, more than the limit of {limit}", limit = MAX_LOCAL_PART_LEN)]
    LocalPartTooLong {
        /// The std-or text.
        std_or: String,
        /// Its length in octets.
        length: usize,
    },
    /// The mailbox built for the O/R address is not a valid RFC 5321 mailbox (too long in
    /// all). The address is incompatible with Internet mail.
    #[error("{text}: not a valid mailbox: {source}")]
    Unrepresentable {
        /// The mailbox as built.
        text: String,
        /// Why it is not valid.
        source: MailboxError,
    },
}

/// The address mapping tables of a gateway, built from a [`MixerConfig`].
#[derive(Debug, Clone)]
pub struct MixerTables {
    gateway_domain: Domain,
    gateway_or: ORAddress,
    rules: Vec<Rule>,
    /// The rules that map to RFC 822, deepest prefix first.
    by_prefix: Vec<usize>,
}

/// A parsed rule.
#[derive(Debug, Clone)]
struct Rule {
    domain: Domain,
    prefix: ORAddress,
    depth: usize,
    direction: RuleDirection,
    subdomains: bool,
}

impl MixerTables {
    /// Parses and checks the configuration: the domains, the O/R prefixes (only `C`, `ADMD`,
    /// `PRMD`, `O`, `OU`, with `C` and `ADMD`), and that no two rules map the same domain
    /// or the same prefix the same way.
    pub fn new(config: MixerConfig) -> Result<Self, MixerConfigError> {
        let gateway_domain = Domain::parse(&config.gateway_domain).map_err(|source| {
            MixerConfigError::GatewayDomain {
                value: config.gateway_domain.clone(),
                source,
            }
        })?;
        let gateway_or =
            parse_prefix(&config.gateway_or).map_err(|source| MixerConfigError::GatewayOr {
                value: config.gateway_or.clone(),
                source,
            })?;
        if let Some(attribute) = non_prefix_attribute(&gateway_or) {
            return Err(MixerConfigError::GatewayOrAttribute { attribute });
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(config.rules.len());
        for (index, entry) in config.rules.iter().enumerate() {
            let number = index + 1;
            let domain =
                Domain::parse(&entry.domain).map_err(|source| MixerConfigError::RuleDomain {
                    rule: number,
                    value: entry.domain.clone(),
                    source,
                })?;
            let prefix =
                parse_prefix(&entry.or_prefix).map_err(|source| MixerConfigError::RuleOr {
                    rule: number,
                    value: entry.or_prefix.clone(),
                    source,
                })?;
            if let Some(attribute) = non_prefix_attribute(&prefix) {
                return Err(MixerConfigError::RuleOrAttribute {
                    rule: number,
                    attribute,
                });
            }
            let depth = prefix_depth(&prefix);
            for (earlier, other) in rules.iter().enumerate() {
                if entry.direction.to_x400() && other.direction.to_x400() && other.domain == domain
                {
                    return Err(MixerConfigError::DuplicateDomain {
                        rule: number,
                        first: earlier + 1,
                        domain: domain.to_string(),
                    });
                }
                if entry.direction.to_rfc822()
                    && other.direction.to_rfc822()
                    && other.depth == depth
                    && prefix_matches(&other.prefix, &prefix)
                {
                    return Err(MixerConfigError::DuplicatePrefix {
                        rule: number,
                        first: earlier + 1,
                        prefix: prefix.to_string(),
                    });
                }
            }
            rules.push(Rule {
                domain,
                prefix,
                depth,
                direction: entry.direction,
                subdomains: entry.subdomains,
            });
        }
        let mut by_prefix: Vec<usize> = (0..rules.len())
            .filter(|&index| rules[index].direction.to_rfc822())
            .collect();
        by_prefix.sort_by_key(|&index| Reverse(rules[index].depth));
        Ok(MixerTables {
            gateway_domain,
            gateway_or,
            rules,
            by_prefix,
        })
    }

    /// The gateway's own domain.
    pub fn gateway_domain(&self) -> &Domain {
        &self.gateway_domain
    }

    /// The gateway's O/R address prefix.
    pub fn gateway_or(&self) -> &ORAddress {
        &self.gateway_or
    }

    /// Maps an RFC 822 mailbox to an X.400 O/R address (RFC 2156 §4.4; the steps are in the
    /// module documentation).
    pub fn to_or(&self, mailbox: &Mailbox) -> Result<ORAddress, MappingError> {
        let local = mailbox.local_part().as_str();
        if !local.is_ascii() {
            return Err(MappingError::NonAsciiLocalPart {
                mailbox: mailbox.to_string(),
            });
        }
        if let Some(domain) = mailbox.domain() {
            if *domain == self.gateway_domain {
                if !looks_like_std_or(local) {
                    return Err(MappingError::NotStdOr {
                        mailbox: mailbox.to_string(),
                    });
                }
                return ORAddress::parse_std_or(local).map_err(|source| MappingError::BadStdOr {
                    mailbox: mailbox.to_string(),
                    source,
                });
            }
            if let Some(rule) = self.rule_for_domain(domain)
                && let Some(address) = rule_to_or(rule, domain, local)
            {
                return Ok(address);
            }
        }
        self.rfc822_attribute(mailbox)
    }

    /// Maps an X.400 O/R address to an RFC 822 mailbox (RFC 2156 §4.4; the steps are in the
    /// module documentation).
    pub fn to_mailbox(&self, address: &ORAddress) -> Result<Mailbox, MappingError> {
        address
            .validate()
            .map_err(|source| MappingError::InvalidORAddress { source })?;
        if let Some(attribute) = address
            .domain_defined
            .iter()
            .find(|attribute| attribute.kind.eq_ignore_ascii_case(RFC_822_ATTRIBUTE_TYPE))
        {
            let text = ascii_from_printable(&attribute.value).map_err(|source| {
                MappingError::Rfc822AttributeEncoding {
                    value: attribute.value.clone(),
                    source,
                }
            })?;
            return Mailbox::parse(&text)
                .map_err(|source| MappingError::Rfc822AttributeMailbox { text, source });
        }
        for &index in &self.by_prefix {
            if let Some(mailbox) = self.rule_to_mailbox(&self.rules[index], address) {
                return Ok(mailbox);
            }
        }
        let std_or = address.to_string();
        if std_or.len() > MAX_LOCAL_PART_LEN {
            return Err(MappingError::LocalPartTooLong {
                length: std_or.len(),
                std_or,
            });
        }
        let text = format!("{}@{}", quote_local_part(&std_or), self.gateway_domain);
        Mailbox::parse(&text).map_err(|source| MappingError::Unrepresentable { text, source })
    }

    /// The rule mapping `domain` to X.400: the one whose domain is the longest suffix.
    fn rule_for_domain(&self, domain: &Domain) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|rule| rule.direction.to_x400())
            .filter(|rule| {
                *domain == rule.domain || (rule.subdomains && domain.is_within(&rule.domain))
            })
            .max_by_key(|rule| label_count(&rule.domain))
    }

    /// The gateway's O/R address plus the `RFC-822` attribute for `mailbox`.
    fn rfc822_attribute(&self, mailbox: &Mailbox) -> Result<ORAddress, MappingError> {
        let domain = match mailbox.domain_part() {
            DomainPart::Domain(domain) => domain.to_ascii().to_owned(),
            DomainPart::Literal(literal) => literal.to_string(),
        };
        let addr_spec = format!("{}@{}", mailbox.local_part(), domain);
        let value = printable_from_ascii(&addr_spec);
        if value.len() > UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH {
            return Err(MappingError::Rfc822TooLong {
                addr_spec,
                length: value.len(),
            });
        }
        let mut address = self.gateway_or.clone();
        address
            .domain_defined
            .push(DomainDefinedAttribute::new(RFC_822_ATTRIBUTE_TYPE, value));
        address
            .validate()
            .map_err(|source| MappingError::InvalidORAddress { source })?;
        Ok(address)
    }

    /// Maps `address` under `rule`, if its prefix matches and some candidate maps back.
    fn rule_to_mailbox(&self, rule: &Rule, address: &ORAddress) -> Option<Mailbox> {
        if !prefix_matches(&rule.prefix, address) {
            return None;
        }
        let mut rest = address.clone();
        let prefix = &rule.prefix;
        if prefix.country.is_some() {
            rest.country = None;
        }
        if prefix.admd.is_some() {
            rest.admd = None;
        }
        if prefix.prmd.is_some() {
            rest.prmd = None;
        }
        if prefix.organization.is_some() {
            rest.organization = None;
        }
        rest.organizational_units
            .drain(..prefix.organizational_units.len());
        // The values below the prefix that may become subdomains, most significant first.
        let takes_organization = takes_organization(prefix);
        let mut below: Vec<&str> = Vec::new();
        if takes_organization {
            below.extend(rest.organization.as_deref());
        }
        if !takes_organization || rest.organization.is_some() {
            below.extend(rest.organizational_units.iter().map(String::as_str));
        }
        let usable = if rule.subdomains {
            below.iter().take_while(|value| is_label(value)).count()
        } else {
            0
        };
        for taken in (0..=usable).rev() {
            let mut remaining = rest.clone();
            let mut units = taken;
            if takes_organization && taken > 0 {
                remaining.organization = None;
                units -= 1;
            }
            remaining.organizational_units.drain(..units);
            let mut domain = String::new();
            for label in below[..taken].iter().rev() {
                domain.push_str(label);
                domain.push('.');
            }
            domain.push_str(rule.domain.as_str());
            for local in local_part_candidates(&remaining) {
                let text = format!("{}@{}", quote_local_part(&local), domain);
                let Ok(mailbox) = Mailbox::parse(&text) else {
                    continue;
                };
                let Some(domain) = mailbox.domain() else {
                    continue;
                };
                // The candidate must map back to the address: through the whole table when
                // some rule maps its domain to X.400, else (a one-way rule) through this rule.
                let back = if self.rule_for_domain(domain).is_some() {
                    self.to_or(&mailbox).ok()
                } else if *domain == self.gateway_domain {
                    None
                } else {
                    rule_to_or(rule, domain, &local)
                };
                if back.is_some_and(|back| back.matches(address)) {
                    return Some(mailbox);
                }
            }
        }
        None
    }
}

/// RFC 822 → X.400 under `rule`: the prefix, the extra labels as `O`/`OU`, the local part's
/// attributes. `None` when the result is not a valid O/R address.
fn rule_to_or(rule: &Rule, domain: &Domain, local: &str) -> Option<ORAddress> {
    let mut address = rule.prefix.clone();
    let mut labels = extra_labels(domain, &rule.domain).into_iter();
    if takes_organization(&rule.prefix)
        && let Some(label) = labels.next()
    {
        address.organization = Some(label);
    }
    address.organizational_units.extend(labels);
    if address.organizational_units.len() > UB_ORGANIZATIONAL_UNITS {
        return None;
    }
    merge(&mut address, local_part_attributes(local)?)?;
    address.validate().ok()?;
    Some(address)
}

/// The attributes an RFC 822 local part stands for under a rule: a std-or, or else the
/// §3.4 mapping of the local part read as an `encoded-pn`.
fn local_part_attributes(local: &str) -> Option<ORAddress> {
    if looks_like_std_or(local)
        && let Ok(address) = ORAddress::parse_std_or(local)
    {
        return Some(address);
    }
    let printable = printable_from_ascii(local);
    ORAddress::parse_std_or(&format!("/PN={}/", quote_std_or_value(&printable))).ok()
}

/// The local parts that may stand for `rest` under a rule, the preferred first: the
/// `encoded-pn` when only a personal name is left, then the std-or text.
fn local_part_candidates(rest: &ORAddress) -> Vec<String> {
    let mut candidates = Vec::new();
    if rest.is_empty() {
        return candidates;
    }
    let mut without_name = rest.clone();
    without_name.personal_name = None;
    let only_name = without_name.is_empty();
    if only_name
        && let Some(name) = &rest.personal_name
        && name.generation_qualifier.is_none()
    {
        let mut encoded = String::new();
        if let Some(given) = &name.given_name {
            encoded.push_str(given);
            encoded.push('.');
        }
        for initial in name.initials.iter().flat_map(|initials| initials.chars()) {
            encoded.push(initial);
            encoded.push('.');
        }
        encoded.push_str(&name.surname);
        if let Ok(local) = ascii_from_printable(&encoded) {
            candidates.push(local);
        }
    }
    candidates.push(rest.to_string());
    candidates
}

/// Adds the attributes of `rest` to `address`; `None` if one is in both.
fn merge(address: &mut ORAddress, rest: ORAddress) -> Option<()> {
    fn set<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
        match (slot.is_some(), value) {
            (true, Some(_)) => None,
            (false, Some(value)) => {
                *slot = Some(value);
                Some(())
            }
            (_, None) => Some(()),
        }
    }
    set(&mut address.country, rest.country)?;
    set(&mut address.admd, rest.admd)?;
    set(&mut address.prmd, rest.prmd)?;
    set(&mut address.organization, rest.organization)?;
    address
        .organizational_units
        .extend(rest.organizational_units);
    set(&mut address.personal_name, rest.personal_name)?;
    set(&mut address.common_name, rest.common_name)?;
    set(&mut address.numeric_user_id, rest.numeric_user_id)?;
    set(&mut address.terminal_id, rest.terminal_id)?;
    set(&mut address.network_address, rest.network_address)?;
    address.domain_defined.extend(rest.domain_defined);
    Some(())
}

/// Parses an O/R prefix of the configuration: std-or text with `C` and `ADMD`.
fn parse_prefix(text: &str) -> Result<ORAddress, StdOrError> {
    let address = ORAddress::parse_std_or(text)?;
    address.validate_mnemonic()?;
    Ok(address)
}

/// The first attribute of `address` that a prefix may not hold (anything but `C`, `ADMD`,
/// `PRMD`, `O`, `OU`).
fn non_prefix_attribute(address: &ORAddress) -> Option<ORAddressAttribute> {
    [
        (address.personal_name.is_some(), ORAddressAttribute::Surname),
        (
            address.common_name.is_some(),
            ORAddressAttribute::CommonName,
        ),
        (
            address.numeric_user_id.is_some(),
            ORAddressAttribute::NumericUserIdentifier,
        ),
        (
            address.terminal_id.is_some(),
            ORAddressAttribute::TerminalIdentifier,
        ),
        (
            address.network_address.is_some(),
            ORAddressAttribute::NetworkAddress,
        ),
        (
            !address.domain_defined.is_empty(),
            ORAddressAttribute::DomainDefinedAttributeType,
        ),
    ]
    .into_iter()
    .find_map(|(present, attribute)| present.then_some(attribute))
}

/// How deep a prefix reaches in the hierarchy `C` (1), `ADMD` (2), `PRMD` (3), `O` (4),
/// `OU`… (5 to 8).
fn prefix_depth(prefix: &ORAddress) -> usize {
    if !prefix.organizational_units.is_empty() {
        4 + prefix.organizational_units.len()
    } else if prefix.organization.is_some() {
        4
    } else if prefix.prmd.is_some() {
        3
    } else if prefix.admd.is_some() {
        2
    } else {
        usize::from(prefix.country.is_some())
    }
}

/// Whether `address` lies under `prefix`: down to the prefix's depth, each level present in
/// one is present in the other with a matching value, and the prefix's OUs begin the
/// address's.
fn prefix_matches(prefix: &ORAddress, address: &ORAddress) -> bool {
    let depth = prefix_depth(prefix);
    let levels = [
        (&prefix.country, &address.country),
        (&prefix.admd, &address.admd),
        (&prefix.prmd, &address.prmd),
        (&prefix.organization, &address.organization),
    ];
    let levels_match = levels
        .iter()
        .take(depth)
        .all(|(mine, theirs)| match (mine, theirs) {
            (Some(mine), Some(theirs)) => value_matches(mine, theirs),
            (None, None) => true,
            _ => false,
        });
    levels_match
        && address.organizational_units.len() >= prefix.organizational_units.len()
        && prefix
            .organizational_units
            .iter()
            .zip(&address.organizational_units)
            .all(|(mine, theirs)| value_matches(mine, theirs))
}

/// Whether the first extra domain label becomes the organization: when the prefix has
/// neither `O` nor `OU`.
fn takes_organization(prefix: &ORAddress) -> bool {
    prefix.organization.is_none() && prefix.organizational_units.is_empty()
}

/// X.400 comparison of PrintableString values: without regard to case, leading and trailing
/// spaces, or the length of inner runs of spaces.
fn value_matches(a: &str, b: &str) -> bool {
    let mut a = a.split_whitespace();
    let mut b = b.split_whitespace();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
            _ => return false,
        }
    }
}

/// The labels of `domain` left of `base` (which it is within), most significant (rightmost)
/// first; ASCII labels as written, others as A-labels.
fn extra_labels(domain: &Domain, base: &Domain) -> Vec<String> {
    let written: Vec<&str> = domain.as_str().split('.').collect();
    let ascii: Vec<&str> = domain.to_ascii().split('.').collect();
    let extra = ascii.len().saturating_sub(label_count(base));
    (0..extra)
        .rev()
        .map(|index| match written.get(index) {
            Some(label) if label.is_ascii() && written.len() == ascii.len() => (*label).to_owned(),
            _ => ascii.get(index).copied().unwrap_or_default().to_owned(),
        })
        .collect()
}

fn label_count(domain: &Domain) -> usize {
    domain.to_ascii().split('.').count()
}

/// Whether an `O` or `OU` value can be a DNS label (letters, digits, inner hyphens).
fn is_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Whether a local part is written as an RFC 2156 std-or: `/`…`/`.
fn looks_like_std_or(local: &str) -> bool {
    local.len() > 1 && local.starts_with('/') && local.ends_with('/')
}

/// Quotes a std-or value: `/`, `=`, `;` and `$` are preceded by `$` (RFC 2156 §4.1.3).
fn quote_std_or_value(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len());
    for character in value.chars() {
        if matches!(character, '/' | '=' | ';' | '$') {
            quoted.push('$');
        }
        quoted.push(character);
    }
    quoted
}

/// Writes a local part as RFC 5322 requires: as it is when it is a dot-atom, else as a
/// quoted string with `"` and `\` escaped.
fn quote_local_part(local: &str) -> String {
    let atext = |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte);
    let dot_atom = !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext));
    if dot_atom {
        return local.to_owned();
    }
    let mut quoted = String::with_capacity(local.len() + 2);
    quoted.push('"');
    for character in local.chars() {
        if matches!(character, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests;
