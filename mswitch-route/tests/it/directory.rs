//! Directory configuration against a real OpenLDAP slapd on loopback: the default schema
//! (domainRelatedObject, nisMailAlias, groupOfNames + extensibleObject), member and owner DNs
//! resolved, unusable values skipped, a change made with ldapmodify seen by the next load, a
//! directory that is down or refuses the bind.

use std::time::Duration;

use mswitch_core::address::{Address, Mailbox};
use mswitch_route::directory::{DirectorySettings, DirectoryTables, load};
use mswitch_route::laser::{DirectoryError, LdapConfig, LdapDirectory};
use mswitch_route::list::{List, Posting};
use mswitch_testkit::free_port;
use mswitch_testkit::slapd::Slapd;

const SUFFIX: &str = "dc=example,dc=com";

/// Domains, aliases, people and lists of example.org, with a few values that cannot be used.
const CONTENT: &str = "\
dn: ou=domains,dc=example,dc=com
objectClass: organizationalUnit
objectClass: domainRelatedObject
ou: domains
associatedDomain: example.org
associatedDomain: Hosted.Example.NET.
associatedDomain: not a domain

dn: ou=aliases,dc=example,dc=com
objectClass: organizationalUnit
ou: aliases

dn: cn=postmaster@example.org,ou=aliases,dc=example,dc=com
objectClass: nisMailAlias
cn: postmaster@example.org
rfc822MailMember: bob@example.org
rfc822MailMember: alice@example.org
rfc822MailMember: not an address

dn: cn=root,ou=aliases,dc=example,dc=com
objectClass: nisMailAlias
cn: root
rfc822MailMember: alice@example.org

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@example.org

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Example
mail: bob@example.org

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Example
mail: carol@example.org

dn: uid=nomail,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: nomail
cn: No Mail
sn: Example

dn: cn=staff,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: extensibleObject
cn: staff
mail: staff@example.org
member: uid=alice,ou=people,dc=example,dc=com
member: uid=bob,ou=people,dc=example,dc=com
member: uid=gone,ou=people,dc=example,dc=com
member: uid=nomail,ou=people,dc=example,dc=com
member: cn=all,ou=groups,dc=example,dc=com
rfc822MailMember: dave@example.net
owner: uid=carol,ou=people,dc=example,dc=com
description: The staff of example.org
description: posting=members

dn: cn=all,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: extensibleObject
cn: all
mail: all@example.org
member: cn=staff,ou=groups,dc=example,dc=com
member: uid=carol,ou=people,dc=example,dc=com

dn: cn=unix,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: unix
member: uid=alice,ou=people,dc=example,dc=com

";

fn start() -> Slapd {
    Slapd::start(free_port(), &format!("{}{CONTENT}", Slapd::BASE_LDIF))
}

fn ldap(url: String) -> LdapDirectory {
    LdapDirectory::new(
        LdapConfig::new(url).timeouts(Duration::from_secs(2), Duration::from_secs(2)),
    )
    .expect("valid LDAP configuration")
}

fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn addr(s: &str) -> Address {
    Address::Mailbox(mb(s))
}

/// What [`CONTENT`] gives.
fn expected() -> DirectoryTables {
    DirectoryTables {
        local_domains: vec!["example.org".into(), "hosted.example.net".into()],
        aliases: [(
            "postmaster@example.org".to_owned(),
            vec!["alice@example.org".to_owned(), "bob@example.org".to_owned()],
        )]
        .into_iter()
        .collect(),
        lists: vec![
            List {
                address: mb("all@example.org"),
                owner: mb("owner-all@example.org"),
                members: vec![addr("carol@example.org"), addr("staff@example.org")],
                posting: Posting::Anyone,
            },
            List {
                address: mb("staff@example.org"),
                owner: mb("carol@example.org"),
                members: vec![
                    addr("alice@example.org"),
                    addr("all@example.org"),
                    addr("bob@example.org"),
                    addr("dave@example.net"),
                ],
                posting: Posting::Members,
            },
        ],
    }
}

