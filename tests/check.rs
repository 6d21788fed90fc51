//! `geofailover check`: the shipped examples pass; each kind of bad input is
//! rejected with exit code 2 and an error naming file and line.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run geofailover check")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes a config for one zone `example.com` whose file holds `zone`.
fn with_zone(dir: &Path, zone: &str) -> PathBuf {
    std::fs::write(dir.join("example.com.zone"), zone).expect("write zone");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "dns:\n  listen: [127.0.0.1:5353]\nzones:\n  - name: example.com\n    file: example.com.zone\n",
    )
    .expect("write config");
    config
}

/// Asserts exit code 2 and that stderr holds `file:line:` and `words`.
fn assert_rejected(output: &Output, file_line: &str, words: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(file_line),
        "expected `{file_line}` in: {stderr}"
    );
    assert!(stderr.contains(words), "expected `{words}` in: {stderr}");
}

const GOOD_ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 host 1 7200 900 1209600 300\n  IN NS ns1\nns1 IN A 192.0.2.53\n";

#[test]
fn shipped_example_passes() {
    for example in [
        "config/example.yaml",
        "config/example-secondaries.yaml",
        "config/example-dnssec.yaml",
    ] {
        let output = check(&repo(example));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("example.com. (serial 2026112101)"),
            "{stdout}"
        );
    }
}

#[test]
fn transfer_settings_name_known_keys_and_readable_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = with_zone(dir.path(), GOOD_ZONE);
    let text = std::fs::read_to_string(&base).expect("read");
    let with = |keys: &str, entries: &str| {
        let path = dir.path().join("transfer.yaml");
        std::fs::write(
            &path,
            text.replace("zones:\n", &format!("{keys}zones:\n"))
                .replace(
                    "file: example.com.zone\n",
                    &format!("file: example.com.zone\n{entries}"),
                ),
        )
        .expect("write");
        check(&path)
    };
    std::fs::write(dir.path().join("k.key"), "AQIDBA==\n").expect("write key");
    let keys = "tsig_keys:\n  - name: k\n    algorithm: hmac-sha256\n    secret_file: k.key\n";
    let good = with(
        keys,
        "    allow_transfer: [\"10.0.0.0/8 key k\"]\n    notify: [\"192.0.2.53:53 key k\"]\n",
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    for (keys, entries, expected) in [
        (
            keys,
            "    allow_transfer: [\"10.0.0.0/33\"]\n",
            "transfer.yaml:10: zone example.com.: allow_transfer: `10.0.0.0/33`: the prefix length must be 0 to 32",
        ),
        (
            keys,
            "    notify: [\"192.0.2.53\"]\n",
            "transfer.yaml:10: zone example.com.: notify: `192.0.2.53` is not an address with a port",
        ),
        (
            keys,
            "    notify: [\"192.0.2.53:53 key other\"]\n",
            "key other. is not one of tsig_keys (k.)",
        ),
        (
            &keys.replace("hmac-sha256", "hmac-md5"),
            "",
            "algorithm `hmac-md5` is not supported",
        ),
        (
            &keys.replace("k.key", "gone.key"),
            "",
            "cannot read the secret file",
        ),
    ] {
        let out = with(keys, entries);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert!(!stderr.contains("AQIDBA"), "{stderr}");
    }
}

#[test]
fn zone_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(dir.path(), &format!("{GOOD_ZONE}www IN A 192.0.2.300\n"));
    assert_rejected(
        &check(&config),
        "example.com.zone:6:",
        "A record at www.example.com.",
    );
}

#[test]
fn every_zone_error_is_reported_not_only_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(
        dir.path(),
        &format!("{GOOD_ZONE}a IN A 192.0.2.300\nb IN MX x\nc IN BOGUS 1\n"),
    );
    let output = check(&config);
    for line in [6, 7, 8] {
        assert_rejected(&output, &format!("example.com.zone:{line}:"), "");
    }
}

#[test]
fn unclosed_parenthesis_names_the_line_it_opened_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(dir.path(), &format!("{GOOD_ZONE}t IN TXT ( \"a\"\n\"b\"\n"));
    assert_rejected(&check(&config), "example.com.zone:6:", "never closed");
}

