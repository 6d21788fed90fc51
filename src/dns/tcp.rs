//! DNS over TCP (RFC 7766): length-prefixed messages on a connection kept
//! while queries come within the idle timeout, and no longer than its
//! lifetime however busy. Connections are capped overall and per source
//! address: past a cap, the connection idle the longest (of that address,
//! for its cap) is closed to make room, so a flood of idle connections
//! cannot take every slot nor a resolver that leaks idle connections be
//! shut out (told once a minute per source), and the accept loop never
//! stalls. Each request is answered
//! by `handler::respond` (a zone transfer on a blocking thread: it may take
//! a while to encode), and every message of its response is written in
//! order, so a transfer is as many frames as it needs. Each write must be
//! done within the idle timeout and before the connection's end: a client
//! that stops reading is reset, and its slot given back.

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore, mpsc, watch},
    task::JoinSet,
};
use tracing::{debug, warn};

use super::{ResponseCounters, SharedTable, fast, handler, transfer};
use hickory_server::net::xfer::Protocol;

/// Transfers encoded at once (the others wait their turn): each holds a
/// slice of decoded records and a few messages, whatever the zone's size.
const TRANSFERS: usize = 8;
/// Messages of a transfer made ahead of the writing.
const STREAMED: usize = 4;
/// A transfer is not cut by the connection's lifetime; this only bounds
/// the arithmetic.
const TRANSFER_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long answers still buffered may take to leave at a close.
const FLUSH_AT_CLOSE: Duration = Duration::from_secs(1);

/// Bytes read and written at a time on a connection.
const BUFFER: usize = 16 * 1024;

/// How long a stop waits for connections still answering.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What a TCP connection may take.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle: Duration,
    pub lifetime: Duration,
    pub max_connections: usize,
    pub max_per_source: usize,
}

impl TcpLimits {
    pub fn of(dns: &crate::config::DnsConfig) -> Self {
        Self {
            idle: dns.tcp_idle_timeout,
            lifetime: dns.tcp_max_lifetime,
            max_connections: dns.tcp_max_connections,
            max_per_source: dns.tcp_max_per_source,
        }
    }
}

/// The open connections, overall and by source address, and when each
/// was last busy (the HTTP side keeps its own).
#[derive(Default)]
pub(crate) struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
    idle_since: HashMap<u64, Idle>,
    next: u64,
}

/// An open connection not yet told to close: when it was last busy.
struct Idle {
    since: Instant,
    source: IpAddr,
    evict: Arc<Notify>,
}

/// Why a connection gets no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Its address has as many open as it may (on the DNS side: all of
    /// them told to close already).
    Source,
    /// All are taken, and none is idle to make room.
    Everywhere,
}

/// A place given, and whether another connection was closed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    Free,
    /// The address's cap was reached: its connection idle the longest
    /// was told to close.
    ClosedOwn,
    /// The overall cap was reached: the connection idle the longest was
    /// told to close.
    ClosedOldest,
}

/// A connection's place among the open ones, given back when dropped.
pub(crate) struct Slot {
    open: Arc<Mutex<Open>>,
    source: IpAddr,
    id: u64,
    /// Told when the connection must close to make room.
    pub(crate) evicted: Arc<Notify>,
}

impl Slot {
    /// A place for a connection from `source`. Past the cap from one
    /// address, none (why); past the overall cap, the connection idle the
    /// longest is closed to make room, so idle ones cannot keep new
    /// queries out. (The HTTP side's.)
    pub(crate) fn take(
        open: &Arc<Mutex<Open>>,
        source: IpAddr,
        limits: &TcpLimits,
    ) -> Result<Self, Full> {
        Self::place(open, source, limits, false).map(|(slot, _)| slot)
    }

    /// As `take`, but past the cap from one address that address's
    /// connection idle the longest is closed to make room, so a resolver
    /// that leaks idle connections is still answered. None when all of
    /// them were told to close already. (The DNS side's.)
    pub(crate) fn take_evicting(
        open: &Arc<Mutex<Open>>,
        source: IpAddr,
        limits: &TcpLimits,
    ) -> Result<(Self, Made), Full> {
        Self::place(open, source, limits, true)
    }

