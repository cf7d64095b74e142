//! Sample P3 values for the tests of the types and of the association.

use mswitch_core::address::ORAddress;

use super::types::*;
use crate::ber::{Oid, Reader};
use crate::mts::{
    BitString, ContentType, Credentials, Criticality, ExtensionField, ExtensionType,
    GlobalDomainIdentifier, MtsIdentifier, ORName, PerMessageIndicators, Priority, ReportType,
    UtcTime,
};

pub(crate) fn name(text: &str) -> ORName {
    ORName::from(ORAddress::parse_std_or(text).expect("std-or"))
}

pub(crate) fn gdi() -> GlobalDomainIdentifier {
    GlobalDomainIdentifier::new("GB", " ", Some("PRMD-A".into()))
}

pub(crate) fn time(t: &str) -> UtcTime {
    UtcTime::parse(t).expect("time")
}

pub(crate) fn private_ext() -> ExtensionField {
    let mut c = Criticality::default();
    c.set_for_submission(true);
    ExtensionField {
        kind: ExtensionType::Private(Oid::new(&[1, 3, 6, 1, 4, 1, 99999, 1])),
        criticality: Some(c),
        value: Some(vec![0x04, 0x02, 0xAB, 0xCD]),
    }
}

/// An element no version of X.411 defines in these SETs: kept and relayed.
pub(crate) const UNKNOWN_ELEMENT: &[u8] = &[0x9F, 0x63, 0x01, 0x2A];

pub(crate) fn eits() -> Vec<u8> {
    // [APPLICATION 5] SET { built-in-encoded-information-types [0] BIT STRING { ia5-text } }
    vec![0x65, 0x04, 0x80, 0x02, 0x05, 0x20]
}

pub(crate) fn bind_argument() -> MtsBindArgument {
    MtsBindArgument {
        initiator_name: ObjectName::UserAgent(name("/C=GB/ADMD= /PRMD=PRMD-A/O=Org/S=Smith/")),
        messages_waiting: None,
        initiator_credentials: Credentials::simple("ua-secret"),
        security_context: None,
        extensions: vec![private_ext()],
        unknown: Vec::new(),
    }
}

pub(crate) fn bind_result() -> MtsBindResult {
    let q = |m, o| DeliveryQueue {
        messages: m,
        octets: o,
    };
    MtsBindResult {
        responder_name: ObjectName::Mta("mta-a".into()),
        messages_waiting: Some(MessagesWaiting {
            urgent: q(0, None),
            normal: q(2, Some(4096)),
            non_urgent: q(1, Some(10)),
        }),
        responder_credentials: Credentials::simple("mta-secret"),
        extensions: Vec::new(),
        unknown: Vec::new(),
    }
}

pub(crate) fn submission() -> MessageSubmissionArgument {
    let mut r2 =
        PerRecipientMessageSubmissionFields::new(name("/C=GB/ADMD= /PRMD=PRMD-B/S=Jones/"));
    r2.originator_report_request = BitString::zeros(8);
    r2.originator_report_request.set_bit(3, true);
    r2.explicit_conversion = Some(0);
    r2.extensions = vec![private_ext()];
    r2.unknown = vec![UNKNOWN_ELEMENT.to_vec()];
    let mut ind = PerMessageIndicators::default();
    ind.set_alternate_recipient_allowed(true);
    ind.set_content_return_request(true);
    MessageSubmissionArgument {
        envelope: MessageSubmissionEnvelope {
            originator_name: name("/C=GB/ADMD= /PRMD=PRMD-A/O=Org/S=Smith/"),
            original_eits: Some(eits()),
            content_type: ContentType::IPM_1988,
            content_identifier: Some("cid-1".into()),
            priority: Some(Priority::Urgent),
            per_message_indicators: Some(ind),
            deferred_delivery_time: Some(time("261201120000Z")),
            extensions: vec![private_ext()],
            per_recipient_fields: vec![
                PerRecipientMessageSubmissionFields::new(name("/C=GB/ADMD= /PRMD=PRMD-A/S=Brown/")),
                r2,
            ],
            unknown: vec![UNKNOWN_ELEMENT.to_vec()],
        },
        content: b"\x30\x03\x02\x01\x07 an IPM, opaque here".to_vec(),
    }
}