#[test]
fn zone_without_soa_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(
        dir.path(),
        "$ORIGIN example.com.\n$TTL 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n",
    );
    assert_rejected(&check(&config), "example.com.zone:1:", "no SOA record");
}

#[test]
fn cname_beside_other_data_is_rejected_at_the_later_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(
        dir.path(),
        &format!("{GOOD_ZONE}www IN A 192.0.2.10\nwww IN CNAME ns1\n"),
    );
    assert_rejected(
        &check(&config),
        "example.com.zone:7:",
        "CNAME at www.example.com. beside a A record at line 6",
    );
}

#[test]
fn record_outside_the_zone_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(
        dir.path(),
        &format!("{GOOD_ZONE}www.example.org. IN A 192.0.2.10\n"),
    );
    assert_rejected(&check(&config), "example.com.zone:6:", "outside the zone");
}

#[test]
fn data_a_client_could_not_read_is_rejected_at_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_zone(
        dir.path(),
        &format!(
            "{GOOD_ZONE}@ IN CAA 0 issue \"ca.example.net\"\n@ IN CAA 0 notatagbecauseitistoolong \"x\"\n"
        ),
    );
    assert_rejected(
        &check(&config),
        "example.com.zone:7:",
        "CAA at example.com.: its data cannot be sent as written",
    );
}

#[test]
fn missing_zone_file_names_the_config_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "dns:\n  listen: [127.0.0.1:5353]\nzones:\n  - name: example.com\n    file: missing.zone\n",
    )
    .expect("write config");
    assert_rejected(&check(&config), "config.yaml:5:", "cannot read zone file");
}

#[test]
fn unknown_key_in_any_table_of_the_shipped_example_is_named_with_its_line() {
    let text = std::fs::read_to_string(repo("config/example.yaml")).expect("read example");
    let lines: Vec<&str> = text.lines().collect();
    let mut tried = 0;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let key = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if trimmed.starts_with('#') || !(key.contains(": ") || key.ends_with(':')) {
            continue;
        }
        // `addresses` maps record names to lists: any key is allowed there.
        let indent_of = |l: &str| l.len() - l.trim_start().len();
        let parent = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty() && indent_of(l) < indent_of(line));
        if parent.is_some_and(|p| p.trim() == "addresses:") {
            continue;
        }
        // A sibling key: after a list item's first key, before any other.
        let (at, indent) = match trimmed.strip_prefix("- ") {
            Some(_) => (i + 1, line.len() - trimmed.len() + 2),
            None => (i, line.len() - trimmed.len()),
        };
        let mut edited = lines.clone();
        let injected = format!("{}rotocol: udp", " ".repeat(indent));
        edited.insert(at, &injected);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("example.yaml");
        std::fs::write(&config, edited.join("\n")).expect("write config");
        assert_rejected(
            &check(&config),
            &format!("example.yaml:{}:", at + 1),
            "unknown field `rotocol`",
        );
        tried += 1;
    }
    assert!(tried >= 4, "only {tried} tables tried");
}

#[test]
fn unreadable_config_is_a_usage_error() {
    let output = check(Path::new("/nonexistent/geofailover.yaml"));
    assert_rejected(&output, "/nonexistent/geofailover.yaml", "cannot read");
}

