//! The wire-level parts of signing (RFC 4034): canonical names, RDATA
//! and order, RRSIG RDATA, NSEC type bitmaps.

use std::cmp::Ordering;

use hickory_proto::rr::RecordType;

use super::keys::Key;
use crate::zone::records::wire_len;

/// The labels of a wire-format name, first to last, the root left out.
fn labels(name: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(8);
    let mut at = 0;
    while at < name.len() && name[at] != 0 {
        let len = usize::from(name[at]);
        out.push(&name[at + 1..(at + 1 + len).min(name.len())]);
        at += 1 + len;
    }
    out
}

/// RFC 4034 section 6.1: names ordered label by label from the right,
/// each label as a string of lower-case octets.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (labels(a), labels(b));
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        let ordering = x
            .iter()
            .map(u8::to_ascii_lowercase)
            .cmp(y.iter().map(u8::to_ascii_lowercase));
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.len().cmp(&b.len())
}

/// The RRSIG labels field: the owner's labels less a leading `*`.
pub fn label_count(owner: &[u8]) -> u8 {
    let labels = labels(owner);
    let wild = labels.first().is_some_and(|l| *l == b"*");
    (labels.len() - usize::from(wild)) as u8
}

/// `rdata` in canonical form (RFC 4034 section 6.2, RFC 6840 section
/// 5.1): the names in the RDATA of the types that RFC 4034 lists in lower
/// case; other RDATA as it is.
pub fn canonical_rdata(rtype: RecordType, rdata: &[u8]) -> Vec<u8> {
    let mut out = rdata.to_vec();
    // (bytes before the first name, names in a row)
    let names = match rtype {
        RecordType::NS | RecordType::CNAME | RecordType::PTR => Some((0, 1)),
        RecordType::SOA => Some((0, 2)),
        RecordType::MX => Some((2, 1)),
        RecordType::SRV => Some((6, 1)),
        _ => match u16::from(rtype) {
            // MD, MF, MB, MG, MR
            3 | 4 | 7 | 8 | 9 => Some((0, 1)),
            // MINFO, RP
            14 | 17 => Some((0, 2)),
            // AFSDB, RT, KX
            18 | 21 | 36 => Some((2, 1)),
            // PX
            26 => Some((2, 2)),
            // DNAME
            39 => Some((0, 1)),
            _ => None,
        },
    };
    if let Some((mut at, count)) = names {
        for _ in 0..count {
            if at >= out.len() {
                break;
            }
            let len = wire_len(&out[at..]).min(out.len() - at);
            // Length octets are below 64, never letters: the whole name
            // can be lowered as bytes.
            out[at..at + len].make_ascii_lowercase();
            at += len;
        }
    }
    if rtype == RecordType::NAPTR {
        // Order, preference, three strings, then the replacement name.
        let mut at = 4;
        for _ in 0..3 {
            at += 1 + usize::from(*out.get(at).unwrap_or(&0));
        }
        if at < out.len() {
            out[at..].make_ascii_lowercase();
        }
    }
    out
}

/// The times and signer an RRSIG carries.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub inception: u32,
    pub expiration: u32,
}

/// The RRSIG RDATA over the RRset of `rtype` at `owner` (wire format)
/// whose records have `rdatas` and TTL `ttl`, signed by `key` for the
/// zone `signer` (wire format, lower case).
pub fn rrsig(
    key: &Key,
    owner: &[u8],
    rtype: RecordType,
    ttl: u32,
    rdatas: &[&[u8]],
    validity: Validity,
    signer: &[u8],
) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(18 + signer.len() + 64);
    rdata.extend_from_slice(&u16::from(rtype).to_be_bytes());
    rdata.push(key.algorithm.number());
    rdata.push(label_count(owner));
    rdata.extend_from_slice(&ttl.to_be_bytes());
    rdata.extend_from_slice(&validity.expiration.to_be_bytes());
    rdata.extend_from_slice(&validity.inception.to_be_bytes());
    rdata.extend_from_slice(&key.tag.to_be_bytes());
    rdata.extend_from_slice(signer);
    // RFC 4034 section 3.1.8.1: the RRSIG RDATA less the signature, then
    // each record in canonical form and order.
    let mut data = rdata.clone();
    let mut owner_lower = owner[..wire_len(owner).min(owner.len())].to_vec();
    owner_lower.make_ascii_lowercase();
    let mut canonical: Vec<Vec<u8>> = rdatas.iter().map(|r| canonical_rdata(rtype, r)).collect();
    canonical.sort();
    canonical.dedup();
    for r in &canonical {
        data.extend_from_slice(&owner_lower);
        data.extend_from_slice(&u16::from(rtype).to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&ttl.to_be_bytes());
        data.extend_from_slice(&(r.len() as u16).to_be_bytes());
        data.extend_from_slice(r);
    }
    rdata.extend_from_slice(&key.sign(&data));
    rdata
}

