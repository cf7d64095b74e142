//! Directory configuration: local domains, aliases and distribution lists read from an LDAP
//! directory, so that they are administered where the users are.
//!
//! [`load`] reads one snapshot, a [`DirectoryTables`], over the [`Directory`] trait of LASER
//! routing (`LdapDirectory` in production, fakes in tests). The daemon reads it at start and
//! then at every poll, merges it into the configuration from its file, and switches to the
//! merged configuration when the snapshot changed; a snapshot that cannot be read is an error,
//! and the caller keeps the previous one. Nothing here touches the network except through the
//! trait.
//!
//! # Schema
//! Three subtree searches under [`DirectorySettings::base`], each with a configurable filter
//! (`None` leaves that kind out) and configurable attribute names. The defaults use only the
//! schemas every OpenLDAP has (`core`, `cosine`, `misc`):
//!
//! | what | filter (default) | attributes (default) |
//! |---|---|---|
//! | local domains | `(objectClass=domainRelatedObject)` (RFC 4524 §3.4) | `associatedDomain`: each value a domain |
//! | aliases | `(objectClass=nisMailAlias)` (`misc`) | `cn`: the alias address; `rfc822MailMember`: the members |
//! | lists | `(&(objectClass=groupOfNames)(mail=*))` | `mail`, `member`, `rfc822MailMember`, `owner`, `description` (below) |
//!
//! `groupOfNames` does not allow `mail`: a list entry adds `objectClass: extensibleObject`
//! (which allows `rfc822MailMember` too). A list entry gives:
//! - **its address**: `mail` (one value; when there are more, the first usable one is taken
//!   and the others are logged);
//! - **its members**: every `member` DN, resolved to the `mail` of that entry by a base-scope
//!   search (a member that is itself a list entry gives the list's address, so lists nest),
//!   and every `rfc822MailMember` address. A DN that names no entry, or an entry without a
//!   usable `mail`, is logged and skipped. A list is never its own member (its own address is
//!   dropped), so a list whose members are all `rfc822MailMember` addresses can satisfy
//!   `groupOfNames`, which requires a `member`, by naming itself;
//! - **its owner** (the envelope sender of the expanded mail, who receives the bounces): the
//!   `owner` DN resolved to its `mail` like a member; without one (or when it does not
//!   resolve) `owner-<local>@<domain>` of the list address;
//! - **who may post**: the `description` values of the form `posting=<value>` (other
//!   descriptions are free text and ignored): `posting=anyone` (the default, when there is no
//!   such value), `posting=members` (the envelope sender must be a member), or
//!   `posting=<address>` (one value per allowed sender). Several values combine to the most
//!   restrictive: members and addresses together allow the members and those addresses;
//!   `anyone` beside another value is ignored. When `posting=` values are present but none can
//!   be used, only the owner may post (a typo must not open a closed list).
//!
//! # Values that cannot be used
//! A value that does not parse (a domain that is not a domain name, an alias address that is
//! not `local@domain`, a member that is not an address) is logged with the entry's DN and
//! skipped; an alias or list left without any member, or without an address, is skipped
//! whole. Nothing in the data makes [`load`] fail: only the directory does (unreachable, a
//! search refused), and then the whole snapshot is refused, never a partial one — except a
//! member or owner DN that names no entry (`noSuchObject`, or an invalid DN), which is a
//! value that cannot be used.
//!
//! # Normal form
//! A snapshot is compared with the previous one, so it has one form for one directory
//! content, whatever order the server sends entries and values in: domains are lower-case
//! A-labels, sorted, without duplicates; an address is kept as written but compared
//! case-insensitively (LDAP matches `mail`, `cn` and `rfc822MailMember` ignoring case), and two
//! entries with the same alias address give one alias with the members of both; members are
//! sorted and without duplicates; lists are sorted by address, and of two list entries with
//! the same address the one whose DN sorts first is kept. An address that is both an alias and
//! a list is a list (its alias entry is logged and left out).

use std::collections::{BTreeMap, HashMap};

use mswitch_core::address::{Address, Domain, Mailbox};

use crate::laser::{Directory, DirectoryError, Entry, Scope};
use crate::list::{List, Posting};

/// What the directory says: the domains, aliases and lists to add to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryTables {
    /// Local domains: lower-case A-labels, sorted, each once.
    pub local_domains: Vec<String>,
    /// Aliases: address → members (addresses, sorted, each once; at least one).
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Distribution lists, sorted by address (members sorted, each once).
    pub lists: Vec<List>,
}

impl DirectoryTables {
    /// Whether the directory gave nothing at all.
    pub fn is_empty(&self) -> bool {
        self.local_domains.is_empty() && self.aliases.is_empty() && self.lists.is_empty()
    }
}

