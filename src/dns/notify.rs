//! The secondaries: each listed in a zone's `notify` is sent a NOTIFY
//! (RFC 1996) at every change of the zone's serial, from
//! `dns.notify_source` (with several nodes, the node's own
//! `notify_source`) when set, TSIG-signed when a key is named, and
//! retried with backoff while it does not answer. A secondary that
//! answers with an error (REFUSED: it does not take NOTIFY from this
//! address or key) is tried `REFUSALS_MAX` times per change, then left
//! alone until the next change, said once in the log and kept in the
//! status. Then its SOA is asked until it serves the new serial, and again
//! every half minute, so the status says whether each secondary has
//! caught up.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};
use serde::{Deserialize, Serialize};
use tokio::{net::UdpSocket, sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use super::tsig;
use crate::{
    config::{Config, TsigKey},
    control::now_ms,
};

/// How long one NOTIFY or SOA query waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between two NOTIFYs of the same change.
const NOTIFY_BACKOFF_MAX: Duration = Duration::from_secs(16);
/// The longest wait between two SOA queries while a secondary is behind.
const BEHIND_POLL_MAX: Duration = Duration::from_secs(5);
/// SOA queries once a secondary has caught up.
const CAUGHT_UP_POLL: Duration = Duration::from_secs(30);
/// NOTIFYs of one change a secondary may refuse before it is left alone
/// until the next change (a refusal is an answer: retrying will not
/// change its mind, but one may come while it loads the zone).
const REFUSALS_MAX: u32 = 3;

/// One secondary of one zone, as last seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecondaryStatus {
    pub zone: String,
    pub address: String,
    /// The TSIG key's name, when one signs.
    pub key: Option<String>,
    /// The serial it is to have.
    pub serial: u32,
    /// The last serial whose NOTIFY it acknowledged, and when (ms).
    pub notified_serial: Option<u32>,
    pub notified_at: Option<u64>,
    /// The serial its SOA answered with, and when (ms).
    pub answered_serial: Option<u32>,
    pub answered_at: Option<u64>,
    /// It answers the serial geofailover serves.
    pub caught_up: bool,
    /// Why the last NOTIFY or SOA query failed, while that lasts.
    pub error: Option<String>,
}

type Shared = Arc<Mutex<BTreeMap<(String, String), SecondaryStatus>>>;

/// The secondaries' tasks and what they found.
pub struct Secondaries {
    serials: watch::Sender<BTreeMap<String, u32>>,
    status: Shared,
    workers: Vec<JoinHandle<()>>,
}

impl Default for Secondaries {
    fn default() -> Self {
        Self {
            serials: watch::channel(BTreeMap::new()).0,
            status: Shared::default(),
            workers: Vec::new(),
        }
    }
}

impl Drop for Secondaries {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

impl Secondaries {
    /// Starts (or, on reload, restarts) a task per zone and secondary.
    pub fn configure(&mut self, config: &Config) {
        for worker in self.workers.drain(..) {
            worker.abort();
        }
        let mut status = BTreeMap::new();
        for zone in &config.zones {
            let name = zone.origin.to_string();
            for target in &zone.transfer.notify {
                let key = target
                    .key
                    .as_ref()
                    .and_then(|k| config.tsig_keys.iter().find(|t| &t.name == k))
                    .cloned();
                let id = (name.clone(), target.addr.to_string());
                let old = self.status.lock().ok().and_then(|s| s.get(&id).cloned());
                status.insert(
                    id,
                    old.unwrap_or_else(|| SecondaryStatus {
                        zone: name.clone(),
                        address: target.addr.to_string(),
                        key: key.as_ref().map(|k| k.name.to_string()),
                        serial: 0,
                        notified_serial: None,
                        notified_at: None,
                        answered_serial: None,
                        answered_at: None,
                        caught_up: false,
                        error: None,
                    }),
                );
                let worker = Worker {
                    zone: zone.origin.clone(),
                    target: target.addr,
                    source: config
                        .dns
                        .notify_source
                        .iter()
                        .find(|s| s.is_ipv4() == target.addr.is_ipv4())
                        .copied(),
                    key,
                    status: self.status.clone(),
                };
                self.workers
                    .push(tokio::spawn(worker.run(self.serials.subscribe())));
            }
        }
        if let Ok(mut shared) = self.status.lock() {
            *shared = status;
        }
    }

