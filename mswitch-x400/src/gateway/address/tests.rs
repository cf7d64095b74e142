use proptest::prelude::*;

use super::*;

const CONFIG: &str = r#"
gateway_domain = "x400.example.com"
gateway_or = "/C=GB/ADMD= /PRMD=Example/O=Internet/"

[[rule]]
domain = "example.com"
or = "/C=GB/ADMD= /PRMD=Example/"

[[rule]]
domain = "sales.example.com"
or = "/C=GB/ADMD= /PRMD=Example/O=Sales/"

[[rule]]
domain = "legacy.example.net"
or = "/C=US/ADMD=ATT/O=Legacy/"
direction = "822-to-x400"

[[rule]]
domain = "old.example.org"
or = "/C=US/ADMD=ATT/O=Old/"
direction = "x400-to-822"

[[rule]]
domain = "flat.example.org"
or = "/C=FR/ADMD= /PRMD=Flat/"
subdomains = false
"#;

fn tables() -> MixerTables {
    let config: MixerConfig = toml::from_str(CONFIG).expect("test configuration parses");
    MixerTables::new(config).expect("test configuration is valid")
}

fn mailbox(text: &str) -> Mailbox {
    Mailbox::parse(text).expect("test mailbox is valid")
}

fn or(text: &str) -> ORAddress {
    ORAddress::parse_std_or(text).expect("test O/R address is valid")
}

fn to_or(text: &str) -> ORAddress {
    tables()
        .to_or(&mailbox(text))
        .expect("mailbox maps to X.400")
}

fn to_mailbox(text: &str) -> Mailbox {
    tables()
        .to_mailbox(&or(text))
        .expect("O/R address maps to RFC 822")
}

/// Both ways: `mailbox` ⇄ `address`, and each maps back to itself.
fn assert_pair(mailbox_text: &str, address_text: &str) {
    let tables = tables();
    let m = mailbox(mailbox_text);
    let o = or(address_text);
    assert_eq!(tables.to_or(&m).as_ref(), Ok(&o), "{mailbox_text} to X.400");
    assert_eq!(
        tables.to_mailbox(&o).as_ref(),
        Ok(&m),
        "{address_text} to RFC 822"
    );
}

#[test]
fn configuration_from_toml() {
    let config: MixerConfig = toml::from_str(CONFIG).expect("parses");
    assert_eq!(config.gateway_domain, "x400.example.com");
    assert_eq!(config.rules.len(), 5);
    assert_eq!(config.rules[0].direction, RuleDirection::Both);
    assert!(config.rules[0].subdomains);
    assert_eq!(config.rules[2].direction, RuleDirection::Rfc822ToX400);
    assert_eq!(config.rules[3].direction, RuleDirection::X400ToRfc822);
    assert!(!config.rules[4].subdomains);
    let tables = MixerTables::new(config).expect("valid");
    assert_eq!(tables.gateway_domain().as_str(), "x400.example.com");
    assert_eq!(
        tables.gateway_or(),
        &or("/C=GB/ADMD= /PRMD=Example/O=Internet/")
    );
}

#[test]
fn configuration_without_rules() {
    let config: MixerConfig =
        toml::from_str("gateway_domain = \"gw.example\"\ngateway_or = \"/C=GB/ADMD= /PRMD=Gw/\"\n")
            .expect("parses");
    assert!(config.rules.is_empty());
    let tables = MixerTables::new(config).expect("valid");
    assert_eq!(
        tables.to_or(&mailbox("a@b.example")),
        Ok(or("/C=GB/ADMD= /PRMD=Gw/DD.RFC-822=a(a)b.example/"))
    );
}

#[test]
fn configuration_refuses_unknown_keys_and_directions() {
    let unknown =
        format!("{CONFIG}\n[[rule]]\ndomain = \"x.example\"\nor = \"/C=GB/ADMD= /\"\nprio = 1\n");
    assert!(toml::from_str::<MixerConfig>(&unknown).is_err());
    let direction = format!(
        "{CONFIG}\n[[rule]]\ndomain = \"x.example\"\nor = \"/C=GB/ADMD= /\"\ndirection = \"sideways\"\n"
    );
    assert!(toml::from_str::<MixerConfig>(&direction).is_err());
}