    fn place(
        open: &Arc<Mutex<Open>>,
        source: IpAddr,
        limits: &TcpLimits,
        evict_own: bool,
    ) -> Result<(Self, Made), Full> {
        let mut counts = open.lock().map_err(|_| Full::Everywhere)?;
        let mine = counts.by_source.get(&source).copied().unwrap_or(0);
        let made = if mine >= limits.max_per_source {
            if !evict_own || !counts.evict_oldest(Some(source)) {
                return Err(Full::Source);
            }
            Made::ClosedOwn
        } else if counts.total >= limits.max_connections {
            if !counts.evict_oldest(None) {
                return Err(Full::Everywhere);
            }
            Made::ClosedOldest
        } else {
            Made::Free
        };
        counts.total += 1;
        *counts.by_source.entry(source).or_default() += 1;
        let id = counts.next;
        counts.next += 1;
        let evicted = Arc::new(Notify::new());
        counts.idle_since.insert(
            id,
            Idle {
                since: Instant::now(),
                source,
                evict: evicted.clone(),
            },
        );
        Ok((
            Self {
                open: open.clone(),
                source,
                id,
                evicted,
            },
            made,
        ))
    }

    /// The connection was busy just now.
    pub(crate) fn busy(&self) {
        if let Ok(mut counts) = self.open.lock()
            && let Some(idle) = counts.idle_since.get_mut(&self.id)
        {
            idle.since = Instant::now();
        }
    }
}

impl Open {
    /// Tells the connection idle the longest (from `source`, or of all)
    /// to close; whether there was one.
    fn evict_oldest(&mut self, source: Option<IpAddr>) -> bool {
        let oldest = self
            .idle_since
            .iter()
            .filter(|(_, idle)| source.is_none_or(|s| idle.source == s))
            .min_by_key(|(_, idle)| idle.since)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.idle_since.remove(&id)) {
            Some(idle) => {
                idle.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.open.lock() {
            counts.idle_since.remove(&self.id);
            counts.total = counts.total.saturating_sub(1);
            if let Some(n) = counts.by_source.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    counts.by_source.remove(&self.source);
                }
            }
        }
    }
}

/// What every connection answers from, and the budget of transfers.
#[derive(Clone)]
struct Context {
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    /// Transfers encoded at once; the others wait their turn.
    transfers: Arc<Semaphore>,
    /// Plain queries answered from stored bytes (`dns.fast_path`).
    fast: bool,
}

/// A running TCP side: one accept loop per listener.
pub struct TcpServer {
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
}

impl TcpServer {
    pub fn start(
        listeners: Vec<TcpListener>,
        table: SharedTable,
        counters: Arc<ResponseCounters>,
        limits: TcpLimits,
        fast: bool,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        let open = Arc::new(Mutex::new(Open::default()));
        let context = Context {
            table,
            counters,
            transfers: Arc::new(Semaphore::new(TRANSFERS)),
            fast,
        };
        for listener in listeners {
            loops.spawn(accept(
                listener,
                context.clone(),
                limits,
                open.clone(),
                stopped.clone(),
            ));
        }
        Self { stop, loops }
    }

    /// Stops accepting, lets connections finish the answer under way.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.loops.join_next().await.is_some() {}
    }
}

