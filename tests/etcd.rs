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

/// A leadership held under `lease`, building on `revision`, for a minute.
fn leading(lease: i64, revision: i64) -> geofailover::store::shared::Leadership {
    use geofailover::store::shared::{Fence, Leadership};
    let leadership = Leadership::shared(Duration::ZERO);
    leadership.update(|f| {
        *f = Fence {
            lease,
            revision,
            deadline: Some(std::time::Instant::now() + Duration::from_secs(60)),
            member_until: None,
        }
    });
    leadership
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
        let (lease, _) = etcd.grant(Duration::from_secs(2)).await.expect("grant");
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
        shared::{EtcdStore, Keys},
    };
    let cluster = Cluster::start(1);
    let etcd = client(&cluster);
    let keys = Keys::new("/fence");
    runtime().block_on(async {
        // ns1 leads and writes.
        let (lease1, _) = etcd.grant(Duration::from_secs(2)).await.expect("grant");
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
        let fence1 = leading(lease1, 0);
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
        let (lease2, _) = etcd.grant(Duration::from_secs(5)).await.expect("grant");
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
            leading(lease2, revision),
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

/// A state write that committed at etcd but whose answer was lost (the
/// member's answers dropped, so the client asked another member, which
/// found the revision moved) is read back and reported stored, not
/// refused: the leader neither deposes itself nor tells the operator "not
/// carried out" for a change that is in force.
#[test]
fn a_state_write_whose_answer_was_lost_is_read_back_and_counted_stored() {
    use geofailover::store::{
        LocalStore, Store, StoredState,
        shared::{EtcdStore, Keys},
    };
    let cluster = Cluster::start(3);
    let etcd = client(&cluster);
    let keys = Keys::new("/lost");
    runtime().block_on(async {
        let (lease, _) = etcd.grant(Duration::from_secs(30)).await.expect("grant");
        etcd.put(&keys.leader(), b"ns1", Some(lease))
            .await
            .expect("leader key");
        let copy = tempfile::tempdir().expect("tempdir");
        let store = EtcdStore::new(
            etcd.clone(),
            keys.clone(),
            leading(lease, 0),
            LocalStore::new(copy.path()),
        );
        let mut state = StoredState::default();
        state.engine.epoch = 1;
        store.save(&state).await.expect("the first write");
        // The first member takes requests; its answers are dropped.
        let silenced = common::netns::SilencedPort::new(cluster.members[0].port());
        state.engine.epoch = 2;
        let saved = store.save(&state).await;
        drop(silenced);
        saved.expect("a write that committed is reported stored");
        let (kv, _) = etcd.get(&keys.state()).await.expect("get");
        let stored: StoredState =
            serde_json::from_slice(&kv.expect("the state").value).expect("json");
        assert_eq!(stored.engine.epoch, 2);
        // The fence follows the write: the next one builds on it.
        state.engine.epoch = 3;
        store.save(&state).await.expect("the next write");
    });
}

/// With JWT tokens, every auth change makes etcd refuse the tokens signed
/// before it ("revision of auth store is old"): the client signs in again
/// and goes on, instead of losing etcd until restarted.
#[test]
fn a_jwt_token_made_stale_by_an_auth_change_is_renewed() {
    use geofailover::config::Secret;
    let keys = tempfile::tempdir().expect("tempdir");
    let private = keys.path().join("jwt.key");
    let public = keys.path().join("jwt.pub");
    let openssl = |args: &[&str]| common::tls::openssl(keys.path(), args);
    openssl(&["genrsa", "-out", &private.display().to_string(), "2048"]);
    openssl(&[
        "rsa",
        "-in",
        &private.display().to_string(),
        "-pubout",
        "-out",
        &public.display().to_string(),
    ]);
    let jwt = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=RS256,ttl=10m",
        public.display(),
        private.display()
    );
    let cluster = Cluster::start_with(&["127.0.0.1".parse().expect("ip")], &[jwt]);
    let addr = cluster.endpoints()[0]
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    // etcd takes the bare token in Authorization (no "Bearer").
    let admin = |path: &str, body: &str, token: Option<&str>| {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect::<std::net::SocketAddr>(addr).expect("connect");
        let auth = token
            .map(|t| format!("Authorization: {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read");
        assert!(reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
        // The JSON body, chunked or not.
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        match (body.find('{'), body.rfind('}')) {
            (Some(from), Some(to)) => body[from..=to].to_string(),
            _ => String::new(),
        }
    };
    admin(
        "/v3/auth/user/add",
        r#"{"name": "root", "password": "root-secret-1"}"#,
        None,
    );
    admin(
        "/v3/auth/user/grant",
        r#"{"user": "root", "role": "root"}"#,
        None,
    );
    admin("/v3/auth/enable", "{}", None);
    let etcd = Arc::new(
        Etcd::new(&EtcdConfig {
            endpoints: cluster.endpoints(),
            prefix: "/test".into(),
            lease_ttl: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            tls: None,
            auth: Some(("root".into(), Secret::new("root-secret-1".into()))),
        })
        .expect("client"),
    );
    runtime().block_on(async {
        etcd.put("/test/a", b"1", None).await.expect("signed in");
        // An operator changes the auth store: every token so far is stale.
        let reply = admin(
            "/v3/auth/authenticate",
            r#"{"name": "root", "password": "root-secret-1"}"#,
            None,
        );
        let token: serde_json::Value = serde_json::from_str(&reply).expect("json");
        let token = token["token"].as_str().expect("a token").to_string();
        admin(
            "/v3/auth/user/add",
            r#"{"name": "reader", "password": "reader-secret"}"#,
            Some(&token),
        );
        etcd.put("/test/a", b"2", None)
            .await
            .expect("a stale token is renewed");
        assert_eq!(
            etcd.get("/test/a").await.expect("get").0.map(|kv| kv.value),
            Some(b"2".to_vec())
        );
    });
}
