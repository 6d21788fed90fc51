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
        etcd.put("/test/state", b"four", None)
            .await
            .expect("two of three answer");
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