/// Where the directory configuration is and how it is written: the base, the three filters
/// and the attribute names. [`DirectorySettings::new`] gives the schema of the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySettings {
    /// The base of the three searches.
    pub base: String,
    /// Their scope (subtree by default).
    pub scope: Scope,
    /// The filter of the local domain entries (`None`: no local domains are read).
    pub domain_filter: Option<String>,
    /// The attribute of a domain entry that names its domains.
    pub domain_attribute: String,
    /// The filter of the alias entries (`None`: no aliases are read).
    pub alias_filter: Option<String>,
    /// The attribute of an alias entry that gives the alias address.
    pub alias_address_attribute: String,
    /// The attribute of an alias entry that gives its members (addresses).
    pub alias_member_attribute: String,
    /// The filter of the list entries (`None`: no lists are read).
    pub list_filter: Option<String>,
    /// The attribute of a list entry that gives the list address.
    pub list_address_attribute: String,
    /// The attribute of a list entry that gives member DNs.
    pub list_member_attribute: String,
    /// The attribute of a list entry that gives member addresses.
    pub list_address_member_attribute: String,
    /// The attribute of a list entry that gives the owner's DN.
    pub list_owner_attribute: String,
    /// The attribute of a list entry whose `posting=` values say who may post (`None`:
    /// anyone may post to every list).
    pub list_posting_attribute: Option<String>,
    /// The attribute of a member's or owner's entry that gives its address.
    pub mail_attribute: String,
}

impl DirectorySettings {
    /// The default filter of local domain entries (RFC 4524 §3.4).
    pub const DOMAIN_FILTER: &'static str = "(objectClass=domainRelatedObject)";
    /// The default attribute of the local domains (RFC 4524 §2.1).
    pub const DOMAIN_ATTRIBUTE: &'static str = "associatedDomain";
    /// The default filter of alias entries (`nisMailAlias` of the `misc` schema).
    pub const ALIAS_FILTER: &'static str = "(objectClass=nisMailAlias)";
    /// The default attribute of an alias address.
    pub const ALIAS_ADDRESS_ATTRIBUTE: &'static str = "cn";
    /// The default attribute of alias members and of a list's extra member addresses.
    pub const RFC822_MAIL_MEMBER: &'static str = "rfc822MailMember";
    /// The default filter of list entries.
    pub const LIST_FILTER: &'static str = "(&(objectClass=groupOfNames)(mail=*))";
    /// The default attribute of member DNs (RFC 4519 §2.17).
    pub const MEMBER_ATTRIBUTE: &'static str = "member";
    /// The default attribute of the owner's DN (RFC 4519 §2.22).
    pub const OWNER_ATTRIBUTE: &'static str = "owner";
    /// The default attribute of the posting policy.
    pub const POSTING_ATTRIBUTE: &'static str = "description";
    /// The default address attribute of list, member and owner entries (RFC 4524 §2.16).
    pub const MAIL_ATTRIBUTE: &'static str = "mail";
    /// The prefix of a posting-policy value.
    pub const POSTING_KEY: &'static str = "posting";

    /// The default schema, searched below `base` (subtree).
    pub fn new(base: impl Into<String>) -> Self {
        DirectorySettings {
            base: base.into(),
            scope: Scope::Subtree,
            domain_filter: Some(Self::DOMAIN_FILTER.to_owned()),
            domain_attribute: Self::DOMAIN_ATTRIBUTE.to_owned(),
            alias_filter: Some(Self::ALIAS_FILTER.to_owned()),
            alias_address_attribute: Self::ALIAS_ADDRESS_ATTRIBUTE.to_owned(),
            alias_member_attribute: Self::RFC822_MAIL_MEMBER.to_owned(),
            list_filter: Some(Self::LIST_FILTER.to_owned()),
            list_address_attribute: Self::MAIL_ATTRIBUTE.to_owned(),
            list_member_attribute: Self::MEMBER_ATTRIBUTE.to_owned(),
            list_address_member_attribute: Self::RFC822_MAIL_MEMBER.to_owned(),
            list_owner_attribute: Self::OWNER_ATTRIBUTE.to_owned(),
            list_posting_attribute: Some(Self::POSTING_ATTRIBUTE.to_owned()),
            mail_attribute: Self::MAIL_ATTRIBUTE.to_owned(),
        }
    }
}

