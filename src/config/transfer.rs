//! Zone transfers to secondary nameservers: the TSIG keys, who may
//! transfer each zone and whom to notify of its changes.
//!
//! In the file, an `allow_transfer` entry is an address or a prefix,
//! optionally bound to a key (`10.0.0.0/8`, `127.0.0.1 key transfer-key`);
//! a `notify` entry is an address with its port, optionally with the key
//! to sign with (`192.0.2.53:53 key transfer-key`).

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
};

use base64::Engine;
use hickory_proto::rr::Name;
use serde::Deserialize;

/// A TSIG key as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTsigKey {
    pub name: String,
    pub algorithm: String,
    /// The secret, base64, alone or as `tsig-keygen` writes it.
    pub secret_file: String,
}

/// The HMAC a TSIG key signs with (RFC 8945 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha384" => Some(Self::HmacSha384),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's name as TSIG records carry it.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256.",
            Self::HmacSha384 => "hmac-sha384.",
            Self::HmacSha512 => "hmac-sha512.",
        }
    }
}

/// A TSIG key: its secret is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    secret: Arc<[u8]>,
}

impl TsigKey {
    pub fn new(name: Name, algorithm: TsigAlgorithm, secret: Vec<u8>) -> Self {
        Self {
            name,
            algorithm,
            secret: secret.into(),
        }
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The algorithm's name as TSIG records carry it.
    pub fn algorithm_name(&self) -> Name {
        Name::from_ascii(self.algorithm.name()).unwrap_or_default()
    }
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An address range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Who may transfer a zone: from these addresses, signed with this key
/// when one is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub from: Prefix,
    pub key: Option<Name>,
}

/// A secondary told of every change of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub addr: SocketAddr,
    pub key: Option<Name>,
}

/// A zone's transfer settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneTransfer {
    pub allow: Vec<Allow>,
    pub notify: Vec<NotifyTarget>,
}

/// Reads the keys; relative secret files are taken from `base`. The
/// errors never show a secret.
pub fn keys(raw: Vec<RawTsigKey>, base: &Path) -> Result<Vec<TsigKey>, (String, String)> {
    let mut keys: Vec<TsigKey> = Vec::new();
    for key in raw {
        let fail = |message: String| (key.name.clone(), message);
        let name = key_name(&key.name).map_err(|e| fail(format!("tsig_keys: {e}")))?;
        if keys.iter().any(|k| k.name == name) {
            return Err(fail(format!("tsig_keys: key {name} is listed twice")));
        }
        let algorithm = TsigAlgorithm::parse(&key.algorithm).ok_or_else(|| {
            fail(format!(
                "tsig_keys: key {name}: algorithm `{}` is not supported: expected hmac-sha256, hmac-sha384 or hmac-sha512",
                key.algorithm
            ))
        })?;
        let file = base.join(&key.secret_file);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            fail(format!(
                "tsig_keys: key {name}: cannot read the secret file {}: {e}",
                file.display()
            ))
        })?;
        let secret = secret_of(&text).ok_or_else(|| {
            fail(format!(
                "tsig_keys: key {name}: {} holds no base64 secret: expected the secret alone on a line, or a key as tsig-keygen writes it (secret \"...\";)",
                file.display()
            ))
        })?;
        keys.push(TsigKey::new(name, algorithm, secret));
    }
    Ok(keys)
}

