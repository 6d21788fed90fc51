//! The etcd client (src/store/etcd.rs) against a real three-member etcd
//! cluster on loopback: reads, writes, compare-and-swap, leases that
//! expire, watches, and what happens when members die.

mod common;

use std::{sync::Arc, time::Duration};

use common::etcd::Etcd as Cluster;
use geofailover::{
    config::EtcdConfig,
    store::etcd::{Compare, Etcd, EtcdError, Op, WatchEvent},
};

fn client(cluster: &Cluster) -> Arc<Etcd> {
    Arc::new(
        Etcd::new(&EtcdConfig {
            endpoints: cluster.endpoints(),
            prefix: "/test".into(),
            lease_ttl: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            tls: None,
            auth: None,
        })
        .expect("client"),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn reads_writes_swaps_leases_and_watches_against_a_real_cluster() {
    let mut cluster = Cluster::start(3);
    let etcd = client(&cluster);
    runtime().block_on(async {
        let mut changes = etcd.watch("/test/", 1);
        assert_eq!(etcd.get("/test/state").await.expect("get").0, None);
        let rev = etcd.put("/test/state", b"one", None).await.expect("put");
        let (kv, _) = etcd.get("/test/state").await.expect("get");
        let kv = kv.expect("the key");
        assert_eq!(kv.value, b"one");
        assert_eq!(kv.mod_revision, rev);

        // Compare-and-swap on the revision read: the first wins, a stale
        // one loses and changes nothing.
        let swap = |from: i64, to: &'static [u8]| {
            let etcd = etcd.clone();
            async move {
                etcd.txn(
                    &[Compare::ModRevision("/test/state".into(), from)],
                    &[Op::Put {
                        key: "/test/state".into(),
                        value: to.to_vec(),
                        lease: None,
                    }],
                    &[Op::Get("/test/state".into())],
                )
                .await
                .expect("txn")
            }
        };
        assert!(swap(rev, b"two").await.succeeded);
        let stale = swap(rev, b"three").await;
        assert!(!stale.succeeded);
        assert_eq!(
            stale.read[0].as_ref().map(|kv| kv.value.clone()),
            Some(b"two".to_vec())
        );

        // A key held by a lease goes when the lease is not kept alive.
        let lease = etcd.grant(Duration::from_secs(2)).await.expect("grant");
        let held = etcd
            .txn(
                &[Compare::Absent("/test/leader".into())],
                &[Op::Put {
                    key: "/test/leader".into(),
                    value: b"ns1".to_vec(),
                    lease: Some(lease),
                }],
                &[],
            )
            .await
            .expect("txn");
        assert!(held.succeeded);
        assert!(etcd.keep_alive(lease).await.expect("keep alive") > 0);
        let lease_held = etcd
            .txn(&[Compare::Lease("/test/leader".into(), lease)], &[], &[])
            .await
            .expect("txn");
        assert!(lease_held.succeeded);
        let mut gone = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if etcd.get("/test/leader").await.expect("get").0.is_none() {
                gone = true;
                break;
            }
        }
        assert!(gone, "the leased key outlived its lease");
        assert_eq!(etcd.keep_alive(lease).await.expect("keep alive"), 0);

        // The watch saw it all, in order.
        let mut seen = Vec::new();
        while seen.len() < 4 {
            match tokio::time::timeout(Duration::from_secs(5), changes.recv()).await {
                Ok(Some(WatchEvent::Put(kv))) => seen.push(format!(
                    "put {} {}",
                    kv.key,
                    String::from_utf8_lossy(&kv.value)
                )),
                Ok(Some(WatchEvent::Delete { key, .. })) => seen.push(format!("delete {key}")),
                Ok(Some(WatchEvent::Reset)) => {}
                other => panic!("watch: {other:?} after {seen:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                "put /test/state one",
                "put /test/state two",
                "put /test/leader ns1",
                "delete /test/leader"
            ]
        );
    });

    // One member down: the others answer. Two down: no quorum, and the
    // client says so within its timeout instead of hanging.
    cluster.members[0].kill();
    runtime().block_on(async {
        // The two left may hold an election first (a second or two).
        let mut last = None;
        for _ in 0..50 {
            match etcd.put("/test/state", b"four", None).await {
                Ok(_) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("two of three do not answer: {last:?}");
    });
    cluster.members[1].kill();
    let started = std::time::Instant::now();
    let result = runtime().block_on(etcd.put("/test/state", b"five", None));
    assert!(
        matches!(result, Err(EtcdError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// The agreed state's writes are fenced: a node whose leadership passed to
/// another cannot write, and its refused write names the new leader.
#[test]
fn a_deposed_leaders_write_is_refused_and_changes_nothing() {
    use geofailover::store::{
        LocalStore, Store, StoreError, StoredState,
        shared::{EtcdStore, Fence, Keys},
    };
    use std::sync::Mutex;
    let cluster = Cluster::start(1);
    let etcd = client(&cluster);
    let keys = Keys::new("/fence");
    runtime().block_on(async {
        // ns1 leads and writes.
        let lease1 = etcd.grant(Duration::from_secs(2)).await.expect("grant");
        let took = etcd
            .txn(
                &[Compare::Absent(keys.leader())],
                &[Op::Put {
                    key: keys.leader(),
                    value: b"ns1".to_vec(),
                    lease: Some(lease1),
                }],
                &[],
            )
            .await
            .expect("txn");
        assert!(took.succeeded);
        let fence1 = Arc::new(Mutex::new(Fence {
            lease: lease1,
            revision: 0,
        }));
        let copy1 = tempfile::tempdir().expect("tempdir");
        let ns1 = EtcdStore::new(
            etcd.clone(),
            keys.clone(),
            fence1,
            LocalStore::new(copy1.path()),
        );
        let mut state = StoredState::default();
        state.engine.epoch = 1;
        ns1.save(&state).await.expect("the leader writes");

        // Its lease runs out (a long pause); ns2 takes the lead and writes.
        let mut gone = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if etcd.get(&keys.leader()).await.expect("get").0.is_none() {
                gone = true;
                break;
            }
        }
        assert!(gone);
        let lease2 = etcd.grant(Duration::from_secs(5)).await.expect("grant");
        let took = etcd
            .txn(
                &[Compare::Absent(keys.leader())],
                &[
                    Op::Put {
                        key: keys.leader(),
                        value: b"ns2".to_vec(),
                        lease: Some(lease2),
                    },
                    Op::Get(keys.state()),
                ],
                &[],
            )
            .await
            .expect("txn");
        let revision = took.read[0].as_ref().expect("the state").mod_revision;
        let copy2 = tempfile::tempdir().expect("tempdir");
        let ns2 = EtcdStore::new(
            etcd.clone(),
            keys.clone(),
            Arc::new(Mutex::new(Fence {
                lease: lease2,
                revision,
            })),
            LocalStore::new(copy2.path()),
        );
        state.engine.epoch = 2;
        ns2.save(&state).await.expect("the new leader writes");

        // ns1 wakes up and writes what it had decided: refused.
        let mut stale = StoredState::default();
        stale.engine.epoch = 7;
        let refused = ns1.save(&stale).await;
        match refused {
            Err(StoreError::Fenced(why)) => assert!(why.contains("the leader is now ns2"), "{why}"),
            other => panic!("{other:?}"),
        }
        let kept = ns2.load().await.expect("load").expect("a state");
        assert_eq!(kept.engine.epoch, 2);
        // ns1's copy is what it wrote under its fence, not the refused state.
        let copy = LocalStore::new(copy1.path())
            .load()
            .await
            .expect("load")
            .expect("a copy");
        assert_eq!(copy.engine.epoch, 1);
    });
}

/// etcd's authentication: the client signs in with the configured user and
/// password file's secret; a wrong password is a clear refusal that does
/// not show the password.
#[test]
fn a_client_signs_in_with_a_user_and_a_wrong_password_is_refused_clearly() {
    use geofailover::config::Secret;
    let cluster = Cluster::start(1);
    let addr = cluster.endpoints()[0]
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let setup = |path: &str, body: &str| {
        let (code, reply) = common::http("POST", addr, path, None, body);
        assert_eq!(code, 200, "{path}: {reply}");
    };
    setup(
        "/v3/auth/user/add",
        r#"{"name": "root", "password": "root-secret-1"}"#,
    );
    setup("/v3/auth/user/grant", r#"{"user": "root", "role": "root"}"#);
    setup("/v3/auth/enable", "{}");
    let with = |password: &str| {
        Arc::new(
            Etcd::new(&EtcdConfig {
                endpoints: cluster.endpoints(),
                prefix: "/test".into(),
                lease_ttl: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                tls: None,
                auth: Some(("root".into(), Secret::new(password.into()))),
            })
            .expect("client"),
        )
    };
    runtime().block_on(async {
        let etcd = with("root-secret-1");
        etcd.put("/test/a", b"1", None).await.expect("signed in");
        assert_eq!(
            etcd.get("/test/a").await.expect("get").0.map(|kv| kv.value),
            Some(b"1".to_vec())
        );
        let wrong = with("not-the-password").put("/test/a", b"2", None).await;
        match wrong {
            Err(EtcdError::Refused(why)) => {
                assert!(why.contains("authentication as root failed"), "{why}");
                assert!(
                    !why.contains("not-the-password"),
                    "the password was shown: {why}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Without a user, nothing is read.
        let anonymous = client(&cluster).get("/test/a").await;
        assert!(
            matches!(anonymous, Err(EtcdError::Refused(_))),
            "{anonymous:?}"
        );
    });
}
