//! Signing keys in BIND's file format, so keys made by `dnssec-keygen`
//! sign here and keys made here are read by BIND's tools:
//! `K<zone>.+<algorithm>+<tag>.key` holds the DNSKEY record,
//! `K<zone>.+<algorithm>+<tag>.private` the private key (mode 0600; a
//! private key file others can read is refused, as ssh refuses one).
//!
//! ECDSA P-256 signs with RFC 6979 nonces and Ed25519 is deterministic,
//! so the same key, data and times give the same signature on every node.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;

/// DNSSEC algorithm numbers (RFC 8624) geofailover signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// 13: ECDSA with curve P-256 and SHA-256 (RFC 6605).
    #[default]
    EcdsaP256,
    /// 15: Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    pub fn number(self) -> u8 {
        match self {
            Self::EcdsaP256 => 13,
            Self::Ed25519 => 15,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            13 => Some(Self::EcdsaP256),
            15 => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The name BIND writes in a `.private` file.
    fn bind_name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ECDSAP256SHA256",
            Self::Ed25519 => "ED25519",
        }
    }
}

/// DNSKEY flags: a zone key (256) that is also a secure entry point
/// (257: a KSK, or a CSK that signs everything).
pub const FLAGS_SEP: u16 = 257;

enum Secret {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ring::signature::Ed25519KeyPair),
}

/// One signing key: its public half as the DNSKEY holds it, and the
/// private half, which only signs (it is never shown: `Debug` leaves it
/// out).
pub struct Key {
    pub algorithm: Algorithm,
    pub flags: u16,
    /// The public key as the DNSKEY RDATA holds it.
    pub public: Vec<u8>,
    pub tag: u16,
    /// The `.private` file it was read from.
    pub file: PathBuf,
    /// BIND's timing metadata (seconds since 1970), when the file has it:
    /// the DNSKEY is published from `publish` until `delete`, and the key
    /// signs from `activate` until `inactive`.
    pub timing: Timing,
    secret: Secret,
}

/// When a key is published, signs, stops signing and is removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub publish: Option<u64>,
    pub activate: Option<u64>,
    pub inactive: Option<u64>,
    pub delete: Option<u64>,
}

impl Timing {
    /// Whether the DNSKEY is in the zone at `now` (seconds).
    pub fn published(&self, now: u64) -> bool {
        self.publish.is_none_or(|t| t <= now) && self.delete.is_none_or(|t| now < t)
    }

    /// Whether the key signs at `now`.
    pub fn signs(&self, now: u64) -> bool {
        self.published(now)
            && self.activate.is_none_or(|t| t <= now)
            && self.inactive.is_none_or(|t| now < t)
    }

    /// The first of its times after `now`: when the zone must be signed
    /// again for the key's state to change.
    pub fn next_after(&self, now: u64) -> Option<u64> {
        [self.publish, self.activate, self.inactive, self.delete]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
    }
}

