//! Test vectors taken from `synthetic-p1-port102.pcap` (the session user data of the CN and AC
//! SPDUs, and the user data of the two data SPDUs after the Give-Tokens SPDU), and a helper
//! that re-encodes BER with indefinite lengths.

use crate::ber::Reader;

/// Session user data (PGI 193) of the CN SPDU, frame 6: CP → AARQ → RTORQ → bind-invoke.
pub(crate) const CP_HEX: &str = "31818ea003800101a2818680020780810400000001820400000002a433300f020101060452010001300406025101300f02010306045600020c300406025101300f020105060456000207300406025101613f303d020101a0386036a106060456000106be2c282a020103a025b023a321a01fb01da11b800d6d74612d612e6578616d706c65a10a16087365637265742d61";

/// Session user data of the AC SPDU, frame 7: CPA → AARE → RTOAC → bind-result.
pub(crate) const CPA_HEX: &str = "317ba003800101a27480020780830400000002a51b300780010081025101300780010081025101300780010081025101614b3049020101a0446142a106060456000106a203020100a305a103020100be2c282a020103a025b123a221a01fb11da11b800d6d74612d622e6578616d706c65a10a16087365637265742d62";

/// User data of the first data SPDU, frame 9: P-DATA with one RTTR in context 3.
pub(crate) const PDATA1_HEX: &str = "6181a33081a0020103a0819a0481972882012b020105a0820124a08201203181cc64216315610413024742620313012013085445535450524d4416086d73672d30303031603830366104130247426203130120a20a13085445535450524d4483074578616d706c65a50d8005536d69746881044a616e65a6051303456e67460116692d302b6315610413024742620313012013085445535450524d443112800d323631313239";

/// User data of the second data SPDU, frame 10: the second RTTR segment.
pub(crate) const PDATA2_HEX: &str = "6181a43081a1020103a0819b0481983138303030305a820100a23b31396030302e6104130247426203130120a20a13085445535450524d4483074578616d706c65a50c80054a6f6e65738103426f62800101810200a0044fa04d312e6b0a130869706d2d30303031a820141e48656c6c6f2066726f6d20612073796e7468657469632050312074657374301ba0193100161548656c6c6f2c20582e34303020776f726c642e0d0a";

/// Hex to bytes (test input only).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
        .collect()
}

/// Re-encodes every constructed element of `bytes` with an indefinite length, except the
/// elements whose encoding equals one of `keep` (open-type values, kept byte for byte so the
/// decoded raw fields compare equal).
pub(crate) fn indefinite(bytes: &[u8], keep: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reader::new(bytes);
    while let Some(t) = r.next().expect("test BER") {
        if !t.tag.constructed || keep.contains(&t.raw) {
            out.extend_from_slice(t.raw);
            continue;
        }
        let mut id_len = 1;
        if t.raw[0] & 0x1F == 0x1F {
            while t.raw[id_len] & 0x80 != 0 {
                id_len += 1;
            }
            id_len += 1;
        }
        out.extend_from_slice(&t.raw[..id_len]);
        out.push(0x80);
        out.extend_from_slice(&indefinite(t.content, keep));
        out.extend_from_slice(&[0, 0]);
    }
    out
}

/// Every proper prefix of `bytes` must fail to decode, without panicking.
pub(crate) fn all_truncations_fail<T, E>(bytes: &[u8], decode: impl Fn(&[u8]) -> Result<T, E>) {
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
    }
}