/// Reads one snapshot of the directory configuration: the domains, aliases and lists below
/// `settings.base`, in normal form. Unusable values are logged and skipped; an error of the
/// directory (unreachable, a search refused) is returned, and no partial snapshot. See the
/// [module documentation](self).
pub async fn load(
    dir: &dyn Directory,
    settings: &DirectorySettings,
) -> Result<DirectoryTables, DirectoryError> {
    let mut tables = DirectoryTables::default();
    if let Some(filter) = &settings.domain_filter {
        let entries = search(dir, settings, filter, &[&settings.domain_attribute]).await?;
        tables.local_domains = domains(&entries, &settings.domain_attribute);
    }
    if let Some(filter) = &settings.alias_filter {
        let attributes = [
            settings.alias_address_attribute.as_str(),
            settings.alias_member_attribute.as_str(),
        ];
        let entries = search(dir, settings, filter, &attributes).await?;
        tables.aliases = aliases(&entries, settings);
    }
    if let Some(filter) = &settings.list_filter {
        let mut attributes = vec![
            settings.list_address_attribute.as_str(),
            settings.list_member_attribute.as_str(),
            settings.list_address_member_attribute.as_str(),
            settings.list_owner_attribute.as_str(),
        ];
        attributes.extend(settings.list_posting_attribute.as_deref());
        let entries = search(dir, settings, filter, &attributes).await?;
        let mut resolver = DnResolver::new(dir, &settings.mail_attribute);
        let mut lists: BTreeMap<String, List> = BTreeMap::new();
        for entry in &entries {
            let Some(list) = list(entry, settings, &mut resolver).await? else {
                continue;
            };
            let key = key(&list.address);
            if let Some(kept) = lists.get(&key) {
                tracing::warn!(dn = entry.dn(), list = %list.address, kept = %kept.address,
                    "directory list ignored: an entry before it gives the same address");
                continue;
            }
            lists.insert(key, list);
        }
        for (key, list) in &lists {
            let shadowed: Vec<String> = tables
                .aliases
                .keys()
                .filter(|a| a.to_lowercase() == *key)
                .cloned()
                .collect();
            for alias in shadowed {
                tracing::warn!(alias = %alias, list = %list.address,
                    "directory alias ignored: a directory list has the same address");
                tables.aliases.remove(&alias);
            }
        }
        tables.lists = lists.into_values().collect();
    }
    tracing::debug!(
        base = %settings.base,
        domains = tables.local_domains.len(),
        aliases = tables.aliases.len(),
        lists = tables.lists.len(),
        "directory configuration read"
    );
    Ok(tables)
}

/// A subtree (or the configured scope) search, its entries sorted by DN so that "the first
/// one" does not depend on the server's order.
async fn search(
    dir: &dyn Directory,
    settings: &DirectorySettings,
    filter: &str,
    attributes: &[&str],
) -> Result<Vec<Entry>, DirectoryError> {
    let mut entries = dir
        .search(&settings.base, settings.scope, filter, attributes)
        .await
        .inspect_err(|e| {
            tracing::warn!(base = %settings.base, filter, error = %e,
                "directory configuration search failed");
        })?;
    entries.sort_by_cached_key(|e| (e.dn().to_lowercase(), e.dn().to_owned()));
    Ok(entries)
}

/// The comparison key of an address: LDAP compares mail addresses ignoring case.
fn key(m: &Mailbox) -> String {
    m.to_string().to_lowercase()
}

