//! What a peer's certificate says about its holder, for SASL EXTERNAL (RFC 4422 Appendix A)
//! and for logs: the subject common name, the DNS names and e-mail addresses of the
//! subjectAltName extension (RFC 5280 §4.2.1.6), and the SHA-256 fingerprint.
//!
//! The names are read with a small DER reader (X.509, RFC 5280 §4.1) that takes only what it
//! needs and gives up (`None`, an empty list) on anything it does not expect; it never panics.
//! It reads certificates rustls has already verified (for a server: against the CA of
//! [`ClientCertAuth::Optional`]), so a name found here was vouched for by that CA.
//!
//! # The name SASL EXTERNAL uses
//! [`PeerIdentity::name`]: the subject common name (as Dovecot's default
//! `cert_username_field = commonName`), else the first DNS name of subjectAltName. A subject
//! with two common names has none here (which one would be meant is not clear), and a name
//! that is empty, longer than 255 octets or holds a control character is ignored. A driver
//! with another policy (the e-mail address, a table of fingerprints) builds it from the fields.
//!
//! [`ClientCertAuth::Optional`]: crate::tls::ClientCertAuth::Optional

use ring::digest;

use crate::sasl::check_identity;

/// DER tags used here (RFC 5280 §4.1, X.680).
mod tag {
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const OCTET_STRING: u8 = 0x04;
    pub(super) const OID: u8 = 0x06;
    pub(super) const UTF8_STRING: u8 = 0x0c;
    pub(super) const PRINTABLE_STRING: u8 = 0x13;
    pub(super) const IA5_STRING: u8 = 0x16;
    pub(super) const BMP_STRING: u8 = 0x1e;
    pub(super) const SEQUENCE: u8 = 0x30;
    pub(super) const SET: u8 = 0x31;
    /// `[0] EXPLICIT Version` of TBSCertificate.
    pub(super) const VERSION: u8 = 0xa0;
    /// `[3] EXPLICIT Extensions` of TBSCertificate.
    pub(super) const EXTENSIONS: u8 = 0xa3;
    /// `rfc822Name [1] IA5String` of GeneralName (implicit).
    pub(super) const RFC822_NAME: u8 = 0x81;
    /// `dNSName [2] IA5String` of GeneralName (implicit).
    pub(super) const DNS_NAME: u8 = 0x82;
}

/// id-at-commonName, 2.5.4.3 (X.520), DER content of the OID.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-ce-subjectAltName, 2.5.29.17 (RFC 5280 §4.2.1.6).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Most subjectAltName entries kept (a certificate with more is not a user's).
pub const MAX_ALT_NAMES: usize = 100;

/// What a peer certificate (the end-entity one) says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// SHA-256 of the certificate's DER, in lowercase hex without separators (64 characters):
    /// what `openssl x509 -fingerprint -sha256` shows, without the colons.
    pub fingerprint_sha256: String,
    /// The subject's common name, if there is exactly one and it is usable (see the module
    /// documentation).
    pub common_name: Option<String>,
    /// The `dNSName` entries of subjectAltName, in order, lowercased.
    pub dns_names: Vec<String>,
    /// The `rfc822Name` entries (e-mail addresses) of subjectAltName, in order.
    pub email_addresses: Vec<String>,
}

impl PeerIdentity {
    /// Reads a DER certificate. The fingerprint is always there; the names are those that
    /// could be read.
    pub fn from_certificate(der: &[u8]) -> Self {
        let digest = digest::digest(&digest::SHA256, der);
        let fingerprint_sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let mut identity = PeerIdentity {
            fingerprint_sha256,
            common_name: None,
            dns_names: Vec::new(),
            email_addresses: Vec::new(),
        };
        // Whatever cannot be read is left empty.
        let _ = identity.read_names(der);
        identity
    }

    /// The identity for SASL EXTERNAL: the common name, else the first DNS name.
    pub fn name(&self) -> Option<&str> {
        self.common_name
            .as_deref()
            .or_else(|| self.dns_names.first().map(String::as_str))
    }

