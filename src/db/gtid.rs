//! GTIDs, compared here rather than by the server so both flavours are
//! read the same way and the comparison is tested on recorded values.
//!
//! MariaDB writes a GTID as `domain-server_id-seq`. Its *position*
//! (`@@gtid_binlog_pos`, `@@gtid_slave_pos`) keeps only the last GTID of
//! each domain; its *binlog state* (`@@gtid_binlog_state`) keeps the last
//! one of each (domain, server_id). A write made at the replica and
//! followed by replicated writes disappears from the position but stays in
//! the state, so errant transactions are found from the states.
//!
//! MySQL's `@@gtid_executed` is a set (`uuid:1-5:7,uuid2:3`); errant and
//! missing transactions are set differences.

use std::collections::BTreeMap;

fn mariadb_triples(text: &str) -> Result<Vec<(u32, u32, u64)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let fields: Vec<&str> = part.split('-').collect();
        let [domain, server, seq] = fields[..] else {
            return Err(format!(
                "`{part}` is not a MariaDB GTID (domain-server_id-seq)"
            ));
        };
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("`{part}` is not a MariaDB GTID"))
        };
        let domain =
            u32::try_from(number(domain)?).map_err(|_| format!("`{part}`: domain out of range"))?;
        let server = u32::try_from(number(server)?)
            .map_err(|_| format!("`{part}`: server_id out of range"))?;
        out.push((domain, server, number(seq)?));
    }
    Ok(out)
}

/// A MariaDB GTID position: for each domain, the last (server_id, seq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaPosition {
    pub domains: BTreeMap<u32, (u32, u64)>,
}

impl MariaPosition {
    /// Parses `@@gtid_binlog_pos` and friends; empty means nothing yet.
    pub fn parse(text: &str) -> Result<Self, String> {
        let domains = mariadb_triples(text)?
            .into_iter()
            .map(|(domain, server, seq)| (domain, (server, seq)))
            .collect();
        Ok(Self { domains })
    }

    /// How many transactions `self` (the primary) has that `replica` has
    /// not applied, summed over domains.
    pub fn missing_at(&self, replica: &MariaPosition) -> u64 {
        self.domains
            .iter()
            .map(|(domain, (_, seq))| {
                let applied = replica.domains.get(domain).map_or(0, |(_, s)| *s);
                seq.saturating_sub(applied)
            })
            .sum()
    }
}

impl std::fmt::Display for MariaPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .domains
            .iter()
            .map(|(d, (s, q))| format!("{d}-{s}-{q}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A MariaDB binlog state: for each (domain, server_id), the last seq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaState {
    pub last: BTreeMap<(u32, u32), u64>,
}

impl MariaState {
    /// Parses `@@gtid_binlog_state`; empty means nothing yet.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut last = BTreeMap::new();
        for (domain, server, seq) in mariadb_triples(text)? {
            let entry = last.entry((domain, server)).or_insert(seq);
            *entry = (*entry).max(seq);
        }
        Ok(Self { last })
    }

    /// The GTIDs in `replica` that `self` (the primary) never had: a
    /// (domain, server_id) the primary's binary log does not know, or a
    /// sequence number beyond the primary's for it. Read the replica's
    /// state before the primary's: then nothing the replica got from the
    /// primary can be newer than the primary's state.
    pub fn errant_in(&self, replica: &MariaState) -> Vec<String> {
        replica
            .last
            .iter()
            .filter(|(key, seq)| self.last.get(key).is_none_or(|p| *seq > p))
            .map(|((domain, server), seq)| format!("{domain}-{server}-{seq}"))
            .collect()
    }
}