/// A BIND timestamp (`YYYYMMDDHHMMSS`, UTC) in seconds since 1970.
fn bind_time(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.len() != 14 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    );
    crate::engine::parse_utc(&rfc3339).map(|ms| ms / 1000)
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm.number())
            .field("flags", &self.flags)
            .field("tag", &self.tag)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Key {
    fn from_secret(
        algorithm: Algorithm,
        flags: u16,
        private: &[u8],
        file: PathBuf,
    ) -> Result<Self, String> {
        let (secret, public) = match algorithm {
            Algorithm::EcdsaP256 => {
                let key = p256::ecdsa::SigningKey::from_slice(private)
                    .map_err(|_| "not an ECDSA P-256 private key".to_string())?;
                let point = key.verifying_key().to_sec1_point(false);
                // The uncompressed point less its 0x04 prefix (RFC 6605).
                let public = point.as_bytes()[1..].to_vec();
                (Secret::P256(key), public)
            }
            Algorithm::Ed25519 => {
                use ring::signature::KeyPair as _;
                let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(private)
                    .map_err(|_| "not an Ed25519 private key".to_string())?;
                let public = key.public_key().as_ref().to_vec();
                (Secret::Ed25519(key), public)
            }
        };
        let mut key = Self {
            algorithm,
            flags,
            public,
            tag: 0,
            file,
            timing: Timing::default(),
            secret,
        };
        key.tag = key_tag(&key.dnskey_rdata());
        Ok(key)
    }

    /// The DNSKEY RDATA: flags, protocol 3, algorithm, public key.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(4 + self.public.len());
        rdata.extend_from_slice(&self.flags.to_be_bytes());
        rdata.push(3);
        rdata.push(self.algorithm.number());
        rdata.extend_from_slice(&self.public);
        rdata
    }

    /// The DS RDATA with SHA-256 (digest type 2) for the zone `owner`
    /// (wire format, lower case).
    pub fn ds_rdata(&self, owner: &[u8]) -> Vec<u8> {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(owner);
        context.update(&self.dnskey_rdata());
        let mut rdata = Vec::with_capacity(36);
        rdata.extend_from_slice(&self.tag.to_be_bytes());
        rdata.push(self.algorithm.number());
        rdata.push(2);
        rdata.extend_from_slice(context.finish().as_ref());
        rdata
    }

    /// The signature of `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::P256(key) => {
                // RFC 6979: the nonce comes from the key and the data.
                let signature: p256::ecdsa::Signature = key.sign(data);
                signature.to_bytes().to_vec()
            }
            Secret::Ed25519(key) => key.sign(data).as_ref().to_vec(),
        }
    }

    /// `K<zone>.+NNN+TTTTT`, the files' common name.
    fn base_name(zone: &str, algorithm: Algorithm, tag: u16) -> String {
        format!("K{zone}+{:03}+{tag:05}", algorithm.number())
    }
}

/// RFC 4034 appendix B.
pub fn key_tag(dnskey_rdata: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, b) in dnskey_rdata.iter().enumerate() {
        sum += if i % 2 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
    }
    sum += (sum >> 16) & 0xffff;
    (sum & 0xffff) as u16
}

/// The zone's name as key files spell it: lower case, with the final dot.
fn file_zone(zone: &hickory_proto::rr::Name) -> String {
    let mut text = zone.to_lowercase().to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// The keys of `zone` with `algorithm` in `dir`; none when there are
/// none. A key file that cannot be read, or that others can read, is an
/// error naming the file.
pub fn load(
    dir: &Path,
    zone: &hickory_proto::rr::Name,
    algorithm: Algorithm,
) -> Result<Vec<Key>, String> {
    let prefix = format!("K{}+{:03}+", file_zone(zone), algorithm.number());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the key folder {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase())
                    && n.ends_with(".private")
            })
        })
        .collect();
    files.sort();
    files.iter().map(|file| read_key(file, algorithm)).collect()
}

