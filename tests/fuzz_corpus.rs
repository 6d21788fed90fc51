//! Replays every kept fuzz input (tests/fuzz/corpus/TARGET/: the seeds
//! and each input that once found a bug) through the fuzz targets'
//! bodies, as libFuzzer runs them in bench/fuzz.sh.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 3,
        "{}: only {} inputs",
        dir.display(),
        inputs.len()
    );
    let mut failed = Vec::new();
    for input in &inputs {
        let data = std::fs::read(input).expect("read an input");
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            failed.push(input.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target} panicked on: {failed:?}");
}

#[test]
fn dns_request_corpus() {
    replay("dns_request", geofailover::fuzzing::dns_request);
}

#[test]
fn zone_file_corpus() {
    replay("zone_file", geofailover::fuzzing::zone_file);
}

#[test]
fn config_corpus() {
    replay("config", geofailover::fuzzing::config);
}