    /// The serials served now: a secondary behind them is notified.
    pub fn serve(&self, serials: &BTreeMap<String, u32>) {
        self.serials.send_if_modified(|current| {
            let changed = current != serials;
            if changed {
                current.clone_from(serials);
            }
            changed
        });
    }

    /// Every secondary's address, once.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let mut addresses: Vec<SocketAddr> = self
            .status()
            .iter()
            .filter_map(|s| s.address.parse().ok())
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    pub fn status(&self) -> Vec<SecondaryStatus> {
        self.status
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Why a NOTIFY was not acknowledged.
enum NotNotified {
    /// It answered with this error.
    Refused(ResponseCode),
    /// No answer, or none that could be read.
    Failed(String),
}

struct Worker {
    zone: Name,
    target: SocketAddr,
    /// Where to send from; `None`: the kernel's choice.
    source: Option<IpAddr>,
    key: Option<TsigKey>,
    status: Shared,
}

impl Worker {
    fn update(&self, change: impl FnOnce(&mut SecondaryStatus)) {
        if let Ok(mut status) = self.status.lock()
            && let Some(entry) = status.get_mut(&(self.zone.to_string(), self.target.to_string()))
        {
            change(entry);
        }
    }

    async fn run(self, mut serials: watch::Receiver<BTreeMap<String, u32>>) {
        let zone = self.zone.to_string();
        // A secondary that refuses is said so once (until it acknowledges).
        let mut told_refusal = false;
        'change: loop {
            let wanted = serials.borrow_and_update().get(&zone).copied();
            let Some(wanted) = wanted else {
                if serials.changed().await.is_err() {
                    return;
                }
                continue;
            };
            self.update(|s| {
                s.serial = wanted;
                s.caught_up = s.answered_serial == Some(wanted);
            });
            // NOTIFY until it is acknowledged, refused too often, or the
            // serial moves on.
            let mut wait = Duration::from_millis(500);
            let mut told_failure = false;
            let mut refusals = 0;
            let mut refused = false;
            loop {
                match self.notify().await {
                    Ok(()) => {
                        self.update(|s| {
                            s.notified_serial = Some(wanted);
                            s.notified_at = Some(now_ms());
                            s.error = None;
                        });
                        told_refusal = false;
                        info!(zone = %zone, secondary = %self.target, serial = wanted, "NOTIFY acknowledged");
                        break;
                    }
                    Err(NotNotified::Refused(rcode)) => {
                        refusals += 1;
                        if refusals < REFUSALS_MAX {
                            self.update(|s| s.error = Some(format!("NOTIFY: it answered {rcode}")));
                        } else {
                            let error = format!(
                                "NOTIFY refused: it answered {rcode} {refusals} times; not sent again until the next change (does it take NOTIFY from {} {}?)",
                                self.source.map_or(
                                    "the kernel's choice of source address (notify_source sets it)"
                                        .to_string(),
                                    |s| s.to_string()
                                ),
                                self.key
                                    .as_ref()
                                    .map_or("without a key".to_string(), |k| format!(
                                        "with key {}",
                                        k.name
                                    )),
                            );
                            if told_refusal {
                                debug!(zone = %zone, secondary = %self.target, serial = wanted, "{error}");
                            } else {
                                warn!(zone = %zone, secondary = %self.target, serial = wanted, "{error}");
                                told_refusal = true;
                            }
                            self.update(|s| s.error = Some(error));
                            refused = true;
                            break;
                        }
                    }
                    Err(NotNotified::Failed(e)) => {
                        if !told_failure {
                            warn!(zone = %zone, secondary = %self.target, "NOTIFY not acknowledged, retrying: {e}");
                            told_failure = true;
                        }
                        self.update(|s| s.error = Some(format!("NOTIFY: {e}")));
                    }
                }
                tokio::select! {
                    changed = serials.changed() => {
                        if changed.is_err() { return; }
                        continue 'change;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(NOTIFY_BACKOFF_MAX);
            }
            // Then its SOA, until it serves the serial, and now and then after.
            let mut wait = Duration::from_millis(100);
            loop {
                let caught_up = match self.soa().await {
                    Ok(serial) => {
                        self.update(|s| {
                            s.answered_serial = Some(serial);
                            s.answered_at = Some(now_ms());
                            s.caught_up = serial == wanted;
                            // A refused NOTIFY stays in view while it is behind.
                            if s.caught_up || !refused {
                                s.error = None;
                            }
                        });
                        serial == wanted
                    }
                    Err(e) => {
                        self.update(|s| {
                            s.caught_up = false;
                            s.error = Some(format!("SOA query: {e}"));
                        });
                        false
                    }
                };
                let pause = if caught_up {
                    CAUGHT_UP_POLL
                } else {
                    wait = (wait * 2).min(BEHIND_POLL_MAX);
                    wait
                };
                tokio::select! {
                    changed = serials.changed() => {
                        if changed.is_err() { return; }
                        continue 'change;
                    }
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    async fn notify(&self) -> Result<(), NotNotified> {
        let answer = self
            .ask(OpCode::Notify)
            .await
            .map_err(NotNotified::Failed)?;
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            rcode => Err(NotNotified::Refused(rcode)),
        }
    }

    async fn soa(&self) -> Result<u32, String> {
        let answer = self.ask(OpCode::Query).await?;
        if answer.metadata.response_code != ResponseCode::NoError {
            return Err(format!("it answered {}", answer.metadata.response_code));
        }
        answer
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
            .ok_or_else(|| "its answer holds no SOA".to_string())
    }

    /// Sends a NOTIFY or an SOA query for the zone and waits for the
    /// answer with its ID (checked against the key when one signs).
    async fn ask(&self, opcode: OpCode) -> Result<Message, String> {
        let mut id = [0u8; 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| "no random ID".to_string())?;
        let id = u16::from_be_bytes(id);
        let mut message = Message::new(id, MessageType::Query, opcode);
        message.metadata.authoritative = opcode == OpCode::Notify;
        message.add_query(Query::query(self.zone.clone(), RecordType::SOA));
        let mut bytes = message.to_vec().map_err(|e| e.to_string())?;
        let mac = self
            .key
            .as_ref()
            .map(|key| tsig::sign_request(&mut bytes, key, tsig::now()));
        let local: SocketAddr = match self.source {
            Some(source) => (source, 0).into(),
            None if self.target.is_ipv4() => ([0, 0, 0, 0], 0).into(),
            None => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let (answer, parsed) = exchange(local, self.target, &bytes, id, ANSWER_WAIT).await?;
        if let (Some(key), Some(mac)) = (&self.key, &mac) {
            tsig::verify_response(&answer, key, mac, tsig::now())?;
        }
        Ok(parsed)
    }
}

/// Sends the query `bytes` (ID `id`) from `local` to `target` over UDP and
/// waits up to `wait` for the response with that ID (anything else that
/// arrives is dropped): its bytes, parsed.
pub async fn exchange(
    local: SocketAddr,
    target: SocketAddr,
    bytes: &[u8],
    id: u16,
    wait: std::time::Duration,
) -> Result<(Vec<u8>, Message), String> {
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot send from {}: {e}", local.ip()))?;
    socket.connect(target).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {} ms", wait.as_millis())),
        };
        let answer = &buffer[..n];
        let Ok(parsed) = Message::from_vec(answer) else {
            continue;
        };
        if parsed.metadata.id != id || parsed.metadata.message_type != MessageType::Response {
            continue;
        }
        return Ok((answer.to_vec(), parsed));
    }
}