/// A MySQL GTID set: for each source uuid (lower case), its intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sources: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// Parses `@@gtid_executed`: `uuid:1-5:7,uuid2:3`, spaces and line
    /// breaks allowed; empty means nothing yet. Tagged GTIDs (MySQL 8.4,
    /// `uuid:tag:1-3`) keep their tag as part of the source.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut sources: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':').map(str::trim);
            let mut source = fields
                .next()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| format!("`{part}` is not a MySQL GTID set"))?
                .to_ascii_lowercase();
            // Each source (and each tag) is followed by intervals.
            let mut intervals_due = true;
            let mut after_tag = false;
            for field in fields {
                let bounds = match field.split_once('-') {
                    Some((a, b)) => a.trim().parse::<u64>().ok().zip(b.trim().parse().ok()),
                    None => field.parse::<u64>().ok().map(|n| (n, n)),
                };
                match bounds {
                    Some((a, b)) if a >= 1 && b >= a => {
                        sources.entry(source.clone()).or_default().push((a, b));
                        intervals_due = false;
                        after_tag = false;
                    }
                    Some(_) => return Err(format!("`{part}`: an empty interval")),
                    // A tag (letters first) names a source of its own.
                    None if !after_tag
                        && field.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') =>
                    {
                        let base = source.split(':').next().unwrap_or_default().to_string();
                        source = format!("{base}:{}", field.to_ascii_lowercase());
                        intervals_due = true;
                        after_tag = true;
                    }
                    None => return Err(format!("`{part}` is not a MySQL GTID set")),
                }
            }
            if intervals_due {
                return Err(format!("`{part}`: expected intervals such as 1-5"));
            }
        }
        let mut set = Self { sources };
        for intervals in set.sources.values_mut() {
            normalise(intervals);
        }
        Ok(set)
    }

    /// The transactions in `self` that are not in `other`.
    pub fn minus(&self, other: &GtidSet) -> GtidSet {
        let mut sources = BTreeMap::new();
        for (source, intervals) in &self.sources {
            let taken = other.sources.get(source).map_or(&[][..], Vec::as_slice);
            let mut left = Vec::new();
            for &(a, b) in intervals {
                let mut start = a;
                for &(x, y) in taken {
                    if y < start || x > b {
                        continue;
                    }
                    if x > start {
                        left.push((start, x - 1));
                    }
                    start = y.saturating_add(1);
                    if start > b {
                        break;
                    }
                }
                if start <= b {
                    left.push((start, b));
                }
            }
            if !left.is_empty() {
                sources.insert(source.clone(), left);
            }
        }
        GtidSet { sources }
    }

    /// How many transactions the set holds.
    pub fn count(&self) -> u64 {
        self.sources
            .values()
            .flatten()
            .map(|(a, b)| b - a + 1)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

fn normalise(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *intervals = merged;
}

impl std::fmt::Display for GtidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .sources
            .iter()
            .map(|(source, intervals)| {
                let ranges: Vec<String> = intervals
                    .iter()
                    .map(|(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                format!("{source}:{}", ranges.join(":"))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compare_positions() {
        let primary = MariaPosition::parse("0-1-100,1-1-7").unwrap();
        let replica = MariaPosition::parse("0-1-97").unwrap();
        assert_eq!(primary.missing_at(&replica), 3 + 7);
        assert_eq!(MariaPosition::parse("").unwrap(), MariaPosition::default());
        assert!(MariaPosition::parse("0-1").is_err());
        assert_eq!(primary.to_string(), "0-1-100,1-1-7");
        // A replica ahead of the primary as first read misses nothing.
        let ahead = MariaPosition::parse("0-1-105,1-1-7").unwrap();
        assert_eq!(primary.missing_at(&ahead), 0);
    }

    /// `@@gtid_binlog_state` as MariaDB 10.11 printed it at the replica
    /// (server 2) after `INSERT` there with strict mode off, followed by
    /// two writes replicated from the primary (server 1): the position
    /// reads `0-1-102` and hides the errant `0-2-101`.
    #[test]
    fn an_errant_write_followed_by_replicated_writes_is_still_errant() {
        let primary = MariaState::parse("0-1-102").unwrap();
        let replica = MariaState::parse("0-1-102,0-2-101").unwrap();
        assert_eq!(primary.errant_in(&replica), ["0-2-101"]);
        let replica_pos = MariaPosition::parse("0-1-102").unwrap();
        assert_eq!(
            replica_pos.domains[&0],
            (1, 102),
            "the position alone shows nothing"
        );
        // A domain the primary never wrote.
        let replica = MariaState::parse("0-1-100,5-2-1").unwrap();
        assert_eq!(
            MariaState::parse("0-1-100").unwrap().errant_in(&replica),
            ["5-2-1"]
        );
        // The primary's own transactions are never errant, whichever
        // server wrote them once (a former fail-over kept in both logs).
        let primary = MariaState::parse("0-1-300,0-2-17").unwrap();
        let replica = MariaState::parse("0-2-17,0-1-299").unwrap();
        assert!(primary.errant_in(&replica).is_empty());
    }

    #[test]
    fn mysql_sets_are_parsed_subtracted_and_counted() {
        // @@gtid_executed as MySQL prints it (upper-case uuid, a line
        // break after the comma; the uuids are the manual's examples): the
        // primary's source, and one errant transaction of the replica's.
        let replica = GtidSet::parse(
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-57,\n8f0e4d2a-71ca-11e1-9e33-c80aa9429563:1",
        )
        .unwrap();
        let primary = GtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-60").unwrap();
        let errant = replica.minus(&primary);
        assert_eq!(errant.to_string(), "8f0e4d2a-71ca-11e1-9e33-c80aa9429563:1");
        let missing = primary.minus(&replica);
        assert_eq!(missing.count(), 3);
        assert_eq!(
            missing.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:58-60"
        );
        // Holes and merges.
        let a = GtidSet::parse("u:1-10:20-30").unwrap();
        let b = GtidSet::parse("u:5-7:9-25").unwrap();
        assert_eq!(a.minus(&b).to_string(), "u:1-4:8:26-30");
        assert_eq!(GtidSet::parse("u:1-3:4-6").unwrap().to_string(), "u:1-6");
        assert!(GtidSet::parse("").unwrap().is_empty());
        assert!(GtidSet::parse("u:5-2").is_err());
        assert!(GtidSet::parse("u:x").is_err());
        // Tagged GTIDs (8.4) are a source of their own.
        assert_eq!(GtidSet::parse("u:maint:1-2").unwrap().count(), 2);
        assert!(GtidSet::parse("u:maint:other:1-2").is_err());
        let tagged = GtidSet::parse("u:1-5:maint:1-2").unwrap();
        assert_eq!(tagged.count(), 7);
        assert_eq!(
            tagged.minus(&GtidSet::parse("u:1-5").unwrap()).to_string(),
            "u:maint:1-2"
        );
    }

    /// Under a steady writer: read the replica's executed set first, then
    /// the primary's, then the replica's again. The replica can be ahead
    /// of nothing the primary had, so no errant transaction appears; the
    /// later replica read shows nothing missing once it keeps up.
    #[test]
    fn reading_order_under_writes_shows_neither_errant_nor_missing() {
        let replica_first = GtidSet::parse("u:1-100").unwrap();
        let primary = GtidSet::parse("u:1-103").unwrap();
        let replica_then = GtidSet::parse("u:1-104").unwrap();
        assert!(replica_first.minus(&primary).is_empty());
        assert_eq!(primary.minus(&replica_then).count(), 0);
        // Read the other way round, the replica's newer transaction
        // would have looked errant.
        assert!(!replica_then.minus(&primary).is_empty());
    }
}