#[tokio::test]
async fn reads_domains_aliases_and_lists() {
    let slapd = start();
    let dir = ldap(slapd.url());
    let tables = load(&dir, &DirectorySettings::new(SUFFIX))
        .await
        .expect("loads");
    assert_eq!(tables, expected());
    // The same content read again is the same snapshot, over the pooled connection.
    let again = load(&dir, &DirectorySettings::new(SUFFIX))
        .await
        .expect("loads");
    assert_eq!(again, tables);
    assert_eq!(dir.connections_opened(), 1);
}

#[tokio::test]
async fn the_base_and_filters_narrow_what_is_read() {
    let slapd = start();
    let dir = ldap(slapd.url());
    let mut settings = DirectorySettings::new("ou=groups,dc=example,dc=com");
    settings.list_filter = Some("(&(objectClass=groupOfNames)(mail=staff@example.org))".into());
    settings.list_posting_attribute = None;
    let tables = load(&dir, &settings).await.expect("loads");
    assert!(tables.local_domains.is_empty());
    assert!(tables.aliases.is_empty());
    assert_eq!(tables.lists.len(), 1);
    assert_eq!(tables.lists[0].address, mb("staff@example.org"));
    assert_eq!(tables.lists[0].posting, Posting::Anyone);
}

#[tokio::test]
async fn a_change_is_seen_by_the_next_load() {
    let slapd = start();
    let dir = ldap(slapd.url());
    let settings = DirectorySettings::new(SUFFIX);
    let before = load(&dir, &settings).await.expect("loads");
    assert_eq!(before, expected());
    slapd.ldapmodify(
        "dn: cn=sales@example.org,ou=aliases,dc=example,dc=com
changetype: add
objectClass: nisMailAlias
cn: sales@example.org
rfc822MailMember: carol@example.org

dn: cn=staff,ou=groups,dc=example,dc=com
changetype: modify
delete: member
member: uid=bob,ou=people,dc=example,dc=com
-
replace: description
description: posting=anyone
-

dn: ou=domains,dc=example,dc=com
changetype: modify
add: associatedDomain
associatedDomain: new.example.org
-
",
    );
    let after = load(&dir, &settings).await.expect("loads");
    assert_ne!(after, before);
    let mut want = expected();
    want.local_domains.push("new.example.org".into());
    want.aliases
        .insert("sales@example.org".into(), vec!["carol@example.org".into()]);
    want.lists[1]
        .members
        .retain(|m| *m != addr("bob@example.org"));
    want.lists[1].posting = Posting::Anyone;
    assert_eq!(after, want);
}

#[tokio::test]
async fn a_directory_that_is_down_or_refuses_the_bind_is_an_error() {
    let mut slapd = start();
    let settings = DirectorySettings::new(SUFFIX);
    let bound = LdapDirectory::new(
        LdapConfig::new(slapd.url())
            .bind(Slapd::ROOT_DN, Slapd::ROOT_PASSWORD)
            .timeouts(Duration::from_secs(2), Duration::from_secs(2)),
    )
    .expect("valid");
    assert_eq!(load(&bound, &settings).await, Ok(expected()));
    let refused = LdapDirectory::new(
        LdapConfig::new(slapd.url())
            .bind(Slapd::ROOT_DN, "wrong")
            .timeouts(Duration::from_secs(2), Duration::from_secs(2)),
    )
    .expect("valid");
    let r = load(&refused, &settings).await;
    assert!(
        matches!(r, Err(DirectoryError::Refused { code: 49, .. })),
        "invalidCredentials: {r:?}"
    );
    slapd.stop();
    let r = load(&bound, &settings).await;
    assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
    slapd.restart();
    assert_eq!(load(&bound, &settings).await, Ok(expected()));
}