/// The type an RRSIG RDATA covers.
pub fn covered(rrsig: &[u8]) -> Option<RecordType> {
    Some(RecordType::from(u16::from_be_bytes([
        *rrsig.first()?,
        *rrsig.get(1)?,
    ])))
}

/// The NSEC type bitmap (RFC 4034 section 4.1.2) of `types`.
pub fn type_bitmap(types: &[RecordType]) -> Vec<u8> {
    let mut codes: Vec<u16> = types.iter().map(|t| u16::from(*t)).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    while at < codes.len() {
        let window = codes[at] >> 8;
        let mut bits = [0u8; 32];
        let mut used = 0;
        while at < codes.len() && codes[at] >> 8 == window {
            let low = usize::from(codes[at] & 0xff);
            bits[low / 8] |= 0x80 >> (low % 8);
            used = low / 8 + 1;
            at += 1;
        }
        out.push(window as u8);
        out.push(used as u8);
        out.extend_from_slice(&bits[..used]);
    }
    out
}

/// The types an NSEC RDATA's bitmap holds, after its next name.
pub fn bitmap_types(nsec: &[u8]) -> Vec<RecordType> {
    let mut types = Vec::new();
    let mut at = wire_len(nsec);
    while at + 2 <= nsec.len() {
        let window = u16::from(nsec[at]);
        let len = usize::from(nsec[at + 1]);
        let bits = &nsec[at + 2..(at + 2 + len).min(nsec.len())];
        for (i, byte) in bits.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    types.push(RecordType::from(window << 8 | (i * 8 + bit) as u16));
                }
            }
        }
        at += 2 + len;
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::records::wire_key_of;
    use hickory_proto::rr::Name;

    fn wire(name: &str) -> Vec<u8> {
        wire_key_of(&Name::from_ascii(name).unwrap()).to_vec()
    }

    #[test]
    fn names_sort_as_rfc_4034_section_6_1_lists_them() {
        // The RFC's own example, in order.
        let ordered = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let names: Vec<Vec<u8>> = ordered
            .iter()
            .map(|n| match *n {
                // Labels of one octet that names in text cannot hold here.
                "\\001.z.example." => [&[1u8, 1][..], &wire("z.example.")].concat(),
                "\\200.z.example." => [&[1u8, 0x80][..], &wire("z.example.")].concat(),
                _ => wire(n),
            })
            .collect();
        for pair in names.windows(2) {
            assert_eq!(canonical_cmp(&pair[0], &pair[1]), Ordering::Less);
        }
        assert_eq!(
            canonical_cmp(&wire("A.example."), &wire("a.EXAMPLE.")),
            Ordering::Equal
        );
    }

    #[test]
    fn bitmaps_are_rfc_4034s_and_read_back() {
        // RFC 4034 section 4.3: A MX RRSIG NSEC TYPE1234.
        let types = [
            RecordType::A,
            RecordType::MX,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::from(1234),
        ];
        let bitmap = type_bitmap(&types);
        // Window 0: A, MX, RRSIG, NSEC; window 4: bit 210 (byte 26).
        let mut expected = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        expected.extend([0u8; 26]);
        expected.push(0x20);
        assert_eq!(bitmap, expected);
        let mut nsec = wire("host.example.com.");
        nsec.extend_from_slice(&bitmap);
        assert_eq!(bitmap_types(&nsec), types);
    }

    #[test]
    fn names_in_rdata_are_lowered_and_text_is_not() {
        let mut mx = vec![0, 10];
        mx.extend_from_slice(&wire("Mail.Example.com."));
        let mut expected = vec![0, 10];
        expected.extend_from_slice(&wire("mail.example.com."));
        assert_eq!(canonical_rdata(RecordType::MX, &mx), expected);
        let txt = b"\x05Hello".to_vec();
        assert_eq!(canonical_rdata(RecordType::TXT, &txt), txt);
        assert_eq!(label_count(&wire("*.a.example.")), 2);
        assert_eq!(label_count(&wire("a.example.")), 2);
    }
}