async fn accept(
    listener: TcpListener,
    context: Context,
    limits: TcpLimits,
    open: Arc<Mutex<Open>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, src)) => match Slot::take_evicting(&open, src.ip(), &limits) {
                    Ok((slot, made)) => {
                        match made {
                            Made::Free => {}
                            Made::ClosedOwn => super::refused(
                                src.ip(),
                                &format!(
                                    "a TCP connection past the cap of {} open from one address (dns.tcp_max_per_source): its connection idle the longest was closed",
                                    limits.max_per_source
                                ),
                            ),
                            // As before: only a refusal is told.
                            Made::ClosedOldest => {}
                        }
                        connections.spawn(serve(
                            stream,
                            src,
                            context.clone(),
                            limits,
                            slot,
                            stopped.clone(),
                        ));
                    }
                    // Closed at once: the slots stay for others.
                    Err(Full::Source) => super::refused(
                        src.ip(),
                        &format!(
                            "a TCP connection past the cap of {} open from one address (dns.tcp_max_per_source), all closing",
                            limits.max_per_source
                        ),
                    ),
                    Err(Full::Everywhere) => super::refused(
                        src.ip(),
                        &format!(
                            "a TCP connection past the cap of {} open (dns.tcp_max_connections), none idle",
                            limits.max_connections
                        ),
                    ),
                },
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    warn!("tcp accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn serve(
    stream: TcpStream,
    src: SocketAddr,
    context: Context,
    limits: TcpLimits,
    slot: Slot,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    // Pipelined queries (RFC 7766 section 6.2.1.1) are read many at a
    // time, and their answers written out together once no further
    // query is waiting: one read and one write for a burst, not two
    // reads and a write per query.
    let mut reader = BufReader::with_capacity(BUFFER, reader);
    let mut writer = BufWriter::with_capacity(BUFFER, writer);
    let end = tokio::time::Instant::now() + limits.lifetime;
    let mut packet = Vec::with_capacity(512);
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(1);
    let mut spare: Option<Vec<u8>> = None;
    loop {
        // Idle for `idle` at most, and never past the connection's end.
        let idle = limits
            .idle
            .min(end.saturating_duration_since(tokio::time::Instant::now()));
        if idle.is_zero() {
            break;
        }
        let mut length = [0u8; 2];
        if reader.buffer().len() >= 2 {
            // Already read: no wait, no timer.
            let _ = reader.read_exact(&mut length).await;
        } else {
            let read = tokio::select! {
                _ = stopped.changed() => break,
                _ = slot.evicted.notified() => break,
                read = tokio::time::timeout(idle, reader.read_exact(&mut length)) => read,
            };
            match read {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        packet.resize(usize::from(u16::from_be_bytes(length)), 0);
        if reader.buffer().len() >= packet.len() {
            let _ = reader.read_exact(&mut packet).await;
        } else {
            match tokio::time::timeout(idle, reader.read_exact(&mut packet)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        slot.busy();
        messages.clear();
        let rcode = if transfer::asks_transfer(&packet) {
            let request = std::mem::take(&mut packet);
            match stream_transfer(&context, request, src, &mut writer, &limits, &slot).await {
                Ok(rcode) => {
                    if let Some(rcode) = rcode {
                        context.counters.count(rcode);
                    }
                    continue;
                }
                Err(e) => {
                    debug!(%src, "tcp transfer: {e}");
                    if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::ConnectionAborted) {
                        let _ = writer.get_ref().as_ref().set_zero_linger();
                    }
                    break;
                }
            }
        } else {
            let served = context.table.load();
            let mut answer = spare.take().unwrap_or_default();
            match context
                .fast
                .then(|| fast::answer_tcp(&served, &packet, &mut answer))
                .flatten()
            {
                Some(rcode) => {
                    messages.push(answer);
                    Some(rcode)
                }
                None => {
                    spare = Some(answer);
                    handler::respond(&served, &packet, src, Protocol::Tcp, &mut messages)
                }
            }
        };
        if messages.is_empty() {
            // Not a query we can answer (no header, a response): nothing
            // more is expected of this connection.
            break;
        }
        // Flushed when no whole query waits in the buffer: the answers
        // to a burst leave together.
        let waiting = reader.buffer();
        let more = waiting.len() >= 2
            && waiting.len() >= 2 + usize::from(u16::from_be_bytes([waiting[0], waiting[1]]));
        if let Err(e) = write_answer(&mut writer, &messages, &limits, end, &slot, !more).await {
            debug!(%src, "tcp write: {e}");
            if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::ConnectionAborted) {
                // A client that stopped reading: reset rather than leave
                // the kernel holding the unsent rest for it.
                let _ = writer.get_ref().as_ref().set_zero_linger();
            }
            break;
        }
        if let Some(rcode) = rcode {
            context.counters.count(rcode);
        }
        // The buffer of an answer is used again for the next.
        if spare.is_none() {
            spare = messages.pop();
        }
    }
    // Answers written but not yet flushed (the next query was already
    // waiting) go out before the connection closes, if the client takes
    // them.
    let _ = tokio::time::timeout(FLUSH_AT_CLOSE, writer.flush()).await;
}

/// Sends a transfer's messages on to the connection as they are made.
struct Streamed(mpsc::Sender<Vec<u8>>);

impl transfer::Out for Streamed {
    fn put(&mut self, message: Vec<u8>) -> bool {
        self.0.blocking_send(message).is_ok()
    }
}

/// Answers a transfer (or any request that asks for one): encoded on a
/// blocking thread within the budget of transfers at once (waiting its
/// turn no longer than the idle timeout, answers buffered before it sent
/// first), each message written as it is made, at most `STREAMED` made
/// ahead of the writing, so a zone is never held encoded whole and a
/// client that stops reading stops the encoding too. Each message must
/// be taken within the idle timeout, but the connection's lifetime does
/// not cut a transfer (a large zone over a slow link takes long, as NSD
/// and Knot allow); the connection counts as busy while it runs. An
/// error, or a transfer cut short, closes the connection.
async fn stream_transfer(
    context: &Context,
    request: Vec<u8>,
    src: SocketAddr,
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    limits: &TcpLimits,
    slot: &Slot,
) -> std::io::Result<Option<hickory_proto::op::ResponseCode>> {
    let end = tokio::time::Instant::now() + TRANSFER_LIFETIME;
    within(limits, end, slot, writer.flush()).await?;
    let turn = context.transfers.clone().acquire_owned();
    let permit = within(limits, end, slot, async {
        turn.await.map_err(std::io::Error::other)
    })
    .await?;
    let served = context.table.load_full();
    let (sender, mut made) = mpsc::channel(STREAMED);
    let encoding = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = Streamed(sender);
        handler::respond(&served, &request, src, Protocol::Tcp, &mut out)
    });
    let mut written = 0usize;
    let mut first_rcode = None;
    while let Some(message) = made.recv().await {
        first_rcode.get_or_insert(message.get(3).map_or(0, |b| b & 0x0F));
        // Dropping `made` on an error stops the encoder at its next message.
        write_answer(
            writer,
            std::slice::from_ref(&message),
            limits,
            end,
            slot,
            false,
        )
        .await?;
        slot.busy();
        written += 1;
    }
    let rcode = encoding.await.map_err(std::io::Error::other)?;
    if written == 0 {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "not a request that can be answered",
        ));
    }
    // A SERVFAIL after answers began: the zone was cut short.
    let servfail = u16::from(hickory_proto::op::ResponseCode::ServFail) as u8;
    if rcode == Some(hickory_proto::op::ResponseCode::ServFail) && first_rcode != Some(servfail) {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "a transfer cut short",
        ));
    }
    within(limits, end, slot, writer.flush()).await?;
    Ok(rcode)
}

