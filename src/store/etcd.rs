//! An etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range`,
//! `/v3/kv/txn`, `/v3/lease/grant`, `/v3/watch`...), the way Patroni
//! talks to etcd 3: plain HTTP/1.1 with reqwest, which the program already
//! has, so a build needs no protobuf compiler. Keys and values travel
//! base64-encoded; 64-bit numbers arrive as strings. Each request has a
//! timeout and goes to the first endpoint that answers.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::EtcdConfig;

/// Why a request to etcd did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered in time (down, cut off, or without quorum).
    #[error("etcd is unavailable: {0}")]
    Unavailable(String),
    /// An endpoint answered with an error.
    #[error("etcd refused the request: {0}")]
    Refused(String),
}

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key was last changed at this revision (0: absent).
    ModRevision(String, i64),
    /// The key exists and is held by this lease.
    Lease(String, i64),
}

/// An operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<i64>,
    },
    Delete(String),
    /// Deletes the keys from the first (included) to the second (not).
    DeleteRange(String, String),
    Get(String),
    /// The last key (in key order) starting with the prefix.
    Last(String),
}

/// A transaction's outcome: whether its conditions held, and the
/// revision after it.
#[derive(Debug, Clone)]
pub struct TxnResult {
    pub succeeded: bool,
    pub revision: i64,
    /// The keys `Get` and `Last` operations read, in order.
    pub read: Vec<Option<Kv>>,
}

/// A change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(Kv),
    Delete {
        key: String,
        mod_revision: i64,
    },
    /// The watch was lost and opened again: the caller should read afresh.
    Reset,
}