fn domains(entries: &[Entry], attribute: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in entries {
        for value in entry.values(attribute) {
            let name = value.trim().trim_end_matches('.');
            match Domain::parse(name) {
                Ok(d) => out.push(d.to_ascii().to_owned()),
                Err(e) => tracing::warn!(dn = entry.dn(), value = value.as_str(), error = %e,
                    "ignoring an unusable local domain in the directory"),
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The usable addresses among `values` (logged otherwise), as written, trimmed.
fn addresses(entry: &Entry, values: &[String], what: &str) -> Vec<Address> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .filter_map(|v| match Address::parse(v) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(dn = entry.dn(), value = v, error = %e,
                    "ignoring an unusable {what} in the directory");
                None
            }
        })
        .collect()
}

/// Sorts by the case-insensitive form and drops the duplicates it finds.
fn normalize(members: &mut Vec<Address>) {
    let sort_key = |a: &Address| (a.to_string().to_lowercase(), a.to_string());
    members.sort_by_cached_key(sort_key);
    members.dedup_by(|a, b| a.to_string().to_lowercase() == b.to_string().to_lowercase());
}

fn aliases(entries: &[Entry], settings: &DirectorySettings) -> BTreeMap<String, Vec<String>> {
    // Keyed by the lower-case address: (the address as first written, its members).
    let mut found: BTreeMap<String, (Mailbox, Vec<Address>)> = BTreeMap::new();
    for entry in entries {
        let members = addresses(
            entry,
            entry.values(&settings.alias_member_attribute),
            "alias member",
        );
        let names: Vec<Mailbox> = entry
            .values(&settings.alias_address_attribute)
            .iter()
            .map(|v| v.trim())
            .filter_map(|v| match Mailbox::parse(v) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(dn = entry.dn(), value = v, error = %e,
                        "ignoring an alias name that is not an address (local@domain)");
                    None
                }
            })
            .collect();
        if names.is_empty() {
            tracing::warn!(
                dn = entry.dn(),
                "directory alias ignored: it has no usable address"
            );
            continue;
        }
        if members.is_empty() {
            tracing::warn!(
                dn = entry.dn(),
                "directory alias ignored: it has no usable member"
            );
            continue;
        }
        for name in names {
            found
                .entry(key(&name))
                .or_insert_with(|| (name, Vec::new()))
                .1
                .extend(members.iter().cloned());
        }
    }
    found
        .into_values()
        .map(|(name, mut members)| {
            normalize(&mut members);
            (
                name.to_string(),
                members.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

/// Resolves DNs to the address of their entry, each DN once per snapshot.
struct DnResolver<'a> {
    dir: &'a dyn Directory,
    mail_attribute: &'a str,
    /// By lower-case DN: the address, or `None` when the DN gives none.
    cache: HashMap<String, Option<Mailbox>>,
}

impl<'a> DnResolver<'a> {
    fn new(dir: &'a dyn Directory, mail_attribute: &'a str) -> Self {
        DnResolver {
            dir,
            mail_attribute,
            cache: HashMap::new(),
        }
    }

    /// The address of the entry at `dn`; `Ok(None)` (logged) when there is no such entry or
    /// it has no usable address; `Err` when the directory fails.
    async fn resolve(
        &mut self,
        dn: &str,
        list_dn: &str,
    ) -> Result<Option<Mailbox>, DirectoryError> {
        let dn = dn.trim();
        let cache_key = dn.to_lowercase();
        if let Some(known) = self.cache.get(&cache_key) {
            return Ok(known.clone());
        }
        let found = self
            .dir
            .search(dn, Scope::Base, "(objectClass=*)", &[self.mail_attribute])
            .await;
        let entries = match found {
            Ok(entries) => entries,
            // noSuchObject (RFC 4511 §4.1.9) or invalidDNSyntax: the DN is a bad value.
            Err(DirectoryError::Refused { code, message }) if code == 32 || code == 34 => {
                tracing::warn!(list = list_dn, member = dn, code, message = %message,
                    "directory list member or owner not found; skipped");
                self.cache.insert(cache_key, None);
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(list = list_dn, member = dn, error = %e,
                    "cannot read a directory list member or owner");
                return Err(e);
            }
        };
        let mut mail = None;
        for entry in &entries {
            for value in entry.values(self.mail_attribute) {
                match Mailbox::parse(value.trim()) {
                    Ok(m) if mail.is_none() => mail = Some(m),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(dn = entry.dn(), value = value.as_str(),
                        error = %e, "ignoring an unusable address in the directory"),
                }
            }
        }
        if mail.is_none() {
            if entries.is_empty() {
                tracing::warn!(
                    list = list_dn,
                    member = dn,
                    "directory list member or owner not found; skipped"
                );
            } else {
                tracing::warn!(
                    list = list_dn,
                    member = dn,
                    "directory list member or owner has no usable address; skipped"
                );
            }
        }
        self.cache.insert(cache_key, mail.clone());
        Ok(mail)
    }
}

async fn list(
    entry: &Entry,
    settings: &DirectorySettings,
    resolver: &mut DnResolver<'_>,
) -> Result<Option<List>, DirectoryError> {
    let dn = entry.dn();
    let mut written = entry
        .values(&settings.list_address_attribute)
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    let mut address = None;
    for value in written.by_ref() {
        match Mailbox::parse(value) {
            Ok(m) => {
                address = Some(m);
                break;
            }
            Err(e) => tracing::warn!(dn, value, error = %e,
                "ignoring an unusable list address in the directory"),
        }
    }
    let Some(address) = address else {
        tracing::warn!(dn, "directory list ignored: it has no usable address");
        return Ok(None);
    };
    let others: Vec<&str> = written.collect();
    if !others.is_empty() {
        tracing::warn!(dn, list = %address, ignored = ?others,
            "directory list has several addresses; only the first is used");
    }
    let mut members = Vec::new();
    for member in entry.values(&settings.list_member_attribute) {
        if let Some(m) = resolver.resolve(member, dn).await? {
            members.push(Address::Mailbox(m));
        }
    }
    members.extend(addresses(
        entry,
        entry.values(&settings.list_address_member_attribute),
        "list member",
    ));
    normalize(&mut members);
    // A list does not receive its own mail (a group that names itself as its member).
    members.retain(|m| !matches!(m, Address::Mailbox(mb) if key(mb) == key(&address)));
    if members.is_empty() {
        tracing::warn!(dn, list = %address, "directory list ignored: it has no usable member");
        return Ok(None);
    }
    let mut owner = None;
    for owner_dn in entry.values(&settings.list_owner_attribute) {
        if let Some(m) = resolver.resolve(owner_dn, dn).await? {
            owner = Some(m);
            break;
        }
    }
    let owner = match owner {
        Some(o) => o,
        None => match address.with_local_part(&format!("owner-{}", address.local_part())) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(dn, list = %address, error = %e,
                    "directory list ignored: it has no owner and owner-<list> is no address");
                return Ok(None);
            }
        },
    };
    let posting = match &settings.list_posting_attribute {
        Some(attribute) => posting(entry, attribute, &members, &owner),
        None => Posting::Anyone,
    };
    Ok(Some(List {
        address,
        owner,
        members,
        posting,
    }))
}

