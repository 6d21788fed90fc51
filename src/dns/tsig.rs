//! TSIG (RFC 8945) on the wire: verifying a signed request, signing
//! responses (one, or each message of a transfer, chained by their MACs),
//! and the client's side for the NOTIFY and SOA queries we send. The
//! record is read and written here from the message's bytes, since the
//! MAC covers them exactly as sent.

use hickory_proto::{
    op::{Header, Query},
    rr::{Name, Record},
    serialize::binary::{BinDecodable, BinDecoder},
};
use ring::hmac;

use crate::config::{TsigAlgorithm, TsigKey};

/// The TSIG record's type code.
const TSIG_TYPE: u16 = 250;
/// Class ANY.
const CLASS_ANY: u16 = 255;
/// The time difference we allow in what we sign, seconds (RFC 8945
/// section 10 recommends 300). A request's own fudge is what its MAC
/// covers, what its time is checked against, and what its answer carries.
pub const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigError {
    BadSig = 16,
    BadKey = 17,
    BadTime = 18,
}

impl TsigError {
    pub fn text(self) -> &'static str {
        match self {
            Self::BadSig => "BADSIG",
            Self::BadKey => "BADKEY",
            Self::BadTime => "BADTIME",
        }
    }
}

/// A TSIG record as read from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigRecord {
    pub key: Name,
    pub algorithm: Name,
    pub time: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

/// A request's TSIG, checked.
#[derive(Debug)]
pub enum Verified {
    Unsigned,
    /// Signed with `key`; responses are signed with it too.
    Signed {
        key: TsigKey,
        record: TsigRecord,
    },
    /// Not accepted: the response is NOTAUTH with this TSIG error.
    Failed {
        error: TsigError,
        record: TsigRecord,
        /// Known for BADTIME, whose response is signed.
        key: Option<TsigKey>,
    },
    /// Not a well-formed TSIG: FORMERR.
    Malformed,
}

/// The lower-case wire form of a name, uncompressed.
fn wire_name(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.to_lowercase().iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// Where the last record of the additional section starts, when that
/// record is a TSIG, and the record.
fn find(message: &[u8]) -> Result<Option<(usize, TsigRecord)>, ()> {
    let mut decoder = BinDecoder::new(message);
    let header = Header::read(&mut decoder).map_err(|_| ())?;
    let counts = header.counts;
    if counts.additionals == 0 {
        return Ok(None);
    }
    for _ in 0..counts.queries {
        Query::read(&mut decoder).map_err(|_| ())?;
    }
    let before = usize::from(counts.answers)
        + usize::from(counts.authorities)
        + usize::from(counts.additionals)
        - 1;
    for _ in 0..before {
        Record::read(&mut decoder).map_err(|_| ())?;
    }
    let start = decoder.index();
    let key = Name::read(&mut decoder).map_err(|_| ())?;
    let rest = &message[decoder.index()..];
    if read_u16(rest, 0) != Some(TSIG_TYPE) {
        return Ok(None);
    }
    let rdlen = usize::from(read_u16(rest, 8).ok_or(())?);
    let rdata_at = decoder.index() + 10;
    if message.len() != rdata_at + rdlen {
        return Err(());
    }
    let mut rdata = BinDecoder::new(&message[rdata_at..]);
    let algorithm = Name::read(&mut rdata).map_err(|_| ())?;
    let r = &message[rdata_at + rdata.index()..];
    let time = (u64::from(read_u16(r, 0).ok_or(())?) << 32)
        | u64::from(u32::from_be_bytes(
            r.get(2..6).ok_or(())?.try_into().map_err(|_| ())?,
        ));
    let fudge = read_u16(r, 6).ok_or(())?;
    let mac_len = usize::from(read_u16(r, 8).ok_or(())?);
    let mac = r.get(10..10 + mac_len).ok_or(())?.to_vec();
    let r = &r[10 + mac_len..];
    let original_id = read_u16(r, 0).ok_or(())?;
    let error = read_u16(r, 2).ok_or(())?;
    let other_len = usize::from(read_u16(r, 4).ok_or(())?);
    let other = r.get(6..6 + other_len).ok_or(())?.to_vec();
    if r.len() != 6 + other_len {
        return Err(());
    }
    Ok(Some((
        start,
        TsigRecord {
            key,
            algorithm,
            time,
            fudge,
            mac,
            original_id,
            error,
            other,
        },
    )))
}

fn hmac_key(key: &TsigKey) -> hmac::Key {
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        TsigAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    };
    hmac::Key::new(algorithm, key.secret())
}

