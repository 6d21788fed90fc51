//! Watching the parent during a KSK or CSK rollover (RFC 7583 section
//! 3.3, double KSK): the successor is published and signs beside the old
//! key; once every nameserver of the parent (`parent_nameservers`) serves
//! the successor's DS, the old key is given its end: it stops signing
//! when the old DS can have left every cache (the DS TTL the parent
//! answered, plus an hour), and leaves the zone when its signatures can
//! have too.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{LowerName, Name, RecordType},
};

use super::{PROPAGATION, keys, rdata_bytes};
use crate::{
    config::Config,
    zone::{
        Zone,
        records::{lower_wire, wire_key},
    },
};

/// How long a parent's nameserver has to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// The DS RDATAs `server` answers for `zone`, and their TTL.
pub async fn ds_at(server: SocketAddr, zone: &Name) -> Result<(Vec<Vec<u8>>, u32), String> {
    let mut id = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| "no random ID".to_string())?;
    let id = u16::from_be_bytes(id);
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(zone.clone(), RecordType::DS));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let (_, answer) = crate::dns::notify::exchange(local, server, &bytes, id, ANSWER_WAIT).await?;
    if answer.metadata.response_code != ResponseCode::NoError {
        return Err(format!("it answered {}", answer.metadata.response_code));
    }
    let ds: Vec<_> = answer
        .answers
        .iter()
        .filter(|r| {
            r.record_type() == RecordType::DS && LowerName::new(&r.name) == LowerName::new(zone)
        })
        .collect();
    let ttl = ds.iter().map(|r| r.ttl).max().unwrap_or(0);
    Ok((ds.iter().map(|r| rdata_bytes(r)).collect(), ttl))
}

/// For each signed zone with `parent_nameservers` and a KSK or CSK
/// rollover under way whose successor signs: when every parent's
/// nameserver serves the successor's DS, the keys it replaces are given
/// their Inactive and Delete times. What was done (the zone is then to be
/// signed again), and what could not be (a parent that did not answer).
pub async fn check(config: &Config, served: &[Zone], now: u64) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for source in &config.zones {
        let Some(policy) = &source.dnssec else {
            continue;
        };
        if policy.parent_nameservers.is_empty() {
            continue;
        }
        let keys = match keys::load(&policy.keys, &source.origin, policy.algorithm) {
            Ok(keys) => keys,
            Err(e) => {
                failed.push(format!("zone {}: {e}", source.origin));
                continue;
            }
        };
        let Some((successor, older)) = keys::sep_rollover_pending(&keys, now) else {
            continue;
        };
        if !successor.timing.signs(now) {
            continue;
        }
        let apex = lower_wire(&wire_key(&LowerName::new(&source.origin)));
        let wanted = successor.ds_rdata(&apex);
        let mut seen_everywhere = true;
        let mut ttl = 0;
        for server in &policy.parent_nameservers {
            match ds_at(*server, &source.origin).await {
                Ok((ds, answered_ttl)) => {
                    ttl = ttl.max(answered_ttl);
                    if !ds.contains(&wanted) {
                        seen_everywhere = false;
                    }
                }
                Err(e) => {
                    failed.push(format!(
                        "zone {}: the parent's nameserver {server} was asked for the DS: {e}",
                        source.origin
                    ));
                    seen_everywhere = false;
                }
            }
        }
        if !seen_everywhere {
            continue;
        }
        // The old DS leaves caches after its TTL; the old key's
        // signatures after the zone's largest TTL.
        let largest_ttl = served
            .iter()
            .find(|z| z.origin == source.origin)
            .map_or(86_400, |z| {
                (0..z.records.len())
                    .map(|i| z.records.ttl(i))
                    .max()
                    .unwrap_or(86_400)
            });
        let inactive = now + u64::from(ttl) + PROPAGATION;
        let delete = inactive + u64::from(largest_ttl) + PROPAGATION;
        for old in older {
            match keys::retire(old, inactive, delete) {
                Ok(()) => done.push(format!(
                    "zone {}: every parent nameserver serves the DS of key {:05}: key {:05} stops signing at {} and leaves the zone at {}",
                    source.origin,
                    successor.tag,
                    old.tag,
                    crate::engine::utc(inactive * 1000),
                    crate::engine::utc(delete * 1000)
                )),
                Err(e) => failed.push(format!("zone {}: {e}", source.origin)),
            }
        }
    }
    (done, failed)
}