/// The posting policy of a list entry, by its `posting=` values (module documentation).
fn posting(entry: &Entry, attribute: &str, members: &[Address], owner: &Mailbox) -> Posting {
    let values: Vec<&str> = entry
        .values(attribute)
        .iter()
        .filter_map(|v| {
            let (k, rest) = v.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(DirectorySettings::POSTING_KEY)
                .then_some(rest.trim())
        })
        .collect();
    if values.is_empty() {
        return Posting::Anyone;
    }
    let (mut anyone, mut only_members, mut senders) = (false, false, Vec::new());
    for v in values {
        if v.eq_ignore_ascii_case("anyone") {
            anyone = true;
        } else if v.eq_ignore_ascii_case("members") {
            only_members = true;
        } else {
            match Mailbox::parse(v) {
                Ok(m) => senders.push(m),
                Err(e) => tracing::warn!(dn = entry.dn(), value = v, error = %e,
                    "ignoring an unusable posting policy in the directory \
                     (expected posting=anyone, posting=members or posting=<address>)"),
            }
        }
    }
    let member_mailboxes = || {
        members.iter().filter_map(|m| match m {
            Address::Mailbox(mb) => Some(mb.clone()),
            Address::X400(_) => None,
        })
    };
    let mut posting = match (only_members, senders.is_empty()) {
        (true, true) => return Posting::Members,
        (true, false) => {
            senders.extend(member_mailboxes());
            senders
        }
        (false, false) => senders,
        (false, true) if anyone => return Posting::Anyone,
        (false, true) => {
            tracing::warn!(
                dn = entry.dn(),
                "no usable posting policy in the directory: only the owner may post"
            );
            vec![owner.clone()]
        }
    };
    posting.sort_by_cached_key(|m| (key(m), m.to_string()));
    posting.dedup_by(|a, b| key(a) == key(b));
    Posting::Senders(posting)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use futures::executor::block_on;

    use super::*;

    /// A directory of fixed entries: subtree searches answer by filter, base searches by DN
    /// (a DN it does not know is `noSuchObject`); every search is recorded.
    #[derive(Default)]
    struct Fake {
        by_filter: HashMap<String, Vec<Entry>>,
        by_dn: HashMap<String, Entry>,
        fail_filter: Option<String>,
        fail_dn: Option<String>,
        searches: Mutex<Vec<(String, Scope, String)>>,
    }

    impl Fake {
        fn entries(mut self, filter: &str, entries: Vec<Entry>) -> Self {
            self.by_filter.insert(filter.to_owned(), entries);
            self
        }

        fn person(mut self, dn: &str, mail: &[&str]) -> Self {
            self.by_dn.insert(
                dn.to_lowercase(),
                Entry::new(dn).with("mail", mail.iter().copied()),
            );
            self
        }

        fn searches(&self) -> Vec<(String, Scope, String)> {
            self.searches.lock().expect("lock").clone()
        }
    }

    #[async_trait]
    impl Directory for Fake {
        async fn search(
            &self,
            base: &str,
            scope: Scope,
            filter: &str,
            _attributes: &[&str],
        ) -> Result<Vec<Entry>, DirectoryError> {
            self.searches
                .lock()
                .expect("lock")
                .push((base.to_owned(), scope, filter.to_owned()));
            if scope == Scope::Base {
                if self.fail_dn.as_deref() == Some(base) {
                    return Err(DirectoryError::Unavailable("connection lost".into()));
                }
                return match self.by_dn.get(&base.to_lowercase()) {
                    Some(e) => Ok(vec![e.clone()]),
                    None => Err(DirectoryError::Refused {
                        code: 32,
                        message: "search: no such object".into(),
                    }),
                };
            }
            if self.fail_filter.as_deref() == Some(filter) {
                return Err(DirectoryError::Refused {
                    code: 50,
                    message: "search: insufficient access".into(),
                });
            }
            Ok(self.by_filter.get(filter).cloned().unwrap_or_default())
        }
    }

    const BASE: &str = "dc=example,dc=com";
    const ALICE: &str = "uid=alice,ou=people,dc=example,dc=com";
    const BOB: &str = "uid=bob,ou=people,dc=example,dc=com";
    const CAROL: &str = "uid=carol,ou=people,dc=example,dc=com";
    const NOMAIL: &str = "uid=nomail,ou=people,dc=example,dc=com";
    const GONE: &str = "uid=gone,ou=people,dc=example,dc=com";

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).expect("address")
    }

    fn addr(s: &str) -> Address {
        Address::Mailbox(mb(s))
    }

    fn group(dn: &str) -> Entry {
        Entry::new(dn)
    }

    fn people() -> Fake {
        Fake::default()
            .person(ALICE, &["alice@example.org"])
            .person(BOB, &["not an address", "bob@example.org"])
            .person(CAROL, &["carol@example.org"])
            .person(NOMAIL, &[])
    }

    fn settings() -> DirectorySettings {
        DirectorySettings::new(BASE)
    }

    fn load_from(fake: &Fake) -> Result<DirectoryTables, DirectoryError> {
        block_on(load(fake, &settings()))
    }

    #[test]
    fn the_default_schema() {
        let s = settings();
        assert_eq!(s.base, BASE);
        assert_eq!(s.scope, Scope::Subtree);
        assert_eq!(
            s.domain_filter.as_deref(),
            Some("(objectClass=domainRelatedObject)")
        );
        assert_eq!(s.domain_attribute, "associatedDomain");
        assert_eq!(
            s.alias_filter.as_deref(),
            Some("(objectClass=nisMailAlias)")
        );
        assert_eq!(
            (
                s.alias_address_attribute.as_str(),
                s.alias_member_attribute.as_str()
            ),
            ("cn", "rfc822MailMember")
        );
        assert_eq!(
            s.list_filter.as_deref(),
            Some("(&(objectClass=groupOfNames)(mail=*))")
        );
        assert_eq!(
            [
                s.list_address_attribute.as_str(),
                s.list_member_attribute.as_str(),
                s.list_address_member_attribute.as_str(),
                s.list_owner_attribute.as_str(),
                s.mail_attribute.as_str(),
            ],
            ["mail", "member", "rfc822MailMember", "owner", "mail"]
        );
        assert_eq!(s.list_posting_attribute.as_deref(), Some("description"));
    }

    #[test]
    fn an_empty_directory_is_an_empty_snapshot() {
        let fake = Fake::default();
        let t = load_from(&fake).expect("loads");
        assert!(t.is_empty());
        assert_eq!(t, DirectoryTables::default());
        // One search per kind, under the base, with the default filters.
        let searches = fake.searches();
        assert_eq!(
            searches,
            [
                (
                    BASE.to_owned(),
                    Scope::Subtree,
                    DirectorySettings::DOMAIN_FILTER.to_owned()
                ),
                (
                    BASE.to_owned(),
                    Scope::Subtree,
                    DirectorySettings::ALIAS_FILTER.to_owned()
                ),
                (
                    BASE.to_owned(),
                    Scope::Subtree,
                    DirectorySettings::LIST_FILTER.to_owned()
                ),
            ]
        );
    }

    #[test]
    fn domains_are_normalized_and_bad_ones_skipped() {
        let fake = Fake::default().entries(
            DirectorySettings::DOMAIN_FILTER,
            vec![
                Entry::new("ou=b,dc=example,dc=com")
                    .with("associatedDomain", ["Example.ORG.", "bad domain", "b.test"]),
                Entry::new("ou=a,dc=example,dc=com")
                    .with("associateddomain", ["b.test", " bücher.test "]),
                Entry::new("ou=c,dc=example,dc=com"),
            ],
        );
        let t = load_from(&fake).expect("loads");
        assert_eq!(
            t.local_domains,
            ["b.test", "example.org", "xn--bcher-kva.test"]
        );
    }

    #[test]
    fn aliases_merge_by_address_and_skip_bad_values() {
        let fake = Fake::default().entries(
            DirectorySettings::ALIAS_FILTER,
            vec![
                Entry::new("cn=postmaster@example.org,ou=aliases,dc=example,dc=com")
                    .with("cn", ["postmaster@example.org", "postmaster"])
                    .with("rfc822MailMember", ["root@example.org", "no at sign"]),
                Entry::new("cn=PostMaster@Example.org,ou=more,dc=example,dc=com")
                    .with("cn", ["PostMaster@Example.org"])
                    .with("rfc822MailMember", ["ann@example.org", "ROOT@example.org"]),
                Entry::new("cn=empty@example.org,ou=aliases,dc=example,dc=com")
                    .with("cn", ["empty@example.org"])
                    .with("rfc822MailMember", ["bad member"]),
                Entry::new("cn=nameless,ou=aliases,dc=example,dc=com")
                    .with("cn", ["nameless"])
                    .with("rfc822MailMember", ["ann@example.org"]),
                Entry::new("cn=x400@example.org,ou=aliases,dc=example,dc=com")
                    .with("cn", ["x400@example.org"])
                    .with(
                        "rfc822MailMember",
                        ["/C=GB/ADMD= /PRMD=Isode/O=Isode/S=Kille/"],
                    ),
            ],
        );
        let t = load_from(&fake).expect("loads");
        let expected: BTreeMap<String, Vec<String>> = [
            (
                // The entry whose DN sorts first (ou=aliases) gives the written form.
                "postmaster@example.org".to_owned(),
                // root@ in both entries, compared ignoring case: the form that sorts first.
                vec!["ann@example.org".to_owned(), "ROOT@example.org".to_owned()],
            ),
            (
                "x400@example.org".to_owned(),
                vec!["/C=GB/ADMD= /PRMD=Isode/O=Isode/S=Kille/".to_owned()],
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(t.aliases, expected);
    }

    fn staff() -> Entry {
        group("cn=staff,ou=groups,dc=example,dc=com")
            .with("mail", ["staff@example.org"])
            .with("member", [BOB, ALICE, GONE, NOMAIL, "not a dn"])
            .with(
                "rfc822MailMember",
                ["dave@example.net", "Alice@example.org", "x y"],
            )
            .with("owner", [CAROL])
            .with("description", ["The staff list", "posting=members"])
    }

    #[test]
    fn a_list_resolves_its_members_and_owner() {
        let fake = people().entries(DirectorySettings::LIST_FILTER, vec![staff()]);
        let t = load_from(&fake).expect("loads");
        assert_eq!(
            t.lists,
            [List {
                address: mb("staff@example.org"),
                owner: mb("carol@example.org"),
                // alice twice, compared ignoring case: the form that sorts first is kept.
                members: vec![
                    addr("Alice@example.org"),
                    addr("bob@example.org"),
                    addr("dave@example.net"),
                ],
                posting: Posting::Members,
            }]
        );
        // Each member DN read once, with a base search.
        let base: Vec<String> = fake
            .searches()
            .into_iter()
            .filter(|(_, scope, _)| *scope == Scope::Base)
            .map(|(dn, _, filter)| {
                assert_eq!(filter, "(objectClass=*)");
                dn
            })
            .collect();
        assert_eq!(base, [BOB, ALICE, GONE, NOMAIL, "not a dn", CAROL]);
    }

    #[test]
    fn a_list_without_owner_is_owned_by_owner_list() {
        let entry = group("cn=crew,ou=groups,dc=example,dc=com")
            .with("mail", ["Crew@example.org"])
            .with("member", [ALICE])
            .with("owner", [GONE]);
        let fake = people().entries(DirectorySettings::LIST_FILTER, vec![entry]);
        let t = load_from(&fake).expect("loads");
        assert_eq!(t.lists.len(), 1);
        assert_eq!(t.lists[0].owner, mb("owner-Crew@example.org"));
        assert_eq!(t.lists[0].address.to_string(), "Crew@example.org");
        assert_eq!(t.lists[0].posting, Posting::Anyone);
    }

    #[test]
    fn lists_without_address_or_members_are_skipped() {
        let fake = people().entries(
            DirectorySettings::LIST_FILTER,
            vec![
                group("cn=a,ou=groups,dc=example,dc=com")
                    .with("mail", ["not an address"])
                    .with("member", [ALICE]),
                group("cn=b,ou=groups,dc=example,dc=com")
                    .with("mail", ["b@example.org"])
                    .with("member", [GONE, NOMAIL]),
                // Its only member is itself.
                group("cn=c,ou=groups,dc=example,dc=com")
                    .with("mail", ["c@example.org"])
                    .with("rfc822MailMember", ["C@example.org"]),
                group("cn=d,ou=groups,dc=example,dc=com")
                    .with("mail", ["d@example.org", "d2@example.org"])
                    .with("member", [ALICE]),
            ],
        );
        let t = load_from(&fake).expect("loads");
        let addresses: Vec<String> = t.lists.iter().map(|l| l.address.to_string()).collect();
        assert_eq!(addresses, ["d@example.org"]);
    }

    #[test]
    fn the_first_list_by_dn_wins_and_lists_shadow_aliases() {
        let fake = people()
            .entries(
                DirectorySettings::LIST_FILTER,
                vec![
                    group("cn=z,ou=groups,dc=example,dc=com")
                        .with("mail", ["team@example.org"])
                        .with("member", [BOB]),
                    group("cn=a,ou=groups,dc=example,dc=com")
                        .with("mail", ["TEAM@example.org"])
                        .with("member", [ALICE]),
                ],
            )
            .entries(
                DirectorySettings::ALIAS_FILTER,
                vec![
                    Entry::new("cn=team,ou=aliases,dc=example,dc=com")
                        .with("cn", ["Team@Example.org"])
                        .with("rfc822MailMember", ["carol@example.org"]),
                    Entry::new("cn=other,ou=aliases,dc=example,dc=com")
                        .with("cn", ["other@example.org"])
                        .with("rfc822MailMember", ["carol@example.org"]),
                ],
            );
        let t = load_from(&fake).expect("loads");
        assert_eq!(t.lists.len(), 1);
        assert_eq!(t.lists[0].address.to_string(), "TEAM@example.org");
        assert_eq!(t.lists[0].members, [addr("alice@example.org")]);
        assert_eq!(t.aliases.keys().collect::<Vec<_>>(), ["other@example.org"]);
    }

    fn posting_of(descriptions: &[&str]) -> Posting {
        let entry = group("cn=p,ou=groups,dc=example,dc=com")
            .with("mail", ["p@example.org"])
            .with("member", [ALICE, BOB])
            .with("description", descriptions.iter().copied());
        let fake = people().entries(DirectorySettings::LIST_FILTER, vec![entry]);
        let t = load_from(&fake).expect("loads");
        assert_eq!(t.lists.len(), 1);
        t.lists[0].posting.clone()
    }

    #[test]
    fn posting_policies() {
        assert_eq!(posting_of(&[]), Posting::Anyone);
        assert_eq!(posting_of(&["free text = not a policy"]), Posting::Anyone);
        assert_eq!(posting_of(&["posting=anyone"]), Posting::Anyone);
        assert_eq!(posting_of(&[" Posting = MEMBERS "]), Posting::Members);
        assert_eq!(
            posting_of(&["posting=anyone", "posting=members"]),
            Posting::Members
        );
        assert_eq!(
            posting_of(&["posting=zed@example.net", "posting=ann@example.net"]),
            Posting::Senders(vec![mb("ann@example.net"), mb("zed@example.net")])
        );
        assert_eq!(
            posting_of(&["posting=members", "posting=zed@example.net"]),
            Posting::Senders(vec![
                mb("alice@example.org"),
                mb("bob@example.org"),
                mb("zed@example.net"),
            ])
        );
        // A typo closes the list to all but its owner (owner-p@, as it names none).
        assert_eq!(
            posting_of(&["posting=memebrs"]),
            Posting::Senders(vec![mb("owner-p@example.org")])
        );
        // Without a posting attribute, anyone.
        let entry = group("cn=p,ou=groups,dc=example,dc=com")
            .with("mail", ["p@example.org"])
            .with("member", [ALICE])
            .with("description", ["posting=members"]);
        let fake = people().entries(DirectorySettings::LIST_FILTER, vec![entry]);
        let mut s = settings();
        s.list_posting_attribute = None;
        let t = block_on(load(&fake, &s)).expect("loads");
        assert_eq!(t.lists[0].posting, Posting::Anyone);
    }

    #[test]
    fn the_order_of_the_directory_does_not_change_the_snapshot() {
        let a = Entry::new("cn=a@example.org,dc=example,dc=com")
            .with("cn", ["a@example.org"])
            .with("rfc822MailMember", ["y@example.org", "x@example.org"]);
        let b = Entry::new("cn=b@example.org,dc=example,dc=com")
            .with("cn", ["b@example.org"])
            .with("rfc822MailMember", ["x@example.org"]);
        let l1 = group("cn=l1,dc=example,dc=com")
            .with("mail", ["l1@example.org"])
            .with("member", [BOB, ALICE]);
        let l2 = group("cn=l2,dc=example,dc=com")
            .with("mail", ["l2@example.org"])
            .with("member", [ALICE, BOB]);
        let d1 = Entry::new("ou=d1,dc=example,dc=com").with("associatedDomain", ["b.test"]);
        let d2 = Entry::new("ou=d2,dc=example,dc=com").with("associatedDomain", ["a.test"]);
        let one = people()
            .entries(DirectorySettings::ALIAS_FILTER, vec![a.clone(), b.clone()])
            .entries(DirectorySettings::LIST_FILTER, vec![l1.clone(), l2.clone()])
            .entries(
                DirectorySettings::DOMAIN_FILTER,
                vec![d1.clone(), d2.clone()],
            );
        let two = people()
            .entries(DirectorySettings::ALIAS_FILTER, vec![b, a])
            .entries(DirectorySettings::LIST_FILTER, vec![l2, l1])
            .entries(DirectorySettings::DOMAIN_FILTER, vec![d2, d1]);
        let (one, two) = (
            load_from(&one).expect("loads"),
            load_from(&two).expect("loads"),
        );
        assert_eq!(one, two);
        assert_eq!(
            one.aliases["a@example.org"],
            ["x@example.org", "y@example.org"]
        );
        assert_eq!(one.lists[0].members, one.lists[1].members);
    }

    #[test]
    fn a_failing_directory_fails_the_whole_snapshot() {
        let mut fake = people().entries(DirectorySettings::LIST_FILTER, vec![staff()]);
        fake.fail_filter = Some(DirectorySettings::ALIAS_FILTER.to_owned());
        assert_eq!(
            load_from(&fake),
            Err(DirectoryError::Refused {
                code: 50,
                message: "search: insufficient access".into()
            })
        );
        // A member that cannot be read (not one that does not exist) fails it too.
        let mut fake = people().entries(DirectorySettings::LIST_FILTER, vec![staff()]);
        fake.fail_dn = Some(ALICE.to_owned());
        assert_eq!(
            load_from(&fake),
            Err(DirectoryError::Unavailable("connection lost".into()))
        );
    }

    #[test]
    fn kinds_can_be_left_out_and_attributes_renamed() {
        let fake = people()
            .entries(
                "(objectClass=mailGroup)",
                vec![
                    group("cn=g,dc=example,dc=com")
                        .with("mailLocalAddress", ["g@example.org"])
                        .with("uniqueMember", [ALICE])
                        .with("manager", [BOB]),
                ],
            )
            .entries(
                DirectorySettings::ALIAS_FILTER,
                vec![
                    Entry::new("cn=x,dc=example,dc=com")
                        .with("cn", ["x@example.org"])
                        .with("rfc822MailMember", ["y@example.org"]),
                ],
            );
        let mut s = settings();
        s.domain_filter = None;
        s.alias_filter = None;
        s.list_filter = Some("(objectClass=mailGroup)".into());
        s.list_address_attribute = "mailLocalAddress".into();
        s.list_member_attribute = "uniqueMember".into();
        s.list_owner_attribute = "manager".into();
        let t = block_on(load(&fake, &s)).expect("loads");
        assert!(t.aliases.is_empty());
        assert_eq!(
            t.lists,
            [List {
                address: mb("g@example.org"),
                owner: mb("bob@example.org"),
                members: vec![addr("alice@example.org")],
                posting: Posting::Anyone,
            }]
        );
        assert!(
            fake.searches()
                .iter()
                .all(|(_, _, f)| f != DirectorySettings::ALIAS_FILTER
                    && f != DirectorySettings::DOMAIN_FILTER)
        );
    }
}