fn key_name(text: &str) -> Result<Name, String> {
    let mut name = Name::from_utf8(text).map_err(|e| {
        format!("`{text}` is not a key name ({e}): expected a name such as transfer-key")
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// The secret in a key file: a base64 line, or the `secret "..."` of a
/// BIND-style key clause.
fn secret_of(text: &str) -> Option<Vec<u8>> {
    let encoded = match text.find("secret") {
        Some(at) => {
            let rest = &text[at..];
            let open = rest.find('"')?;
            let close = rest[open + 1..].find('"')?;
            rest[open + 1..open + 1 + close].to_string()
        }
        None => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<String>(),
    };
    let secret = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    (!secret.is_empty()).then_some(secret)
}

/// Splits `ENTRY [key NAME]`, the key checked against `keys`.
fn with_key<'a>(text: &'a str, keys: &[TsigKey]) -> Result<(&'a str, Option<Name>), String> {
    let mut words = text.split_whitespace();
    let first = words.next().ok_or("an entry is empty")?;
    match (words.next(), words.next(), words.next()) {
        (None, _, _) => Ok((first, None)),
        (Some("key"), Some(key), None) => {
            let name = key_name(key)?;
            if !keys.iter().any(|k| k.name == name) {
                return Err(format!(
                    "`{text}`: key {name} is not one of tsig_keys{}",
                    if keys.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            keys.iter()
                                .map(|k| k.name.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ));
            }
            Ok((first, Some(name)))
        }
        _ => Err(format!(
            "`{text}`: expected an address, optionally followed by `key NAME`"
        )),
    }
}

/// An address or a prefix: `192.0.2.53`, `10.0.0.0/8`, `2001:db8::/32`.
pub fn prefix(range: &str) -> Result<Prefix, String> {
    let (addr, len) = match range.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (range, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!(
            "`{range}` is not an address or a prefix: expected such as 192.0.2.53 or 10.0.0.0/8"
        )
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(len) => len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("`{range}`: the prefix length must be 0 to {max}"))?,
    };
    Ok(Prefix { addr, len })
}

/// An `allow_transfer` entry.
pub fn allow(text: &str, keys: &[TsigKey]) -> Result<Allow, String> {
    let (range, key) = with_key(text, keys)?;
    Ok(Allow {
        from: prefix(range).map_err(|e| format!("allow_transfer: {e}"))?,
        key,
    })
}

/// A `notify` entry.
pub fn notify(text: &str, keys: &[TsigKey]) -> Result<NotifyTarget, String> {
    let (addr, key) = with_key(text, keys)?;
    let addr: SocketAddr = addr.parse().map_err(|_| {
        format!("notify: `{addr}` is not an address with a port: expected such as 192.0.2.53:53 or [2001:db8::53]:53")
    })?;
    Ok(NotifyTarget { addr, key })
}

/// The `dns.notify_source` addresses: at most one per family, each an
/// address this host can send from (checked by binding to it).
pub fn notify_sources(raw: &[String]) -> Result<Vec<IpAddr>, String> {
    let sources = notify_addresses(raw)?;
    for addr in &sources {
        sendable(*addr)?;
    }
    Ok(sources)
}

/// `notify_source` addresses as written: at most one per family, none a
/// wildcard. Whether this host has them is `sendable`'s question (a
/// node's addresses are its own host's, not necessarily this one's).
pub fn notify_addresses(raw: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut sources: Vec<IpAddr> = Vec::new();
    for text in raw {
        let addr: IpAddr = text.trim().parse().map_err(|_| {
            format!("`{text}` is not an address: expected one of this host's addresses, such as 192.0.2.53 or 2001:db8::53")
        })?;
        if addr.is_unspecified() {
            return Err(format!(
                "`{text}` is a wildcard: the kernel's choice is the default; expected one of this host's addresses"
            ));
        }
        if let Some(other) = sources.iter().find(|s| s.is_ipv4() == addr.is_ipv4()) {
            return Err(format!(
                "{other} and {addr} are of one family: expected at most one IPv4 and one IPv6 address"
            ));
        }
        sources.push(addr);
    }
    Ok(sources)
}

/// Whether this host can send from `addr` (checked by binding to it).
pub fn sendable(addr: IpAddr) -> Result<(), String> {
    std::net::UdpSocket::bind((addr, 0))
        .map(drop)
        .map_err(|e| format!("`{addr}` is not an address of this host: cannot send from it ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TsigKey {
        TsigKey::new(
            Name::from_ascii("transfer-key.").unwrap(),
            TsigAlgorithm::HmacSha256,
            vec![1; 32],
        )
    }

    #[test]
    fn prefixes_match_their_addresses_only() {
        let allow = allow("10.1.0.0/16", &[]).unwrap();
        assert!(allow.from.contains("10.1.2.3".parse().unwrap()));
        assert!(!allow.from.contains("10.2.0.1".parse().unwrap()));
        assert!(allow.from.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = super::allow("127.0.0.1", &[]).unwrap();
        assert!(!one.from.contains("127.0.0.2".parse().unwrap()));
        let all = super::allow("::/0", &[]).unwrap();
        assert!(all.from.contains("2001:db8::1".parse().unwrap()));
        assert!(super::allow("10.0.0.0/33", &[]).is_err());
    }

    #[test]
    fn entries_name_known_keys_only() {
        let keys = [key()];
        let bound = allow("127.0.0.1 key Transfer-Key", &keys).unwrap();
        assert_eq!(bound.key.unwrap().to_string(), "transfer-key.");
        let e = allow("127.0.0.1 key other", &keys).unwrap_err();
        assert!(
            e.contains("other. is not one of tsig_keys (transfer-key.)"),
            "{e}"
        );
        let e = notify("127.0.0.1 key transfer-key", &keys).unwrap_err();
        assert!(e.contains("with a port"), "{e}");
        assert!(allow("127.0.0.1 transfer-key", &keys).is_err());
    }

    #[test]
    fn a_notify_source_is_one_address_per_family_that_this_host_has() {
        let both = notify_sources(&["127.0.0.1".into(), "::1".into()]);
        // A host without IPv6 has no ::1 to send from.
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            assert_eq!(both.unwrap().len(), 2);
        }
        let e = notify_sources(&["192.0.2.99".into()]).unwrap_err();
        assert!(
            e.contains("`192.0.2.99` is not an address of this host"),
            "{e}"
        );
        let e = notify_sources(&["0.0.0.0".into()]).unwrap_err();
        assert!(e.contains("wildcard"), "{e}");
        let e = notify_sources(&["127.0.0.1".into(), "127.0.0.2".into()]).unwrap_err();
        assert!(e.contains("at most one IPv4 and one IPv6"), "{e}");
        let e = notify_sources(&["127.0.0.1:53".into()]).unwrap_err();
        assert!(e.contains("is not an address"), "{e}");
    }

    #[test]
    fn a_secret_is_read_alone_or_from_a_bind_key_clause() {
        assert_eq!(secret_of("AQID\n"), Some(vec![1, 2, 3]));
        let bind = "key \"transfer-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"AQID\";\n};\n";
        assert_eq!(secret_of(bind), Some(vec![1, 2, 3]));
        assert_eq!(secret_of("not base64!"), None);
        assert!(!format!("{:?}", key()).contains("1, 1"));
    }
}