fn config(gateway_or: &str, rules: &[(&str, &str, RuleDirection)]) -> MixerConfig {
    MixerConfig {
        gateway_domain: "x400.example.com".to_owned(),
        gateway_or: gateway_or.to_owned(),
        rules: rules
            .iter()
            .map(|(domain, prefix, direction)| MixerRuleConfig {
                domain: (*domain).to_owned(),
                or_prefix: (*prefix).to_owned(),
                direction: *direction,
                subdomains: true,
            })
            .collect(),
    }
}

#[test]
fn configuration_errors() {
    let gw = "/C=GB/ADMD= /PRMD=Example/";
    let both = RuleDirection::Both;
    assert!(matches!(
        MixerTables::new(MixerConfig {
            gateway_domain: "bad..example".to_owned(),
            ..config(gw, &[])
        }),
        Err(MixerConfigError::GatewayDomain { .. })
    ));
    assert!(matches!(
        MixerTables::new(config("/C=GB/PRMD=Example/", &[])),
        Err(MixerConfigError::GatewayOr { .. })
    ));
    assert!(matches!(
        MixerTables::new(config("/C=GB/ADMD= /S=Smith/", &[])),
        Err(MixerConfigError::GatewayOrAttribute {
            attribute: ORAddressAttribute::Surname
        })
    ));
    assert!(matches!(
        MixerTables::new(config(gw, &[("-bad.example", gw, both)])),
        Err(MixerConfigError::RuleDomain { rule: 1, .. })
    ));
    assert!(matches!(
        MixerTables::new(config(gw, &[("a.example", "/O=Acme/", both)])),
        Err(MixerConfigError::RuleOr { rule: 1, .. })
    ));
    assert!(matches!(
        MixerTables::new(config(gw, &[("a.example", "/C=GB/ADMD= /DD.X=y/", both)])),
        Err(MixerConfigError::RuleOrAttribute {
            rule: 1,
            attribute: ORAddressAttribute::DomainDefinedAttributeType
        })
    ));
    assert!(matches!(
        MixerTables::new(config(
            gw,
            &[
                ("a.example", "/C=GB/ADMD= /PRMD=A/", both),
                ("A.Example", "/C=GB/ADMD= /PRMD=B/", both)
            ]
        )),
        Err(MixerConfigError::DuplicateDomain {
            rule: 2,
            first: 1,
            ..
        })
    ));
    // The prefixes are compared as X.400 compares values: without regard to case.
    assert!(matches!(
        MixerTables::new(config(
            gw,
            &[
                ("a.example", "/C=GB/ADMD= /PRMD=A/", both),
                ("b.example", "/C=gb/ADMD= /PRMD=a/", both)
            ]
        )),
        Err(MixerConfigError::DuplicatePrefix {
            rule: 2,
            first: 1,
            ..
        })
    ));
    // One rule each way for the same domain or prefix is no conflict.
    assert!(
        MixerTables::new(config(
            gw,
            &[
                (
                    "a.example",
                    "/C=GB/ADMD= /PRMD=A/",
                    RuleDirection::Rfc822ToX400
                ),
                (
                    "a.example",
                    "/C=GB/ADMD= /PRMD=B/",
                    RuleDirection::X400ToRfc822
                ),
                (
                    "b.example",
                    "/C=GB/ADMD= /PRMD=A/",
                    RuleDirection::X400ToRfc822
                ),
            ]
        ))
        .is_ok()
    );
}

