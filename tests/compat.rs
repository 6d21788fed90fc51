//! The answers geofailover gives for the shipped zones, compared query by
//! query with Knot (every section) and NSD (rcode, flags and answer), each
//! serving the same zone files on loopback.

mod common;

use common::{
    EXAMPLE_ZONES, Geofailover, Reference,
    corpus::{Case, ask, corpus, normal},
    free_port, repo_zones,
};
use hickory_proto::rr::RecordType;

/// Where NSD and geofailover may answer differently, and why ours is right.
fn nsd_difference_allowed(case: &Case) -> Option<&'static str> {
    match case.rtype {
        // RFC 8482 section 4.1: a server answers ANY with one RRset of its
        // choosing. NSD picks the SOA at the apex; we pick the lowest type,
        // as Knot does.
        RecordType::ANY => Some("RFC 8482: ANY is answered with any one RRset"),
        _ => None,
    }
}

struct Servers {
    ours: Geofailover,
    knot: Reference,
    nsd: Reference,
    _dir: tempfile::TempDir,
}

/// geofailover runs the shipped example config, with both sites' checks
/// failing, so the failover record www.example.com answers with the
/// primary's address. Knot and NSD serve the same zone files with that
/// answer written in as a static record: a failover record must answer
/// exactly as a static one does.
fn start_all(fast_path: bool) -> Servers {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).expect("mkdir");
    for (_, file) in EXAMPLE_ZONES {
        std::fs::copy(repo_zones().join(file), zones.join(file)).expect("copy zone");
    }
    let mut example = std::fs::read_to_string(zones.join("example.com.zone")).expect("read");
    example.push_str("www 30 IN A 192.0.2.10\n");
    example.push_str("www 30 IN AAAA 2001:db8:10::10\n");
    std::fs::write(zones.join("example.com.zone"), example).expect("write");
    let config = Geofailover::example_config(dir.path(), free_port(), free_port());
    if !fast_path {
        let text = std::fs::read_to_string(&config).expect("read");
        let text = text.replacen("dns:\n", "dns:\n  fast_path: false\n", 1);
        assert!(text.contains("fast_path: false"));
        std::fs::write(&config, text).expect("write");
    }
    Servers {
        ours: Geofailover::start(&config),
        knot: Reference::knot(&zones, EXAMPLE_ZONES),
        nsd: Reference::nsd(&zones, EXAMPLE_ZONES),
        _dir: dir,
    }
}

#[test]
fn corpus_answers_match_knot_in_every_section_and_nsd_in_rcode_flags_and_answer() {
    compare(start_all(true));
}

/// The same corpus with the UDP fast path off: every query the general way.
#[test]
fn the_general_path_alone_answers_the_corpus_the_same() {
    compare(start_all(false));
}

fn compare(servers: Servers) {
    let cases = corpus();
    assert!(
        cases.len() >= 300,
        "corpus has only {} queries",
        cases.len()
    );
    eprintln!("{} queries to each server", cases.len());

    let mut knot_diffs = Vec::new();
    let mut repeat_diffs = Vec::new();
    let mut nsd_diffs = Vec::new();
    let (mut nxdomain, mut referrals, mut truncated, mut refused, mut wildcard, mut mixed_case) =
        (0, 0, 0, 0, 0, 0);
    for case in &cases {
        let ours = normal(&ask(servers.ours.addr, case), case);
        if !case.tcp {
            // Asked again, a plain query missing from the precomputed
            // answers is learned (second time) and then served from
            // what was learned (third): each answer must stay the same.
            for time in ["second", "third"] {
                let again = normal(&ask(servers.ours.addr, case), case);
                if again != ours {
                    repeat_diffs.push(format!(
                        "{case} ({time} time)\n  first: {ours:?}\n  then:  {again:?}"
                    ));
                }
            }
        }
        let knot = normal(&ask(servers.knot.addr, case), case);
        let nsd = normal(&ask(servers.nsd.addr, case), case);
        if ours != knot {
            knot_diffs.push(format!("{case}\n  knot: {knot:?}\n  ours: {ours:?}"));
        }
        let same_as_nsd = ours.qname_case_kept == nsd.qname_case_kept
            && ours.rcode == nsd.rcode
            && ours.aa == nsd.aa
            && ours.tc == nsd.tc
            && ours.answer == nsd.answer;
        if !same_as_nsd && nsd_difference_allowed(case).is_none() {
            nsd_diffs.push(format!("{case}\n  nsd:  {nsd:?}\n  ours: {ours:?}"));
        }
        nxdomain += usize::from(ours.rcode == "Non-Existent Domain");
        referrals += usize::from(!ours.aa && !ours.authority.is_empty() && ours.answer.is_empty());
        truncated += usize::from(ours.tc);
        refused += usize::from(ours.rcode == "Query Refused");
        wildcard += usize::from(ours.answer.iter().any(|r| r.contains("192.0.2.80")));
        mixed_case += usize::from(
            case.name.to_string() != case.name.to_lowercase().to_string()
                && !ours.answer.is_empty(),
        );
    }
    // The corpus reaches every kind of answer, so agreement means something.
    assert!(nxdomain > 10, "only {nxdomain} NXDOMAIN answers");
    assert!(referrals > 10, "only {referrals} referrals");
    assert!(truncated >= 2, "only {truncated} truncated answers");
    assert!(refused > 10, "only {refused} REFUSED answers");
    assert!(wildcard > 4, "only {wildcard} wildcard answers");
    assert!(mixed_case > 4, "only {mixed_case} mixed-case answers");
    assert!(
        repeat_diffs.is_empty(),
        "{} answers changed when asked again:\n{}",
        repeat_diffs.len(),
        repeat_diffs.join("\n")
    );
    assert!(
        knot_diffs.is_empty() && nsd_diffs.is_empty(),
        "{} of {} queries differ from Knot:\n{}\n\n{} differ from NSD:\n{}",
        knot_diffs.len(),
        cases.len(),
        knot_diffs.join("\n"),
        nsd_diffs.len(),
        nsd_diffs.join("\n")
    );
}