/// Reads one key from its `.private` file and the `.key` beside it (for
/// the flags; 257 when there is none).
fn read_key(file: &Path, algorithm: Algorithm) -> Result<Key, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = file.display();
    let mode = std::fs::metadata(file)
        .map_err(|e| format!("cannot read the private key file {shown}: {e}"))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the private key file {shown} can be read by group or others (mode {mode:04o}): run chmod 600 on it"
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the private key file {shown}: {e}"))?;
    let mut private = None;
    let mut named = None;
    let mut timing = Timing::default();
    for (n, line) in text.lines().enumerate() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        match field.trim() {
            "Algorithm" => {
                named = value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u8>().ok());
                if named != Some(algorithm.number()) {
                    return Err(format!(
                        "{shown}:{}: Algorithm {}: expected {} ({})",
                        n + 1,
                        value.trim(),
                        algorithm.number(),
                        algorithm.bind_name()
                    ));
                }
            }
            field @ ("Publish" | "Activate" | "Inactive" | "Delete") => {
                let at = bind_time(value).ok_or_else(|| {
                    format!(
                        "{shown}:{}: {field} `{}`: expected a time as YYYYMMDDHHMMSS (UTC)",
                        n + 1,
                        value.trim()
                    )
                })?;
                let slot = match field {
                    "Publish" => &mut timing.publish,
                    "Activate" => &mut timing.activate,
                    "Inactive" => &mut timing.inactive,
                    _ => &mut timing.delete,
                };
                *slot = Some(at);
            }
            "PrivateKey" => {
                private = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(value.trim())
                        .map_err(|_| format!("{shown}:{}: PrivateKey is not base64", n + 1))?,
                );
            }
            _ => {}
        }
    }
    if named.is_none() {
        return Err(format!(
            "{shown}: no Algorithm line: expected a BIND private key file"
        ));
    }
    let private = private
        .ok_or_else(|| format!("{shown}: no PrivateKey line: expected a BIND private key file"))?;
    let public_file = file.with_extension("key");
    let flags = match std::fs::read_to_string(&public_file) {
        Ok(text) => public_flags(&text).ok_or_else(|| {
            format!(
                "{}: no DNSKEY record: expected `NAME [TTL] IN DNSKEY FLAGS 3 ALGORITHM KEY`",
                public_file.display()
            )
        })?,
        Err(_) => FLAGS_SEP,
    };
    let mut key = Key::from_secret(algorithm, flags, &private, file.to_path_buf())
        .map_err(|e| format!("{shown}: {e}"))?;
    key.timing = timing;
    // The file's name carries the tag: a key renamed by hand, or a
    // .key from another key, is caught here.
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let tag_in_name = stem
        .trim_end_matches(".private")
        .rsplit('+')
        .next()
        .and_then(|t| t.parse::<u16>().ok());
    if tag_in_name != Some(key.tag) {
        return Err(format!(
            "{shown}: the key's tag is {:05}, not the one in the file name (a .key file from another key?)",
            key.tag
        ));
    }
    Ok(key)
}

/// The flags of the DNSKEY record in a `.key` file's text.
fn public_flags(text: &str) -> Option<u16> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("DNSKEY"))?;
            words.get(at + 1)?.parse().ok()
        })
}

/// DNSKEY flags of a zone-signing key (no secure entry point).
pub const FLAGS_ZONE: u16 = 256;

/// The keys of `zone` in `dir`; when there are none, a combined signing
/// key is made (flags 257), or a KSK (257) and a ZSK (256) when `split`
/// (and the folder, mode 0700); whether keys were made.
pub fn load_or_create(
    dir: &Path,
    zone: &hickory_proto::rr::Name,
    algorithm: Algorithm,
    ttl: u32,
    split: bool,
) -> Result<(Vec<Key>, bool), String> {
    let keys = load(dir, zone, algorithm)?;
    if !keys.is_empty() {
        return Ok((keys, false));
    }
    // Nodes that share the folder (several on one host) may all start at
    // once: one makes the key, under a lock, and the others read it.
    let _lock = FolderLock::take(dir)?;
    let keys = load(dir, zone, algorithm)?;
    if !keys.is_empty() {
        return Ok((keys, false));
    }
    let mut keys = vec![create(dir, zone, algorithm, ttl, FLAGS_SEP)?];
    if split {
        keys.push(create(dir, zone, algorithm, ttl, FLAGS_ZONE)?);
    }
    Ok((keys, true))
}