fn time48(out: &mut Vec<u8>, time: u64) {
    out.extend_from_slice(&((time >> 32) as u16).to_be_bytes());
    out.extend_from_slice(&(time as u32).to_be_bytes());
}

/// The TSIG variables the MAC covers (RFC 8945 section 4.3.3); only the
/// timers for a later message of a transfer.
fn variables(
    out: &mut Vec<u8>,
    key: &TsigKey,
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
    timers_only: bool,
) {
    if !timers_only {
        out.extend_from_slice(&wire_name(&key.name));
        out.extend_from_slice(&CLASS_ANY.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&wire_name(&key.algorithm_name()));
    }
    time48(out, time);
    out.extend_from_slice(&fudge.to_be_bytes());
    if !timers_only {
        out.extend_from_slice(&error.to_be_bytes());
        out.extend_from_slice(&(other.len() as u16).to_be_bytes());
        out.extend_from_slice(other);
    }
}

/// The message as it was before its TSIG was added: cut at `start`, the
/// original ID back, one record fewer in the additional section.
fn unsigned_part(message: &[u8], start: usize, original_id: u16) -> Vec<u8> {
    let mut part = message[..start].to_vec();
    part[0..2].copy_from_slice(&original_id.to_be_bytes());
    let additionals = read_u16(&part, 10).unwrap_or(1).saturating_sub(1);
    part[10..12].copy_from_slice(&additionals.to_be_bytes());
    part
}

/// Checks a request's TSIG against `keys` at time `now` (seconds).
pub fn verify_request(message: &[u8], keys: &[TsigKey], now: u64) -> Verified {
    let (start, record) = match find(message) {
        Ok(Some(found)) => found,
        Ok(None) => return Verified::Unsigned,
        Err(()) => return Verified::Malformed,
    };
    let key = keys
        .iter()
        .find(|k| k.name == record.key.to_lowercase() && k.algorithm_name() == record.algorithm);
    let Some(key) = key else {
        return Verified::Failed {
            error: TsigError::BadKey,
            record,
            key: None,
        };
    };
    let mut input = unsigned_part(message, start, record.original_id);
    variables(
        &mut input,
        key,
        record.time,
        record.fudge,
        record.error,
        &record.other,
        false,
    );
    if hmac::verify(&hmac_key(key), &input, &record.mac).is_err() {
        return Verified::Failed {
            error: TsigError::BadSig,
            record,
            key: None,
        };
    }
    if now.abs_diff(record.time) > u64::from(record.fudge) {
        return Verified::Failed {
            error: TsigError::BadTime,
            record,
            key: Some(key.clone()),
        };
    }
    Verified::Signed {
        key: key.clone(),
        record,
    }
}