    /// Certificate → TBSCertificate → subject and extensions (RFC 5280 §4.1).
    fn read_names(&mut self, der: &[u8]) -> Option<()> {
        let certificate = Der::new(der).expect(tag::SEQUENCE)?;
        let mut tbs = Der::new(Der::new(certificate).expect(tag::SEQUENCE)?);
        if tbs.peek_tag() == Some(tag::VERSION) {
            tbs.any()?;
        }
        tbs.expect(tag::INTEGER)?; // serialNumber
        tbs.expect(tag::SEQUENCE)?; // signature
        tbs.expect(tag::SEQUENCE)?; // issuer
        tbs.expect(tag::SEQUENCE)?; // validity
        let subject = tbs.expect(tag::SEQUENCE)?;
        self.common_name = common_name(subject);
        tbs.expect(tag::SEQUENCE)?; // subjectPublicKeyInfo
        // issuerUniqueID [1], subjectUniqueID [2], then extensions [3].
        while let Some((t, content)) = tbs.any() {
            if t == tag::EXTENSIONS {
                self.read_extensions(Der::new(content).expect(tag::SEQUENCE)?);
            }
        }
        Some(())
    }

    /// Extensions ::= SEQUENCE OF Extension { extnID, critical DEFAULT FALSE, extnValue }.
    fn read_extensions(&mut self, extensions: &[u8]) -> Option<()> {
        let mut extensions = Der::new(extensions);
        while let Some(extension) = extensions.expect(tag::SEQUENCE) {
            let mut extension = Der::new(extension);
            if extension.expect(tag::OID)? != OID_SUBJECT_ALT_NAME {
                continue;
            }
            let value = loop {
                match extension.any()? {
                    (tag::OCTET_STRING, value) => break value,
                    _ => continue, // critical
                }
            };
            let mut names = Der::new(Der::new(value).expect(tag::SEQUENCE)?);
            let mut kept = 0;
            while let Some((t, name)) = names.any() {
                if kept == MAX_ALT_NAMES {
                    break;
                }
                let Some(name) = std::str::from_utf8(name).ok().filter(|n| n.is_ascii()) else {
                    continue;
                };
                if check_identity(name).is_err() {
                    continue;
                }
                match t {
                    tag::DNS_NAME => self.dns_names.push(name.to_ascii_lowercase()),
                    tag::RFC822_NAME => self.email_addresses.push(name.to_owned()),
                    _ => continue,
                }
                kept += 1;
            }
        }
        Some(())
    }
}

/// The one usable common name of a Name (RDNSequence: SEQUENCE OF SET OF
/// AttributeTypeAndValue { type, value }).
fn common_name(subject: &[u8]) -> Option<String> {
    let mut found = None;
    let mut rdns = Der::new(subject);
    while let Some(rdn) = rdns.expect(tag::SET) {
        let mut attributes = Der::new(rdn);
        while let Some(attribute) = attributes.expect(tag::SEQUENCE) {
            let mut attribute = Der::new(attribute);
            if attribute.expect(tag::OID)? != OID_COMMON_NAME {
                continue;
            }
            if found.is_some() {
                // Two common names: ambiguous.
                return None;
            }
            found = Some(directory_string(attribute.any()?)?);
        }
    }
    found.filter(|name: &String| check_identity(name).is_ok())
}