pub(crate) fn submission_result() -> MessageSubmissionResult {
    let mut r =
        MessageSubmissionResult::new(MtsIdentifier::new(gdi(), "sub-0001"), time("261129180000Z"));
    r.content_identifier = Some("cid-1".into());
    r.extensions = vec![private_ext()];
    r
}

pub(crate) fn probe() -> ProbeSubmissionArgument {
    ProbeSubmissionArgument {
        originator_name: name("/C=GB/ADMD= /PRMD=PRMD-A/S=Smith/"),
        original_eits: None,
        content_type: ContentType::Extended(Oid::new(&[1, 3, 26, 0, 4406, 0, 4, 1])),
        content_identifier: None,
        content_length: Some(12345),
        per_message_indicators: None,
        extensions: Vec::new(),
        per_recipient_fields: vec![PerRecipientProbeSubmissionFields::new(name(
            "/C=GB/ADMD= /PRMD=PRMD-B/S=Jones/",
        ))],
        unknown: Vec::new(),
    }
}

pub(crate) fn delivery() -> MessageDeliveryArgument {
    let mut flags = BitString::zeros(8);
    flags.set_bit(1, true);
    MessageDeliveryArgument {
        envelope: MessageDeliveryEnvelope {
            message_delivery_identifier: MtsIdentifier::new(gdi(), "msg-42"),
            message_delivery_time: time("261129181000Z"),
            other_fields: OtherMessageDeliveryFields {
                content_type: ContentType::IPM_1988,
                originator_name: name("/C=GB/ADMD= /PRMD=PRMD-B/S=Jones/"),
                original_eits: Some(eits()),
                priority: Some(Priority::NonUrgent),
                delivery_flags: Some(flags),
                other_recipient_names: vec![name("/C=GB/ADMD= /PRMD=PRMD-A/S=Brown/")],
                this_recipient_name: name("/C=GB/ADMD= /PRMD=PRMD-A/O=Org/S=Smith/"),
                originally_intended_recipient_name: Some(name("/C=GB/ADMD= /PRMD=PRMD-A/S=Old/")),
                converted_eits: Some(eits()),
                message_submission_time: time("261129180500Z"),
                content_identifier: Some("cid-9".into()),
                extensions: vec![private_ext()],
                unknown: vec![UNKNOWN_ELEMENT.to_vec()],
            },
        },
        content: b"delivered content".to_vec(),
    }
}

pub(crate) fn report() -> ReportDeliveryArgument {
    let mut nd = PerRecipientReportDeliveryFields::new(
        name("/C=GB/ADMD= /PRMD=PRMD-B/S=Jones/"),
        ReportType::NonDelivery {
            reason_code: 1,
            diagnostic_code: Some(0),
        },
    );
    nd.supplementary_information = Some("no such user".into());
    nd.originally_intended_recipient_name = Some(name("/C=GB/ADMD= /PRMD=PRMD-B/S=Jonas/"));
    nd.converted_eits = Some(eits());
    nd.extensions = vec![private_ext()];
    ReportDeliveryArgument {
        subject_submission_identifier: MtsIdentifier::new(gdi(), "sub-0001"),
        content_identifier: Some("cid-1".into()),
        content_type: Some(ContentType::IPM_1988),
        original_eits: Some(eits()),
        extensions: vec![private_ext()],
        per_recipient_fields: vec![
            PerRecipientReportDeliveryFields::new(
                name("/C=GB/ADMD= /PRMD=PRMD-A/S=Brown/"),
                ReportType::Delivery {
                    message_delivery_time: time("261129181000Z"),
                    type_of_mts_user: Some(2),
                },
            ),
            nd,
        ],
        returned_content: Some(b"the content".to_vec()),
        unknown: vec![UNKNOWN_ELEMENT.to_vec()],
    }
}

/// Re-encodes a BER tree with indefinite lengths on every constructed element.
pub(crate) fn indefinite(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reader::new(bytes);
    while let Some(t) = r.next().expect("valid BER") {
        if t.tag.constructed {
            let mut id_len = 1;
            if t.raw[0] & 0x1f == 0x1f {
                while t.raw[id_len] & 0x80 != 0 {
                    id_len += 1;
                }
                id_len += 1;
            }
            out.extend_from_slice(&t.raw[..id_len]);
            out.push(0x80);
            out.extend_from_slice(&indefinite(t.content));
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(t.raw);
        }
    }
    out
}

/// A deterministic byte generator for hostile-input tests.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next_u8(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u8
    }
}