/// Appends a TSIG record to `message` (and counts it), returning its MAC.
/// `prior` is the MAC this one follows (the request's for a response, the
/// previous message's within a transfer), `None` for a request.
/// `timers_only` for the messages after the first of a transfer. With
/// `key` `None` the record carries `error` and no MAC (BADKEY, BADSIG).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    message: &mut Vec<u8>,
    key_name: &Name,
    algorithm: &Name,
    key: Option<&TsigKey>,
    prior: Option<&[u8]>,
    timers_only: bool,
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) -> Vec<u8> {
    let id = read_u16(message, 0).unwrap_or(0);
    let mac = match key {
        Some(key) => {
            let mut input = Vec::with_capacity(message.len() + 128);
            if let Some(prior) = prior {
                input.extend_from_slice(&(prior.len() as u16).to_be_bytes());
                input.extend_from_slice(prior);
            }
            input.extend_from_slice(message);
            variables(&mut input, key, time, fudge, error, other, timers_only);
            hmac::sign(&hmac_key(key), &input).as_ref().to_vec()
        }
        None => Vec::new(),
    };
    let mut rdata = wire_name(algorithm);
    time48(&mut rdata, time);
    rdata.extend_from_slice(&fudge.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(other);
    message.extend_from_slice(&wire_name(key_name));
    message.extend_from_slice(&TSIG_TYPE.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend_from_slice(&rdata);
    let additionals = read_u16(message, 10).unwrap_or(0).wrapping_add(1);
    message[10..12].copy_from_slice(&additionals.to_be_bytes());
    mac
}

/// Signs a request we send (NOTIFY, SOA) with `key`; its MAC, which the
/// answer's TSIG follows.
pub fn sign_request(message: &mut Vec<u8>, key: &TsigKey, now: u64) -> Vec<u8> {
    sign(
        message,
        &key.name,
        &key.algorithm_name(),
        Some(key),
        None,
        false,
        now,
        FUDGE,
        0,
        &[],
    )
}

/// The TSIG written into the answer to a request whose TSIG did not
/// verify (RFC 8945 section 5.2): `error`, the request's fudge, and no
/// MAC unless `key` is known (BADTIME). A BADTIME answer carries the
/// request's Time Signed, and our time `now` (48 bits) as its Other
/// Data, as section 5.2.3 asks and BIND does.
pub fn sign_failure(
    message: &mut Vec<u8>,
    error: TsigError,
    record: &TsigRecord,
    key: Option<&TsigKey>,
    now: u64,
) {
    let (time, other) = match error {
        TsigError::BadTime => {
            let mut other = Vec::with_capacity(6);
            time48(&mut other, now);
            (record.time, other)
        }
        TsigError::BadSig | TsigError::BadKey => (now, Vec::new()),
    };
    sign(
        message,
        &record.key,
        &record.algorithm,
        key,
        Some(&record.mac),
        false,
        time,
        record.fudge,
        error as u16,
        &other,
    );
}

/// How a request was signed: its answer is signed with the same key.
pub struct Signing<'a> {
    pub key: &'a TsigKey,
    pub request_mac: &'a [u8],
    /// The request's fudge, which its answers carry.
    pub fudge: u16,
}

impl Signing<'_> {
    /// The bytes the TSIG of one answer message takes: a UDP answer
    /// keeps this much room for it (RFC 8945 section 5.3).
    pub fn size(&self) -> usize {
        let mac = match self.key.algorithm {
            TsigAlgorithm::HmacSha256 => 32,
            TsigAlgorithm::HmacSha384 => 48,
            TsigAlgorithm::HmacSha512 => 64,
        };
        // Owner, type, class, TTL, RDLENGTH; algorithm, time, fudge, MAC
        // size, MAC, original ID, error, other length (no other data).
        wire_name(&self.key.name).len()
            + 10
            + wire_name(&self.key.algorithm_name()).len()
            + 16
            + mac
    }

    /// Signs one message of the answer and returns its MAC: the first
    /// after the request's MAC, each later one of a transfer after the
    /// one before it (`prior`), with the timers alone (RFC 8945 section
    /// 5.3.1).
    pub fn sign(&self, message: &mut Vec<u8>, prior: Option<&[u8]>, time: u64) -> Vec<u8> {
        sign(
            message,
            &self.key.name,
            &self.key.algorithm_name(),
            Some(self.key),
            Some(prior.unwrap_or(self.request_mac)),
            prior.is_some(),
            time,
            self.fudge,
            0,
            &[],
        )
    }
}