/// Writes an answer's messages in order, then flushes when `flush`: each write within
/// the idle timeout (a client that stops reading is idle too) and none
/// past the connection's end, so a client that stops reading cannot
/// keep its connection, and its slot, for ever.
async fn write_answer(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    messages: &[Vec<u8>],
    limits: &TcpLimits,
    end: tokio::time::Instant,
    slot: &Slot,
    flush: bool,
) -> std::io::Result<()> {
    for message in messages {
        let Ok(length) = u16::try_from(message.len()) else {
            warn!("a TCP answer over 64 KiB was not sent");
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "an answer over 64 KiB",
            ));
        };
        within(limits, end, slot, async {
            writer.write_all(&length.to_be_bytes()).await?;
            writer.write_all(message).await
        })
        .await?;
    }
    if !flush {
        return Ok(());
    }
    within(limits, end, slot, writer.flush()).await
}

/// `write`, given the idle timeout, no longer than the connection's end,
/// and not once the connection is told to make room.
async fn within<T>(
    limits: &TcpLimits,
    end: tokio::time::Instant,
    slot: &Slot,
    write: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    let deadline = (tokio::time::Instant::now() + limits.idle).min(end);
    let written = tokio::select! {
        // Told to make room (a cap reached) while the client does not
        // read: it goes now, not at the next read.
        _ = slot.evicted.notified() => {
            return Err(std::io::Error::new(
                ErrorKind::ConnectionAborted,
                "closed to make room for another connection",
            ));
        }
        written = tokio::time::timeout_at(deadline, write) => written,
    };
    match written {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(
            ErrorKind::TimedOut,
            if deadline == end {
                "the connection's lifetime (dns.tcp_max_lifetime) ended while writing"
            } else {
                "the client read nothing for the idle timeout (dns.tcp_idle_timeout)"
            },
        )),
    }
}
