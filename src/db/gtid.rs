//! GTID positions. MariaDB writes them as `domain-server_id-seq` triples,
//! one per replication domain (`0-1-100,1-2-7`); there is no SQL function
//! to compare them, so it is done here. MySQL's GTID sets are compared by
//! the server itself (GTID_SUBTRACT), see `super::mysql`.

use std::collections::BTreeMap;

/// A MariaDB GTID position: for each domain, the last (server_id, seq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaPosition {
    pub domains: BTreeMap<u32, (u32, u64)>,
}

impl MariaPosition {
    /// Parses `@@gtid_binlog_pos` and friends; empty means nothing yet.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut domains = BTreeMap::new();
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
            let domain = u32::try_from(number(domain)?)
                .map_err(|_| format!("`{part}`: domain out of range"))?;
            let server = u32::try_from(number(server)?)
                .map_err(|_| format!("`{part}`: server_id out of range"))?;
            domains.insert(domain, (server, number(seq)?));
        }
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

    /// The GTIDs in `replica` that did not come from `self` (the primary):
    /// a domain the primary never wrote, a sequence beyond the primary's,
    /// or the primary's sequence number written by another server.
    pub fn errant_in(&self, replica: &MariaPosition) -> Vec<String> {
        replica
            .domains
            .iter()
            .filter(|(domain, (server, seq))| match self.domains.get(domain) {
                None => true,
                Some((p_server, p_seq)) => seq > p_seq || (seq == p_seq && server != p_server),
            })
            .map(|(domain, (server, seq))| format!("{domain}-{server}-{seq}"))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compare() {
        let primary = MariaPosition::parse("0-1-100,1-1-7").unwrap();
        let replica = MariaPosition::parse("0-1-97").unwrap();
        assert_eq!(primary.missing_at(&replica), 3 + 7);
        assert!(primary.errant_in(&replica).is_empty());
        assert_eq!(MariaPosition::parse("").unwrap(), MariaPosition::default());
        assert!(MariaPosition::parse("0-1").is_err());
        assert_eq!(primary.to_string(), "0-1-100,1-1-7");
    }

    #[test]
    fn a_local_write_at_the_replica_is_errant() {
        let primary = MariaPosition::parse("0-1-100").unwrap();
        // Written at the replica (server 2) after it applied 0-1-100.
        let replica = MariaPosition::parse("0-2-101").unwrap();
        assert_eq!(primary.errant_in(&replica), ["0-2-101"]);
        // Same sequence number, another server: also not from the primary.
        let replica = MariaPosition::parse("0-2-100").unwrap();
        assert_eq!(primary.errant_in(&replica), ["0-2-100"]);
        // A domain the primary never wrote.
        let replica = MariaPosition::parse("0-1-100,5-2-1").unwrap();
        assert_eq!(primary.errant_in(&replica), ["5-2-1"]);
    }
}
