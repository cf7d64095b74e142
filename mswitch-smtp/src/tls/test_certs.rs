//! Certificates made at test time with rcgen: a CA, and leaves it signs.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::tls::CertifiedKeyPem;

/// A certificate authority.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// Its certificate, PEM.
    pub(crate) pem: Vec<u8>,
}

/// A certificate and its key, PEM.
pub(crate) struct Leaf {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

impl Leaf {
    pub(crate) fn pem(&self) -> CertifiedKeyPem<'_> {
        CertifiedKeyPem {
            cert_chain: &self.cert,
            key: &self.key,
        }
    }
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let pem = params
            .self_signed(&key)
            .expect("CA certificate")
            .pem()
            .into_bytes();
        Ca { params, key, pem }
    }

    /// A server certificate for `names`.
    pub(crate) fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(names[0], names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `cn`.
    pub(crate) fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("names");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        Leaf {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }
    }
}