/// RFC 2156 §4.1.3 and §4.4: an X.400 address no rule covers is its std-or text as a
/// quoted local part at the gateway, both ways.
#[test]
fn std_or_at_the_gateway() {
    assert_pair(
        r#""/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/"@x400.example.com"#,
        "/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/",
    );
    // The space in the blank ADMD makes RFC 5322 quoting necessary.
    assert_eq!(
        to_mailbox("/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/").to_string(),
        r#""/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/"@x400.example.com"#
    );
    // Without a space the std-or is a dot-atom and goes unquoted.
    assert_eq!(
        to_mailbox("/C=DE/ADMD=Telekom/O=Y/S=Smith/").to_string(),
        "/C=DE/ADMD=Telekom/O=Y/S=Smith/@x400.example.com"
    );
    // Written least significant first, as RFC 2156 texts often are, it is still read.
    assert_eq!(
        to_or(r#""/S=Smith/O=Y/PRMD=X/ADMD= /C=GB/"@X400.Example.COM"#),
        or("/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/")
    );
}

#[test]
fn gateway_domain_needs_a_std_or_local_part() {
    let tables = tables();
    assert!(matches!(
        tables.to_or(&mailbox("postmaster@x400.example.com")),
        Err(MappingError::NotStdOr { .. })
    ));
    assert!(matches!(
        tables.to_or(&mailbox(r#""/C=GB/XX=1/"@x400.example.com"#)),
        Err(MappingError::BadStdOr {
            source: StdOrError::UnknownKeyword { .. },
            ..
        })
    ));
}

/// RFC 2156 §4.1.2 `encoded-pn` in the local part under a rule.
#[test]
fn personal_names_under_a_rule() {
    assert_pair(
        "Jane.Smith@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Smith/G=Jane/",
    );
    assert_pair(
        "J.Smith@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Smith/I=J/",
    );
    assert_pair(
        "Marshall.M.T.Rose@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Rose/G=Marshall/I=MT/",
    );
    assert_pair(
        "postmaster@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=postmaster/",
    );
    assert_pair(
        "J.R.R.Tolkien@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Tolkien/I=JRR/",
    );
}

/// RFC 2156 §3.4: characters outside PrintableString in the local part are escaped.
#[test]
fn printable_mapping_in_personal_names() {
    assert_pair(
        "jane_smith@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=jane(u)smith/",
    );
    assert_pair(
        r#""Jane Smith"@sales.example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Jane Smith/",
    );
    assert_pair(
        r#""o(r)ange"@sales.example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=o(l)r(r)ange/",
    );
    assert_pair(
        "info+news@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=info+news/",
    );
    assert_pair(
        "a#b@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=a(035)b/",
    );
}

/// A std-or local part under a rule adds its attributes to the rule's prefix; the way
/// back writes what is left over the rule's domain.
#[test]
fn std_or_local_part_under_a_rule() {
    assert_eq!(
        to_or(r#""/S=Smith/G=Jane/"@sales.example.com"#),
        or("/C=GB/ADMD= /PRMD=Example/O=Sales/S=Smith/G=Jane/")
    );
    assert_pair(
        r#""/CN=Jane Smith/"@sales.example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Sales/CN=Jane Smith/",
    );
    assert_pair(
        "/S=Smith/GQ=Jr/@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Smith/GQ=Jr/",
    );
    // A one-letter given name would read back as an initial: std-or keeps it.
    assert_pair(
        "/S=Smith/G=J/@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=Smith/G=J/",
    );
    // A surname with a dot would read back as a given name and a surname.
    assert_pair(
        r#""/S=St. John/"@sales.example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Sales/S=St. John/",
    );
    // An O/R value that is not a DNS label stays in the local part.
    assert_pair(
        r#""/O=Acme Ltd/S=Smith/"@example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Acme Ltd/S=Smith/",
    );
}

/// RFC 2156 §4.3: labels left of a rule's domain are O, then OUs, and back.
#[test]
fn subdomains_and_organizational_units() {
    assert_pair(
        "Jane.Smith@research.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=research/S=Smith/G=Jane/",
    );
    assert_pair(
        "Jane.Smith@lab.research.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=research/OU=lab/S=Smith/G=Jane/",
    );
    assert_pair(
        "Jane.Smith@europe.sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/OU=europe/S=Smith/G=Jane/",
    );
    assert_pair(
        "js@d.c.b.a.sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Sales/OU=a/OU=b/OU=c/OU=d/S=js/",
    );
    // Case is kept in both directions.
    assert_pair(
        "js@Lab.Research.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Research/OU=Lab/S=js/",
    );
    // Units after one that is no label stay in the local part.
    assert_pair(
        r#""/OU=Team 1/OU=x/S=js/"@sales.example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Sales/OU=Team 1/OU=x/S=js/",
    );
    assert_pair(
        r#""/OU=Team 1/S=js/"@b.a.sales.example.com"#,
        "/C=GB/ADMD= /PRMD=Example/O=Sales/OU=a/OU=b/OU=Team 1/S=js/",
    );
}

/// More labels than X.411 allows units (4) fall back to the RFC-822 attribute.
#[test]
fn too_many_subdomains() {
    assert_pair(
        "js@e.d.c.b.a.sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=js(a)e.d.c.b.a.sales.example.com/",
    );
}

/// An internationalized domain's labels are carried as A-labels.
#[test]
fn idn_labels() {
    let tables = tables();
    let m = mailbox("js@Bücher.example.com");
    let o = tables.to_or(&m).expect("maps");
    assert_eq!(o, or("/C=GB/ADMD= /PRMD=Example/O=xn--bcher-kva/S=js/"));
    assert_eq!(tables.to_mailbox(&o), Ok(m));
}

#[test]
fn most_specific_rule_wins() {
    // Longest domain suffix: sales.example.com, not example.com (which would give O=sales).
    assert_eq!(
        to_or("js@sales.example.com"),
        or("/C=GB/ADMD= /PRMD=Example/O=Sales/S=js/")
    );
    // Longest O/R prefix: O=Sales is rule 2's, deeper than rule 1's PRMD.
    assert_eq!(
        to_mailbox("/C=GB/ADMD= /PRMD=Example/O=Sales/S=js/").to_string(),
        "js@sales.example.com"
    );
    // Prefixes match as X.400 values do: without regard to case or extra spaces.
    assert_eq!(
        to_mailbox("/C=gb/ADMD= /PRMD=EXAMPLE/O=sales /S=js/").to_string(),
        "js@sales.example.com"
    );
    // The order of the rules in the table does not matter.
    let mut reversed: MixerConfig = toml::from_str(CONFIG).expect("parses");
    reversed.rules.reverse();
    let reversed = MixerTables::new(reversed).expect("valid");
    assert_eq!(
        reversed.to_or(&mailbox("js@sales.example.com")),
        Ok(or("/C=GB/ADMD= /PRMD=Example/O=Sales/S=js/"))
    );
    assert_eq!(
        reversed
            .to_mailbox(&or("/C=GB/ADMD= /PRMD=Example/O=Sales/S=js/"))
            .map(|m| m.to_string()),
        Ok("js@sales.example.com".to_owned())
    );
}

#[test]
fn prefix_levels_must_agree() {
    // A PRMD that rule 1 does not name: the address is not under /C=GB/ADMD= /PRMD=Example/.
    assert_eq!(
        to_mailbox("/C=GB/ADMD= /PRMD=Other/S=js/").to_string(),
        r#""/C=GB/ADMD= /PRMD=Other/S=js/"@x400.example.com"#
    );
    // Nor is an address without the PRMD.
    assert_eq!(
        to_mailbox("/C=GB/ADMD= /S=js/").to_string(),
        r#""/C=GB/ADMD= /S=js/"@x400.example.com"#
    );
}

#[test]
fn one_way_rules() {
    // 822 to X.400 only: maps there, but not back.
    assert_eq!(
        to_or("js@legacy.example.net"),
        or("/C=US/ADMD=ATT/O=Legacy/S=js/")
    );
    assert_eq!(
        to_mailbox("/C=US/ADMD=ATT/O=Legacy/S=js/").to_string(),
        "/C=US/ADMD=ATT/O=Legacy/S=js/@x400.example.com"
    );
    // X.400 to 822 only: maps back, but the domain is not mapped to X.400.
    assert_eq!(
        to_mailbox("/C=US/ADMD=ATT/O=Old/S=js/").to_string(),
        "js@old.example.org"
    );
    assert_eq!(
        to_or("js@old.example.org"),
        or("/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=js(a)old.example.org/")
    );
}

#[test]
fn rule_without_subdomains() {
    assert_pair("js@flat.example.org", "/C=FR/ADMD= /PRMD=Flat/S=js/");
    assert_eq!(
        to_or("js@sub.flat.example.org"),
        or("/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=js(a)sub.flat.example.org/")
    );
    // The way back writes no subdomain either: the O stays in the local part.
    assert_pair(
        "/O=sub/S=js/@flat.example.org",
        "/C=FR/ADMD= /PRMD=Flat/O=sub/S=js/",
    );
}

/// RFC 2156 §4.4 and §3.4: RFC 822 users outside the rules get the gateway's O/R address
/// and the RFC-822 attribute, with `(a)` `(p)` `(b)` `(q)` and `(ddd)` escapes.
#[test]
fn rfc822_attribute() {
    assert_pair(
        "Jane_Doe@isp.example.net",
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=Jane(u)Doe(a)isp.example.net/",
    );
    assert_pair(
        "user%relay!host@isp.example.net",
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=user(p)relay(b)host(a)isp.example.net/",
    );
    assert_pair(
        r#""a\"b"@isp.example.net"#,
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=(q)a(092)(q)b(q)(a)isp.example.net/",
    );
    assert_pair(
        "user@[192.0.2.1]",
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=user(a)(091)192.0.2.1(093)/",
    );
    // The domain is carried in its A-label form.
    let m = mailbox("jo@bücher.example");
    let o = tables().to_or(&m).expect("maps");
    assert_eq!(
        o,
        or("/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=jo(a)xn--bcher-kva.example/")
    );
    assert_eq!(tables().to_mailbox(&o), Ok(m));
}

/// A local part a rule cannot map takes the RFC-822 attribute instead.
#[test]
fn unmappable_local_parts_under_a_rule() {
    // Not an encoded-pn: a two-letter part after the given name.
    assert_pair(
        "jo.ann.smith@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=jo.ann.smith(a)sales.example.com/",
    );
    // A surname longer than X.411's 40 characters.
    let long = "s".repeat(41);
    assert_pair(
        &format!("{long}@sales.example.com"),
        &format!("/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822={long}(a)sales.example.com/"),
    );
    // A std-or local part naming an attribute the rule fixes already.
    assert_pair(
        "/O=Other/S=js/@sales.example.com",
        "/C=GB/ADMD= /PRMD=Example/O=Internet/DD.RFC-822=$/O$=Other$/S$=js$/(a)sales.example.com/",
    );
}

#[test]
fn rfc822_attribute_from_other_gateways() {
    assert_eq!(
        to_mailbox("/C=US/ADMD=X/PRMD=Gw/DD.RFC-822=bob(a)example.org/").to_string(),
        "bob@example.org"
    );
    // The attribute type is matched without regard to case.
    assert_eq!(
        to_mailbox("/C=US/ADMD=X/DD.rfc-822=bob(A)example.org/").to_string(),
        "bob@example.org"
    );
}

#[test]
fn bad_rfc822_attributes() {
    let tables = tables();
    assert!(matches!(
        tables.to_mailbox(&or("/C=US/ADMD=X/DD.RFC-822=bob(x)example.org/")),
        Err(MappingError::Rfc822AttributeEncoding { .. })
    ));
    assert!(matches!(
        tables.to_mailbox(&or("/C=US/ADMD=X/DD.RFC-822=no at sign/")),
        Err(MappingError::Rfc822AttributeMailbox { .. })
    ));
}

#[test]
fn bounds() {
    let tables = tables();
    // 128 characters is the most a domain-defined attribute value may hold; the `@`
    // takes three, `(a)`.
    let local = "a".repeat(64);
    let fits = format!("{local}@{}.example.net", "b".repeat(49));
    let fitted = tables.to_or(&mailbox(&fits));
    assert!(fitted.is_ok(), "{fitted:?}");
    let over = format!("{local}@{}.example.net", "b".repeat(50));
    assert!(matches!(
        tables.to_or(&mailbox(&over)),
        Err(MappingError::Rfc822TooLong { length: 129, .. })
    ));
    // Escapes count in the mapped length.
    let escaped = format!("{}@isp.example.net", "_".repeat(40));
    assert!(matches!(
        tables.to_or(&mailbox(&escaped)),
        Err(MappingError::Rfc822TooLong { length: 138, .. })
    ));
    // A std-or over 64 octets has no RFC 5321 local part.
    let long = or("/C=GB/ADMD= /PRMD=Elsewhere/O=Organisation/OU=Unit/S=Smith/G=Jane/");
    assert!(matches!(
        tables.to_mailbox(&long),
        Err(MappingError::LocalPartTooLong { length: 66, .. })
    ));
    // An invalid O/R address is refused as such.
    assert!(matches!(
        tables.to_mailbox(&ORAddress::default()),
        Err(MappingError::InvalidORAddress {
            source: StdOrError::Empty
        })
    ));
}

#[test]
fn non_ascii_local_parts_are_refused() {
    assert!(matches!(
        tables().to_or(&mailbox("jürgen@sales.example.com")),
        Err(MappingError::NonAsciiLocalPart { .. })
    ));
    assert!(matches!(
        tables().to_or(&mailbox("jürgen@isp.example.net")),
        Err(MappingError::NonAsciiLocalPart { .. })
    ));
}

/// A local part RFC 5322 must quote: written with its quotes in RFC 822, without them in
/// X.400.
#[test]
fn quoting() {
    assert_eq!(quote_local_part("Jane.Smith"), "Jane.Smith");
    assert_eq!(quote_local_part("/S=Smith/"), "/S=Smith/");
    assert_eq!(quote_local_part("Jane Smith"), r#""Jane Smith""#);
    assert_eq!(quote_local_part(".x"), r#"".x""#);
    assert_eq!(quote_local_part(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(
        to_mailbox("/C=GB/ADMD= /PRMD=Example/O=Sales/S=Jane Smith/").to_string(),
        r#""Jane Smith"@sales.example.com"#
    );
}

fn mapped_domain() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "sales.example.com",
        "example.com",
        "lab.research.example.com",
        "flat.example.org",
        "isp.example.net",
    ])
}

proptest! {
    /// Printable ASCII local parts round-trip through X.400, by a rule or the RFC-822
    /// attribute.
    #[test]
    fn printable_local_parts_round_trip(local in "[ -~]{1,24}", domain in mapped_domain()) {
        let Ok(m) = Mailbox::parse(&format!("{}@{domain}", quote_local_part(&local))) else {
            return Ok(());
        };
        prop_assume!(!looks_like_std_or(&local));
        let tables = tables();
        match tables.to_or(&m) {
            Ok(o) => {
                prop_assert_eq!(tables.to_mailbox(&o), Ok(m));
            }
            Err(MappingError::Rfc822TooLong { .. }) => {}
            Err(other) => prop_assert!(false, "{m}: {other}"),
        }
    }

    /// Whatever the mailbox, mapping it (and back) does not panic.
    #[test]
    fn arbitrary_mailboxes_never_panic(text in "\\PC{1,80}", tail in "[a-z.@\"\\\\/=]{0,20}") {
        let tables = tables();
        for candidate in [text.clone(), format!("{text}@sales.example.com"), format!("{tail}{text}")] {
            if let Ok(m) = Mailbox::parse(&candidate)
                && let Ok(o) = tables.to_or(&m)
            {
                let _ = tables.to_mailbox(&o);
            }
        }
    }

    /// O/R addresses come back from RFC 822 as they went, whichever way they are mapped.
    #[test]
    fn or_addresses_round_trip(
        country in prop::sample::select(vec!["GB", "US", "FR"]),
        prmd in prop::option::of(prop::sample::select(vec!["Example", "Flat", "Other", "EXAMPLE"])),
        organization in prop::option::of("[A-Za-z][A-Za-z0-9 -]{0,8}"),
        units in prop::collection::vec("[A-Za-z0-9][A-Za-z0-9 ]{0,6}", 0..3),
        surname in prop::option::of("[A-Za-z .'()-]{1,10}"),
        given in prop::option::of("[A-Za-z.]{1,6}"),
        initials in prop::option::of("[A-Z]{1,3}"),
    ) {
        let mut o = ORAddress::default();
        o.country = Some(country.to_owned());
        o.admd = Some(" ".to_owned());
        o.prmd = prmd.map(str::to_owned);
        o.organization = organization;
        o.organizational_units = units;
        if let Some(surname) = surname {
            let mut name = mswitch_core::address::PersonalName::new(surname);
            name.given_name = given;
            name.initials = initials;
            o.personal_name = Some(name);
        }
        prop_assume!(o.validate().is_ok());
        let tables = tables();
        match tables.to_mailbox(&o) {
            Ok(m) => {
                let back = tables.to_or(&m);
                prop_assert!(
                    back.as_ref().is_ok_and(|back| back.matches(&o)),
                    "{o} -> {m} -> {back:?}"
                );
            }
            Err(MappingError::LocalPartTooLong { .. } | MappingError::Unrepresentable { .. }) => {}
            Err(other) => prop_assert!(false, "{o}: {other}"),
        }
    }
}