/// An exclusive lock on a key folder (`flock` on `.lock` in it), released
/// when the file is closed, as it is dropped.
struct FolderLock(#[allow(dead_code)] std::fs::File);

impl FolderLock {
    fn take(dir: &Path) -> Result<Self, String> {
        use std::os::{fd::AsRawFd, unix::fs::DirBuilderExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the key folder {}: {e}", dir.display()))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX) } != 0 {
            return Err(format!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self(file))
    }
}

/// Makes a key with `flags` (257: a KSK or CSK, 256: a ZSK), published
/// and active from an hour ago (so a node whose clock is behind uses it
/// too), and writes its two files.
fn create(
    dir: &Path,
    zone: &hickory_proto::rr::Name,
    algorithm: Algorithm,
    ttl: u32,
    flags: u16,
) -> Result<Key, String> {
    let since = (crate::control::clock::now_ms() / 1000).saturating_sub(3600);
    create_timed(dir, zone, algorithm, ttl, flags, since, since)
}

/// BIND's form of a time (seconds since 1970): `YYYYMMDDHHMMSS`.
fn bind_stamp(seconds: u64) -> String {
    crate::engine::utc(seconds * 1000)
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Makes a key with `flags`, published at `publish` and signing from
/// `activate` (seconds since 1970), and writes its two files.
fn create_timed(
    dir: &Path,
    zone: &hickory_proto::rr::Name,
    algorithm: Algorithm,
    ttl: u32,
    flags: u16,
    publish: u64,
    activate: u64,
) -> Result<Key, String> {
    use ring::rand::SecureRandom as _;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the key folder {}: {e}", dir.display()))?;
    }
    let random = ring::rand::SystemRandom::new();
    let key = loop {
        let mut private = [0u8; 32];
        random
            .fill(&mut private)
            .map_err(|_| "the system's random source failed".to_string())?;
        // A P-256 scalar must be below the group order: draw again in the
        // rare case it is not.
        if let Ok(key) = Key::from_secret(algorithm, flags, &private, PathBuf::new()) {
            break (key, private);
        }
    };
    let (mut key, private) = key;
    let zone_text = file_zone(zone);
    let base = Key::base_name(&zone_text, algorithm, key.tag);
    let private_file = dir.join(format!("{base}.private"));
    let public_file = dir.join(format!("{base}.key"));
    let created = bind_stamp(crate::control::clock::now_ms() / 1000);
    let (stamp, active) = (bind_stamp(publish), bind_stamp(activate));
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let private_text = format!(
        "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\nCreated: {created}\nPublish: {stamp}\nActivate: {active}\n",
        algorithm.number(),
        algorithm.bind_name(),
        b64(&private),
    );
    let public_text = format!(
        "; This is a {}-signing key, keyid {}, for {zone_text}\n; Created: {created}\n; Publish: {stamp}\n; Activate: {active}\n{zone_text} {ttl} IN DNSKEY {} 3 {} {}\n",
        if flags & 1 == 1 { "key" } else { "zone" },
        key.tag,
        key.flags,
        algorithm.number(),
        b64(&key.public),
    );
    crate::web::auth::write_private(&private_file, &private_text).map_err(|e| {
        format!(
            "cannot write the private key file {}: {e}",
            private_file.display()
        )
    })?;
    std::fs::write(&public_file, public_text)
        .map_err(|e| format!("cannot write the key file {}: {e}", public_file.display()))?;
    key.file = private_file;
    key.timing = Timing {
        publish: Some(publish),
        activate: Some(activate),
        ..Timing::default()
    };
    Ok(key)
}

/// Sets a key's `Inactive` and `Delete` times in its `.private` file
/// (written anew beside it, then renamed over it, mode 0600).
pub fn retire(key: &Key, inactive: u64, delete: u64) -> Result<(), String> {
    let shown = key.file.display();
    let text = std::fs::read_to_string(&key.file)
        .map_err(|e| format!("cannot read the private key file {shown}: {e}"))?;
    let mut kept: String = text
        .lines()
        .filter(|l| !l.starts_with("Inactive:") && !l.starts_with("Delete:"))
        .map(|l| format!("{l}\n"))
        .collect();
    kept.push_str(&format!(
        "Inactive: {}\nDelete: {}\n",
        bind_stamp(inactive),
        bind_stamp(delete)
    ));
    let temporary = key.file.with_extension("private.new");
    let _ = std::fs::remove_file(&temporary);
    crate::web::auth::write_private(&temporary, &kept)
        .and_then(|()| std::fs::rename(&temporary, &key.file))
        .map_err(|e| format!("cannot write the private key file {shown}: {e}"))
}

/// An automatic ZSK rollover by pre-publication (RFC 7583 section 3.2),
/// done when the zone is signed at `now`: when the ZSK signing now
/// reaches `lifetime` (counted from its Activate) within `publication`
/// (the time a new DNSKEY takes to reach every cache), a successor is
/// made, published now and signing from the later of the two; the old
/// one stops signing then and leaves `retirement` after (the time its
/// signatures take to leave the caches). Nothing when the zone has no
/// ZSK, when a successor exists already, or when the ZSK signing has no
/// Activate time to count from. Under the folder's lock; what was done.
#[allow(clippy::too_many_arguments)]
pub fn roll_zsk(
    dir: &Path,
    zone: &hickory_proto::rr::Name,
    algorithm: Algorithm,
    ttl: u32,
    now: u64,
    lifetime: u64,
    publication: u64,
    retirement: u64,
) -> Result<Option<String>, String> {
    let _lock = FolderLock::take(dir)?;
    let keys = load(dir, zone, algorithm)?;
    let zsks: Vec<&Key> = keys.iter().filter(|k| k.flags & 1 == 0).collect();
    let Some(current) = zsks
        .iter()
        .filter(|k| k.timing.signs(now))
        .max_by_key(|k| k.timing.activate)
    else {
        return Ok(None);
    };
    let Some(activated) = current.timing.activate else {
        return Ok(None);
    };
    let successor = zsks.iter().any(|k| {
        k.tag != current.tag
            && k.timing.delete.is_none_or(|d| now < d)
            && k.timing.activate.is_some_and(|a| a > activated)
    });
    if successor || current.timing.inactive.is_some() {
        return Ok(None);
    }
    // A rollover asked for now (`lifetime` 0) starts at once.
    let due = activated + lifetime;
    if lifetime > 0 && now + publication < due {
        return Ok(None);
    }
    let activate = (now + publication).max(due);
    let new = create_timed(dir, zone, algorithm, ttl, FLAGS_ZONE, now, activate)?;
    retire(current, activate, activate + retirement)?;
    Ok(Some(format!(
        "ZSK rollover: ZSK {:05} published, signing from {}; ZSK {:05} stops signing then and is removed at {}",
        new.tag,
        crate::engine::utc(activate * 1000),
        current.tag,
        crate::engine::utc((activate + retirement) * 1000)
    )))
}

/// A KSK or CSK rollover (double KSK, RFC 7583 section 3.3) begun at
/// `now`: a successor with the flags of the key signing the key sets now
/// (257), published now and signing from `now + publication`; the old one
/// signs on until the parent serves the successor's DS (see
/// `sep_rollover_pending`). The successor.
pub fn begin_sep_rollover(
    dir: &Path,
    zone: &hickory_proto::rr::Name,
    algorithm: Algorithm,
    ttl: u32,
    now: u64,
    publication: u64,
) -> Result<Key, String> {
    let _lock = FolderLock::take(dir)?;
    let keys = load(dir, zone, algorithm)?;
    if keys
        .iter()
        .filter(|k| k.flags & 1 == 1 && k.timing.published(now) && k.timing.inactive.is_none())
        .count()
        > 1
    {
        return Err("a KSK or CSK rollover is under way already: it ends when the parent serves the new key's DS".into());
    }
    if !keys.iter().any(|k| k.flags & 1 == 1 && k.timing.signs(now)) {
        return Err("the zone has no KSK or CSK signing now to roll".into());
    }
    create_timed(dir, zone, algorithm, ttl, FLAGS_SEP, now, now + publication)
}

/// A KSK or CSK rollover under way at `now`: the newest key with the SEP
/// flag (the successor) and those it replaces (published, with no
/// Inactive time yet).
pub fn sep_rollover_pending(keys: &[Key], now: u64) -> Option<(&Key, Vec<&Key>)> {
    let live: Vec<&Key> = keys
        .iter()
        .filter(|k| k.flags & 1 == 1 && k.timing.published(now) && k.timing.inactive.is_none())
        .collect();
    let newest = *live.iter().max_by_key(|k| (k.timing.publish, k.tag))?;
    let older: Vec<&Key> = live.into_iter().filter(|k| k.tag != newest.tag).collect();
    (!older.is_empty()).then_some((newest, older))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_made_by_bind_is_read_with_bind_s_tag_and_public_key() {
        // Made by `dnssec-keygen -a ECDSAP256SHA256 -f KSK example.net`.
        let dir = tempfile::tempdir().unwrap();
        let base = "Kexample.net.+013+06592";
        std::fs::write(
            dir.path().join(format!("{base}.key")),
            "example.net. IN DNSKEY 257 3 13 2wo/f4M9Erh/YVCrvnX+b+yRKBn36fNEf6Cp02SRK8ihVcsnriYDwEOo stw4hm+q78rEsFtGOU9izKQgMmrfFQ==\n",
        )
        .unwrap();
        let private = dir.path().join(format!("{base}.private"));
        crate::web::auth::write_private(
            &private,
            "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: VaB6CY+Y4zKW8Uf2EHV224+FsQSWof+oLH07y4BYMqE=\nCreated: 20261203121823\n",
        )
        .unwrap();
        let zone = hickory_proto::rr::Name::from_ascii("example.net.").unwrap();
        let keys = load(dir.path(), &zone, Algorithm::EcdsaP256).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].tag, 6592);
        assert_eq!(keys[0].flags, 257);
        let public = base64::engine::general_purpose::STANDARD
            .decode("2wo/f4M9Erh/YVCrvnX+b+yRKBn36fNEf6Cp02SRK8ihVcsnriYDwEOostw4hm+q78rEsFtGOU9izKQgMmrfFQ==")
            .unwrap();
        assert_eq!(keys[0].public, public);
        assert_eq!(key_tag(&keys[0].dnskey_rdata()), 6592);
        // Of another algorithm, the same file is refused with its line.
        let err = load(dir.path(), &zone, Algorithm::Ed25519);
        assert!(
            err.unwrap().is_empty(),
            "another algorithm's files are not this one's"
        );
    }

    #[test]
    fn keys_are_made_once_read_back_and_sign_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let zone = hickory_proto::rr::Name::from_ascii("Example.COM.").unwrap();
        for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let (made, created) =
                load_or_create(dir.path(), &zone, algorithm, 3600, false).unwrap();
            assert!(created);
            let (again, created) =
                load_or_create(dir.path(), &zone, algorithm, 3600, false).unwrap();
            assert!(!created);
            assert_eq!(made[0].public, again[0].public);
            assert_eq!(made[0].tag, again[0].tag);
            assert_eq!(made[0].sign(b"data"), again[0].sign(b"data"));
            assert_eq!(made[0].sign(b"data").len(), 64);
            let name = made[0]
                .file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(name.starts_with("Kexample.com.+0"), "{name}");
            // Others may not read a private key.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&made[0].file, std::fs::Permissions::from_mode(0o644))
                .unwrap();
            let err = load(dir.path(), &zone, algorithm).unwrap_err();
            assert!(err.contains("chmod 600"), "{err}");
            std::fs::set_permissions(&made[0].file, std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        // Nothing secret in what is shown.
        let keys = load(dir.path(), &zone, Algorithm::EcdsaP256).unwrap();
        let private = std::fs::read_to_string(&keys[0].file).unwrap();
        let secret = private
            .lines()
            .find_map(|l| l.strip_prefix("PrivateKey: "))
            .unwrap();
        assert!(!format!("{keys:?}").contains(secret));
    }
}