#[test]
fn database_tls_settings_are_checked_with_the_line_of_their_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = repo("zones");
    let text = std::fs::read_to_string(repo("config/example-mysql.yaml"))
        .expect("read")
        .replace("../zones/", &format!("{}/", zones.display()));
    std::fs::write(dir.path().join("not.pem"), "not a certificate\n").expect("write");
    let database = "      password_env: GEOFAILOVER_DB_PASSWORD\n      app_accounts";
    let mysql_check = "          password_env: GEOFAILOVER_DB_PASSWORD\n        interval";
    // The primary's `database:` line, which errors in it name.
    let database_line = text[..text.find("\n    database:\n").expect("a database")]
        .matches('\n')
        .count()
        + 2;
    let with = |anchor: &str, tls: &str| {
        let (first, rest) = anchor.split_once('\n').expect("two lines");
        let indent = &first[..first.len() - first.trim_start().len()];
        let path = dir.path().join("tls.yaml");
        std::fs::write(
            &path,
            text.replacen(anchor, &format!("{first}\n{indent}tls: {tls}\n{rest}"), 1),
        )
        .expect("write");
        Command::new(env!("CARGO_BIN_EXE_geofailover"))
            .args(["check", "--config"])
            .arg(&path)
            .env("GEOFAILOVER_DB_PASSWORD", "secret")
            .output()
            .expect("run geofailover check")
    };
    let good = with(database, "{server_name: db.example.net}");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    for (anchor, tls, expected) in [
        (database, "{ca_file: gone.pem}", "database.tls: cannot read"),
        (database, "{ca_file: not.pem}", "no PEM certificate in it"),
        (
            database,
            "{client_cert: not.pem}",
            "client_cert and client_key go together",
        ),
        (
            database,
            "{server_name: \"not a name\"}",
            "server_name `not a name`: expected a host name or an IP address",
        ),
        (
            mysql_check,
            "{ca_file: gone.pem}",
            "check database: mysql.tls: cannot read",
        ),
    ] {
        let out = with(anchor, tls);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        if anchor == database {
            let at = format!("tls.yaml:{database_line}:");
            assert!(stderr.contains(&at), "expected {at:?} in {stderr}");
        }
    }
    let out = with(database, "{verfy: true}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("verfy"), "{stderr}");
}

#[test]
fn drill_schedules_are_checked_with_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = with_zone(dir.path(), GOOD_ZONE);
    let text = std::fs::read_to_string(&base).expect("read");
    let with = |drill: &str| {
        let path = dir.path().join("drill.yaml");
        std::fs::write(&path, format!("{text}{drill}")).expect("write");
        check(&path)
    };
    let good = with(
        "drill:\n  every: 30d\n  window: {days: [tue], hours: \"22:00-02:00\", utc_offset: \"-05:00\"}\n",
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    for (drill, file_line, words) in [
        (
            "drill:\n  every: 30d\n  window:\n    hours: 2-5\n",
            "drill.yaml:8:",
            "drill.window.hours: `2-5`: expected HH:MM-HH:MM",
        ),
        (
            "drill:\n  every: 30d\n  window: {days: [someday]}\n",
            "drill.yaml:8:",
            "`someday`: expected mon, tue, wed, thu, fri, sat or sun",
        ),
        (
            "drill:\n  window: {days: [mon]}\n",
            "drill.yaml:6:",
            "a window or lower_ttl without `every`",
        ),
        (
            "drill:\n  every: 30d\n  lower_ttl: 1s\n",
            "drill.yaml:8:",
            "drill.lower_ttl: expected at least 5s",
        ),
    ] {
        assert_rejected(&with(drill), file_line, words);
    }
}

/// A zone served once, then changed without raising its serial: `check`
/// says under which serial the next load serves it (a warning under
/// `serial_policy: keep`), and `serve` serves it under a new serial, kept
/// across a restart (stored even without a failover section).
#[test]
fn a_zone_changed_under_the_same_serial_gets_a_new_one_and_check_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("example.com.zone"), GOOD_ZONE).expect("write zone");
    let config = dir.path().join("config.yaml");
    let write = |policy: &str| {
        std::fs::write(
            &config,
            format!(
                "dns:\n  listen: [127.0.0.1:0]\nstate_dir: {}\nzones:\n  - name: example.com\n    file: example.com.zone\n    serial_policy: {policy}\n",
                dir.path().join("state").display()
            ),
        )
        .expect("write config")
    };
    write("increment");
    let served = |config: &Path| {
        let server = common::Geofailover::start(config);
        common::soa_serial(server.addr, "example.com.")
    };
    assert_eq!(served(&config), 1);
    std::fs::write(
        dir.path().join("example.com.zone"),
        format!("{GOOD_ZONE}added IN A 192.0.2.9\n"),
    )
    .expect("edit zone");
    let output = check(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("note: zone example.com. changed under serial 1 (not above the 1 served before): served under 2"),
        "{stdout}"
    );
    write("keep");
    let output = check(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("warning: zone example.com. changed but its serial 1 is not above the 1 served before"),
        "{stdout}"
    );
    write("increment");
    assert_eq!(served(&config), 2);
    assert_eq!(served(&config), 2, "the same content keeps its serial");
}