fn number(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The whole seconds a lease of `ttl` is asked for: never less than
/// `ttl`, so the lease outlives what the node counts on.
pub fn lease_seconds(ttl: Duration) -> u64 {
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
}

fn decode(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

fn kv_of(v: &Value) -> Kv {
    Kv {
        key: String::from_utf8_lossy(&decode(&v["key"])).into_owned(),
        value: decode(&v["value"]),
        mod_revision: number(&v["mod_revision"]),
        lease: number(&v["lease"]),
    }
}

/// The key just after every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn compare_json(c: &Compare) -> Value {
    match c {
        Compare::Absent(key) => json!({
            "key": B64.encode(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"
        }),
        Compare::ModRevision(key, rev) => json!({
            "key": B64.encode(key), "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string()
        }),
        Compare::Lease(key, lease) => json!({
            "key": B64.encode(key), "target": "LEASE", "result": "EQUAL", "lease": lease.to_string()
        }),
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut put = json!({"key": B64.encode(key), "value": B64.encode(value)});
            if let Some(lease) = lease {
                put["lease"] = json!(lease.to_string());
            }
            json!({ "request_put": put })
        }
        Op::Delete(key) => json!({"request_delete_range": {"key": B64.encode(key)}}),
        Op::DeleteRange(from, to) => json!({"request_delete_range": {
            "key": B64.encode(from), "range_end": B64.encode(to)
        }}),
        Op::Get(key) => json!({"request_range": {"key": B64.encode(key)}}),
        Op::Last(prefix) => json!({"request_range": {
            "key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)),
            "limit": "1", "sort_order": "DESCEND", "sort_target": "KEY"
        }}),
    }
}

async fn read_json(answer: reqwest::Response, base: &str) -> Result<Value, EtcdError> {
    let bytes = answer.bytes().await.map_err(|e| {
        EtcdError::Unavailable(format!("{base}: {}", crate::probe::describe_reqwest(e)))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EtcdError::Unavailable(format!("{base}: an answer that is not JSON: {e}")))
}

/// A watch running in the background; dropped, it stops.
pub struct Watch {
    events: mpsc::Receiver<WatchEvent>,
    task: tokio::task::JoinHandle<()>,
    /// The revision it is to deliver next.
    next: Arc<AtomicI64>,
}

impl Watch {
    /// The next change; `None` once the watch has ended.
    pub async fn recv(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }

    /// The newest revision whose changes it has delivered (or passed on
    /// its way to the channel).
    pub fn seen(&self) -> i64 {
        self.next.load(Ordering::Relaxed) - 1
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first.
    current: AtomicUsize,
    timeout: Duration,
    auth: Option<(String, crate::config::Secret)>,
    token: Mutex<Option<String>>,
}

impl Etcd {
    pub fn new(config: &EtcdConfig) -> Result<Self, String> {
        let mut builder = crate::probe::http_client()
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = &config.tls {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            };
            builder = builder.tls_certs_only(crate::probe::read_ca(&tls.ca_file)?);
            if let Some((cert, key)) = &tls.identity {
                let mut pem = read(cert)?;
                pem.extend(read(key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
                builder = builder.identity(identity);
            }
        }
        Ok(Self {
            http: builder
                .build()
                .map_err(|e| format!("cannot build the etcd client: {e}"))?,
            endpoints: config.endpoints.clone(),
            current: AtomicUsize::new(0),
            timeout: config.timeout,
            auth: config.auth.clone(),
            token: Mutex::new(None),
        })
    }

    fn post(&self, url: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }

    /// The token etcd's authentication gave, fetched when missing.
    async fn token(&self, base: &str, fresh: bool) -> Result<Option<String>, EtcdError> {
        let Some((user, password)) = &self.auth else {
            return Ok(None);
        };
        if !fresh && let Some(token) = self.token.lock().ok().and_then(|t| t.clone()) {
            return Ok(Some(token));
        }
        let body = json!({"name": user, "password": password.expose()});
        let answer = self
            .post(&format!("{base}/v3/auth/authenticate"), &body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                EtcdError::Unavailable(format!("{base}: {}", crate::probe::describe_reqwest(e)))
            })?;
        let status = answer.status();
        let value = read_json(answer, base).await?;
        let token = value["token"].as_str().map(str::to_string).ok_or_else(|| {
            EtcdError::Refused(format!(
                "{base}: authentication as {user} failed (HTTP {status}): {}",
                value["message"].as_str().unwrap_or("no token")
            ))
        })?;
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(token.clone());
        }
        Ok(Some(token))
    }

    /// POSTs `body` to `path` at the first endpoint that answers.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let index = (start + i) % self.endpoints.len();
            let base = &self.endpoints[index];
            match self.call_at(base, path, body).await {
                Ok(value) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(EtcdError::Refused(e)) => return Err(EtcdError::Refused(e)),
                Err(EtcdError::Unavailable(e)) => last = e,
            }
        }
        Err(EtcdError::Unavailable(last))
    }

    async fn call_at(&self, base: &str, path: &str, body: &Value) -> Result<Value, EtcdError> {
        for fresh in [false, true] {
            let token = self.token(base, fresh).await?;
            let mut request = self
                .post(&format!("{base}{path}"), body)
                .timeout(self.timeout);
            if let Some(token) = &token {
                request = request.header(reqwest::header::AUTHORIZATION, token);
            }
            let answer = request.send().await.map_err(|e| {
                EtcdError::Unavailable(format!("{base}: {}", crate::probe::describe_reqwest(e)))
            })?;
            let status = answer.status();
            let value = read_json(answer, base).await?;
            if status.is_success() {
                return Ok(value);
            }
            let message = value["message"]
                .as_str()
                .or(value["error"].as_str())
                .unwrap_or("")
                .to_string();
            // A token made before an auth change (JWT tokens: "revision of
            // auth store is old") or one that expired: authenticate anew.
            let expired = message.contains("invalid auth token")
                || message.contains("revision of auth store is old");
            if expired && !fresh && token.is_some() {
                continue;
            }
            // Without quorum (or mid-election) a member answers with an
            // error: another member may do better.
            let unavailable = message.contains("timed out")
                || message.contains("leader")
                || message.contains("no leader")
                || status.is_server_error() && !message.contains("permission denied");
            let text = format!("{base}{path}: HTTP {status}: {message}");
            return Err(if unavailable {
                EtcdError::Unavailable(text)
            } else {
                EtcdError::Refused(text)
            });
        }
        Err(EtcdError::Refused(format!(
            "{base}: the authentication token was refused twice"
        )))
    }

    /// The key and the store's revision.
    pub async fn get(&self, key: &str) -> Result<(Option<Kv>, i64), EtcdError> {
        let answer = self
            .call("/v3/kv/range", &json!({"key": B64.encode(key)}))
            .await?;
        let kv = answer["kvs"].as_array().and_then(|a| a.first()).map(kv_of);
        Ok((kv, number(&answer["header"]["revision"])))
    }

    /// Every key starting with `prefix`, in key order, and the revision.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let body = json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))});
        let answer = self.call("/v3/kv/range", &body).await?;
        let kvs = answer["kvs"]
            .as_array()
            .map(|a| a.iter().map(kv_of).collect())
            .unwrap_or_default();
        Ok((kvs, number(&answer["header"]["revision"])))
    }

    /// Puts `value` at `key` (held by `lease` when given); the revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        let mut body = json!({"key": B64.encode(key), "value": B64.encode(value)});
        if let Some(lease) = lease {
            body["lease"] = json!(lease.to_string());
        }
        let answer = self.call("/v3/kv/put", &body).await?;
        Ok(number(&answer["header"]["revision"]))
    }

    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnResult, EtcdError> {
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let answer = self.call("/v3/kv/txn", &body).await?;
        let read = answer["responses"]
            .as_array()
            .map(|responses| {
                responses
                    .iter()
                    .filter(|r| r.get("response_range").is_some())
                    .map(|r| {
                        r["response_range"]["kvs"]
                            .as_array()
                            .and_then(|a| a.first())
                            .map(kv_of)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(TxnResult {
            succeeded: answer["succeeded"].as_bool().unwrap_or(false),
            revision: number(&answer["header"]["revision"]),
            read,
        })
    }

    /// A new lease of at least `ttl` (whole seconds, rounded up: etcd
    /// counts in seconds); its id and the TTL etcd granted, which may be
    /// longer.
    pub async fn grant(&self, ttl: Duration) -> Result<(i64, Duration), EtcdError> {
        let asked = lease_seconds(ttl);
        let answer = self
            .call("/v3/lease/grant", &json!({"TTL": asked.to_string()}))
            .await?;
        match number(&answer["ID"]) {
            0 => Err(EtcdError::Refused(format!(
                "no lease granted: {}",
                answer["error"].as_str().unwrap_or("no ID")
            ))),
            id => {
                let granted = u64::try_from(number(&answer["TTL"])).unwrap_or(0);
                Ok((id, Duration::from_secs(granted.max(1))))
            }
        }
    }

    /// Renews `lease`; the seconds it has left, 0 when it has expired.
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", &json!({"ID": lease.to_string()}))
            .await?;
        Ok(number(&answer["result"]["TTL"]))
    }

    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({"ID": lease.to_string()}))
            .await
            .map(|_| ())
    }

    /// Watches every key starting with `prefix` from `revision` on, in
    /// the background; changes arrive in order. A lost watch is opened
    /// again (a `Reset` first); dropping the `Watch` ends it, even while
    /// its connection hangs.
    pub fn watch(self: &Arc<Self>, prefix: &str, revision: i64) -> Watch {
        let (events, receiver) = mpsc::channel(256);
        let etcd = self.clone();
        let prefix = prefix.to_string();
        let next = Arc::new(AtomicI64::new(revision));
        let shared = next.clone();
        let task = tokio::spawn(async move {
            loop {
                let result = etcd.watch_once(&prefix, &shared, &events).await;
                if events.is_closed() {
                    return;
                }
                if let Err(e) = result {
                    tracing::debug!("etcd watch of {prefix}: {e}");
                }
                if events.send(WatchEvent::Reset).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Watch {
            events: receiver,
            task,
            next,
        }
    }

    /// The revision of the newest change below `prefix` (0: none): what a
    /// live watch of it must have delivered soon after.
    pub async fn newest(&self, prefix: &str) -> Result<i64, EtcdError> {
        let body = json!({
            "key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)),
            "limit": "1", "sort_order": "DESCEND", "sort_target": "MOD", "keys_only": true
        });
        let answer = self.call("/v3/kv/range", &body).await?;
        Ok(answer["kvs"]
            .as_array()
            .and_then(|a| a.first())
            .map_or(0, |kv| number(&kv["mod_revision"])))
    }

    /// One watch stream, until it ends; `next` follows the events seen.
    async fn watch_once(
        &self,
        prefix: &str,
        next: &AtomicI64,
        events: &mpsc::Sender<WatchEvent>,
    ) -> Result<(), EtcdError> {
        let index = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        let base = &self.endpoints[index];
        let body = json!({"create_request": {
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "start_revision": next.load(Ordering::Relaxed).to_string(),
            "progress_notify": true,
        }});
        let mut request = self.post(&format!("{base}/v3/watch"), &body);
        if let Some(token) = self.token(base, false).await? {
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let mut answer = match request.send().await {
            Ok(answer) if answer.status().is_success() => answer,
            Ok(answer) => {
                self.current.store(index + 1, Ordering::Relaxed);
                return Err(EtcdError::Unavailable(format!(
                    "{base}: watch answered HTTP {}",
                    answer.status()
                )));
            }
            Err(e) => {
                self.current.store(index + 1, Ordering::Relaxed);
                return Err(EtcdError::Unavailable(format!(
                    "{base}: {}",
                    crate::probe::describe_reqwest(e)
                )));
            }
        };
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            // A quiet watch gets a progress notification every ten
            // minutes or so; a stalled member keeps the connection open
            // and silent: the member task compares `seen` with the newest
            // revision another member reports, and drops a watch that
            // falls behind.
            let chunk = answer.chunk().await.map_err(|e| {
                EtcdError::Unavailable(format!("{base}: {}", crate::probe::describe_reqwest(e)))
            })?;
            let Some(chunk) = chunk else {
                return Err(EtcdError::Unavailable(format!("{base}: the watch ended")));
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let result = &message["result"];
                if result["canceled"].as_bool() == Some(true) {
                    return Err(EtcdError::Refused(format!(
                        "the watch was cancelled: {}",
                        result["cancel_reason"].as_str().unwrap_or("no reason")
                    )));
                }
                for event in result["events"].as_array().into_iter().flatten() {
                    let kv = kv_of(&event["kv"]);
                    next.fetch_max(kv.mod_revision + 1, Ordering::Relaxed);
                    let change = if event["type"].as_str() == Some("DELETE") {
                        WatchEvent::Delete {
                            key: kv.key,
                            mod_revision: kv.mod_revision,
                        }
                    } else {
                        WatchEvent::Put(kv)
                    };
                    if events.send(change).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_asked_for_whole_seconds_never_shorter_than_configured() {
        assert_eq!(lease_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(lease_seconds(Duration::from_secs(3)), 3);
        assert_eq!(lease_seconds(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn prefix_ends_are_the_next_key() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn gateway_json_is_read_with_numbers_as_strings() {
        let v = json!({"key": B64.encode("/p/state"), "value": B64.encode("{}"),
            "create_revision": "4", "mod_revision": "9", "version": "2", "lease": "7587878"});
        assert_eq!(
            kv_of(&v),
            Kv {
                key: "/p/state".into(),
                value: b"{}".to_vec(),
                mod_revision: 9,
                lease: 7_587_878,
            }
        );
    }
}