/// Checks the TSIG of an answer to a request of ours whose MAC was
/// `request_mac`.
pub fn verify_response(
    message: &[u8],
    key: &TsigKey,
    request_mac: &[u8],
    now: u64,
) -> Result<(), String> {
    let (start, record) = match find(message) {
        Ok(Some(found)) => found,
        Ok(None) => return Err("the answer is not signed".into()),
        Err(()) => return Err("the answer's TSIG record is malformed".into()),
    };
    if record.error != 0 {
        let text = match record.error {
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            _ => "an error",
        };
        return Err(format!(
            "the secondary answered {text} for key {}",
            key.name
        ));
    }
    let mut input = Vec::with_capacity(message.len() + 128);
    input.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    input.extend_from_slice(request_mac);
    input.extend_from_slice(&unsigned_part(message, start, record.original_id));
    variables(
        &mut input,
        key,
        record.time,
        record.fudge,
        record.error,
        &record.other,
        false,
    );
    hmac::verify(&hmac_key(key), &input, &record.mac).map_err(|_| {
        format!(
            "the answer's signature does not verify with key {}",
            key.name
        )
    })?;
    if now.abs_diff(record.time) > u64::from(record.fudge) {
        return Err("the answer was signed at a time too far from ours".into());
    }
    Ok(())
}

/// Seconds since the epoch, as TSIG counts time.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::{
        op::{Message, MessageType, OpCode},
        rr::RecordType,
    };

    fn key(secret: u8) -> TsigKey {
        TsigKey::new(
            Name::from_ascii("transfer-key.").unwrap(),
            TsigAlgorithm::HmacSha256,
            vec![secret; 32],
        )
    }

    fn query() -> Vec<u8> {
        let mut message = Message::new(4321, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::AXFR,
        ));
        message.to_vec().unwrap()
    }

    #[test]
    fn a_signed_request_verifies_with_its_key_only() {
        let mut request = query();
        let mac = sign_request(&mut request, &key(7), 1_000_000);
        assert_eq!(mac.len(), 32);
        match verify_request(&request, &[key(7)], 1_000_100) {
            Verified::Signed { record, .. } => assert_eq!(record.mac, mac),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            verify_request(&request, &[key(8)], 1_000_100),
            Verified::Failed {
                error: TsigError::BadSig,
                ..
            }
        ));
        let other = TsigKey::new(
            Name::from_ascii("other.").unwrap(),
            TsigAlgorithm::HmacSha256,
            vec![7; 32],
        );
        assert!(matches!(
            verify_request(&request, &[other], 1_000_100),
            Verified::Failed {
                error: TsigError::BadKey,
                ..
            }
        ));
        assert!(matches!(
            verify_request(&request, &[key(7)], 1_000_000 + 301),
            Verified::Failed {
                error: TsigError::BadTime,
                ..
            }
        ));
        // One byte changed: the signature no longer holds.
        request[3] ^= 1;
        assert!(matches!(
            verify_request(&request, &[key(7)], 1_000_000),
            Verified::Failed {
                error: TsigError::BadSig,
                ..
            }
        ));
        assert!(matches!(
            verify_request(&query(), &[key(7)], 0),
            Verified::Unsigned
        ));
    }

    #[test]
    fn a_signed_answer_verifies_against_the_requests_mac() {
        let mut request = query();
        let request_mac = sign_request(&mut request, &key(7), 5_000);
        let mut answer = query();
        answer[2] |= 0x80;
        let algorithm = Name::from_ascii("hmac-sha256.").unwrap();
        let k = key(7);
        sign(
            &mut answer,
            &k.name,
            &algorithm,
            Some(&k),
            Some(&request_mac),
            false,
            5_001,
            FUDGE,
            0,
            &[],
        );
        verify_response(&answer, &k, &request_mac, 5_002).unwrap();
        let e = verify_response(&answer, &k, &[0; 32], 5_002).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
    }

    #[test]
    fn a_truncated_record_is_malformed_not_a_panic() {
        let mut request = query();
        sign_request(&mut request, &key(7), 1);
        for cut in 12..request.len() {
            let _ = verify_request(&request[..cut], &[key(7)], 1);
        }
    }
}