/// A DirectoryString (X.520) in one of the forms certificates use.
fn directory_string((t, content): (u8, &[u8])) -> Option<String> {
    match t {
        tag::UTF8_STRING | tag::PRINTABLE_STRING | tag::IA5_STRING => {
            std::str::from_utf8(content).ok().map(str::to_owned)
        }
        tag::BMP_STRING if content.len() % 2 == 0 => {
            let units = content
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

/// A cursor over DER elements with one-octet tags and definite lengths.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element's tag and content; `None` at the end or on anything malformed (the
    /// cursor then stays at the end).
    fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let parsed = Self::split(self.rest);
        self.rest = match parsed {
            Some((_, _, rest)) => rest,
            None => &[],
        };
        parsed.map(|(t, content, _)| (t, content))
    }

    /// The next element's content if its tag is `expected`; `None` (and the cursor at the
    /// end) otherwise.
    fn expect(&mut self, expected: u8) -> Option<&'a [u8]> {
        match self.any() {
            Some((t, content)) if t == expected => Some(content),
            _ => {
                self.rest = &[];
                None
            }
        }
    }

    fn split(bytes: &'a [u8]) -> Option<(u8, &'a [u8], &'a [u8])> {
        let (&t, rest) = bytes.split_first()?;
        if t & 0x1f == 0x1f {
            return None; // multi-octet tag: none in what is read here
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            // 0x80 is the indefinite form, not DER; more than 4 octets is beyond any
            // certificate.
            if count == 0 || count > 4 {
                return None;
            }
            let (octets, after) = rest.split_at_checked(count)?;
            rest = after;
            octets
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b))
        };
        let (content, rest) = rest.split_at_checked(len)?;
        Some((t, content, rest))
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SanType};

    use super::*;

    fn certificate(cns: &[DnValue], sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Example");
        for cn in cns {
            // DistinguishedName keeps one value per type: add extra CNs as custom types with
            // the CN OID.
            if dn.get(&DnType::CommonName).is_some() {
                dn.push(DnType::CustomDnType(vec![2, 5, 4, 3]), cn.clone());
            } else {
                dn.push(DnType::CommonName, cn.clone());
            }
        }
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().expect("IA5"))
    }

    #[test]
    fn common_name_and_alt_names() {
        let der = certificate(
            &[DnValue::Utf8String("alice".into())],
            vec![
                dns("Client.Example.ORG"),
                SanType::Rfc822Name("alice@example.org".try_into().expect("IA5")),
                SanType::IpAddress([192, 0, 2, 1].into()),
                dns("second.example.org"),
            ],
        );
        let id = PeerIdentity::from_certificate(&der);
        assert_eq!(id.common_name.as_deref(), Some("alice"));
        assert_eq!(id.dns_names, ["client.example.org", "second.example.org"]);
        assert_eq!(id.email_addresses, ["alice@example.org"]);
        assert_eq!(id.name(), Some("alice"));
        assert_eq!(id.fingerprint_sha256.len(), 64);
        let expected: String = digest::digest(&digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(id.fingerprint_sha256, expected);
    }

    #[test]
    fn printable_and_bmp_common_names() {
        let der = certificate(
            &[DnValue::PrintableString(
                "Mail Relay 1".try_into().expect("printable"),
            )],
            vec![],
        );
        assert_eq!(
            PeerIdentity::from_certificate(&der).common_name.as_deref(),
            Some("Mail Relay 1")
        );
        let der = certificate(
            &[DnValue::BmpString("jérôme".try_into().expect("BMP"))],
            vec![],
        );
        assert_eq!(
            PeerIdentity::from_certificate(&der).common_name.as_deref(),
            Some("jérôme")
        );
    }

    #[test]
    fn without_common_name_the_first_dns_name() {
        let der = certificate(&[], vec![dns("relay.example.net"), dns("b.example.net")]);
        let id = PeerIdentity::from_certificate(&der);
        assert_eq!(id.common_name, None);
        assert_eq!(id.name(), Some("relay.example.net"));
        let der = certificate(&[], vec![]);
        assert_eq!(PeerIdentity::from_certificate(&der).name(), None);
    }

    #[test]
    fn two_common_names_or_a_control_character_give_none() {
        let der = certificate(
            &[
                DnValue::Utf8String("alice".into()),
                DnValue::Utf8String("admin".into()),
            ],
            vec![dns("relay.example.net")],
        );
        let id = PeerIdentity::from_certificate(&der);
        assert_eq!(id.common_name, None);
        assert_eq!(id.name(), Some("relay.example.net"));
        let der = certificate(&[DnValue::Utf8String("ali\nce".into())], vec![]);
        assert_eq!(PeerIdentity::from_certificate(&der).name(), None);
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let der = certificate(
            &[DnValue::Utf8String("alice".into())],
            vec![dns("a.example")],
        );
        for cut in 0..der.len() {
            let id = PeerIdentity::from_certificate(&der[..cut]);
            assert_eq!(id.fingerprint_sha256.len(), 64);
        }
        for input in [
            &[][..],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x1f, 0, 0],
        ] {
            let id = PeerIdentity::from_certificate(input);
            assert_eq!(id.name(), None);
        }
        // A length that runs past the end.
        assert_eq!(Der::new(&[0x30, 0x82, 0xff, 0xff, 0]).any(), None);
    }
}