/// A zone taken out of the config keeps its serial and digest in the
/// state: brought back after a start without it, it goes on from the
/// serial it was served under, never back to its file's lower one.
#[test]
fn a_zone_taken_out_and_brought_back_goes_on_from_its_stored_serial() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("example.com.zone"), GOOD_ZONE).expect("write zone");
    std::fs::write(
        dir.path().join("example.net.zone"),
        GOOD_ZONE.replace("example.com.", "example.net."),
    )
    .expect("write zone");
    let config = dir.path().join("config.yaml");
    let write = |zones: &[&str]| {
        let zones: String = zones
            .iter()
            .map(|z| format!("  - name: {z}\n    file: {z}.zone\n"))
            .collect();
        std::fs::write(
            &config,
            format!(
                "dns:\n  listen: [127.0.0.1:0]\nstate_dir: {}\nzones:\n{zones}",
                dir.path().join("state").display()
            ),
        )
        .expect("write config")
    };
    let served = |zone: &str| {
        let server = common::Geofailover::start(&config);
        common::soa_serial(server.addr, zone)
    };
    write(&["example.com", "example.net"]);
    assert_eq!(served("example.com."), 1);
    // Changed under the same file serial: served under 2.
    std::fs::write(
        dir.path().join("example.com.zone"),
        format!("{GOOD_ZONE}added IN A 192.0.2.9\n"),
    )
    .expect("edit zone");
    assert_eq!(served("example.com."), 2);
    // A start without it, then one with it again: still 2.
    write(&["example.net"]);
    assert_eq!(served("example.net."), 1);
    write(&["example.com", "example.net"]);
    assert_eq!(served("example.com."), 2);
}

/// A zone's `dnssec:` settings are checked at their line; check reads
/// the keys (a private key others can read is refused, with the fix) and
/// never makes one.
#[test]
fn dnssec_settings_and_keys_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = with_zone(dir.path(), GOOD_ZONE);
    let text = std::fs::read_to_string(&base).expect("read");
    let with = |settings: &str| {
        let path = dir.path().join("signed.yaml");
        std::fs::write(
            &path,
            text.replace(
                "    file: example.com.zone\n",
                &format!("    file: example.com.zone\n    dnssec: {settings}\n    # end\n"),
            ),
        )
        .expect("write");
        check(&path)
    };
    for (settings, words) in [
        (
            "{algorithm: 8}",
            "algorithm 8: expected 13 (ECDSA P-256 with SHA-256) or 15 (Ed25519)",
        ),
        ("{denial: nsec5}", "denial `nsec5`: expected nsec or nsec3"),
        (
            "{validity: 1d, refresh: 1d}",
            "leaves less than an hour of the validity",
        ),
        (
            "{zsk_lifetime: 90d}",
            "zsk_lifetime without a ZSK: expected signing_keys: ksk_zsk",
        ),
        ("{signing_keys: two}", "signing_keys `two`: expected csk"),
    ] {
        assert_rejected(&with(settings), "signed.yaml:6:", words);
    }
    // No keys yet: a note, and none made.
    let keys = dir.path().join("state/keys");
    let fine = with("{}");
    let stdout = String::from_utf8_lossy(&fine.stdout);
    assert!(
        fine.status.success(),
        "{}",
        String::from_utf8_lossy(&fine.stderr)
    );
    assert!(stdout.contains("has no keys in"), "{stdout}");
    assert!(!keys.exists(), "check made a key folder");
    // Keys made by `dnssec ds`, then one made readable to others.
    let config = dir.path().join("signed.yaml");
    let ds = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["dnssec", "ds", "--zone", "example.com", "--config"])
        .arg(&config)
        .output()
        .expect("run dnssec ds");
    let ds_text = String::from_utf8_lossy(&ds.stdout);
    assert!(ds_text.starts_with("example.com. 300 IN DS "), "{ds_text}");
    let fine = with("{}");
    let stdout = String::from_utf8_lossy(&fine.stdout);
    assert!(
        stdout.contains("is signed with algorithm 13, keys"),
        "{stdout}"
    );
    let private = std::fs::read_dir(&keys)
        .expect("keys")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "private"))
        .expect("a private key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = with("{}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("can be read by group or others (mode 0644): run chmod 600"),
        "{stderr}"
    );
    let secret = std::fs::read_to_string(&private).expect("read");
    let secret = secret
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey: "))
        .expect("key");
    assert!(!stderr.contains(secret) && !stdout.contains(secret));
}
