//! Our own UDP loop: one thread per socket, blocked in recvmmsg until a
//! datagram arrives, then taking up to `BATCH` at once, answering each
//! inline (from the precomputed or learned answers when a query is plain,
//! else the general way) and sending the replies in one sendmmsg. Per batch that is
//! two system calls and no readiness polling, no task per datagram, no
//! channel for replies, no allocation.

use std::{
    io::{self, ErrorKind, IoSlice, IoSliceMut},
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use hickory_proto::op::ResponseCode;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tracing::{debug, error, warn};

use super::{
    ResponseCounters, SharedTable, fast, handler,
    rrl::{Limiter, RrlConfig, Verdict},
};

/// Datagrams taken per system call.
const BATCH: usize = 32;
/// The largest query read; longer ones are cut and then fail to parse.
const MAX_QUERY: usize = 4096;
/// How long a quiet socket waits before looking at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// A running UDP loop; `stop` (or dropping it) ends it within
/// `STOP_CHECK`.
pub struct UdpLoop {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpLoop {
    /// Asks the loop to end, without waiting.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Asks the loop to end and waits for it (off the async runtime).
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for UdpLoop {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Sets an integer socket option.
fn set_int_option(socket: &UdpSocket, level: i32, name: i32, value: i32) -> io::Result<()> {
    use nix::libc;
    // SAFETY: a socket descriptor we own, a pointer to a c_int that lives
    // across the call, and that c_int's size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns path MTU discovery off for answers (IP_PMTUDISC_OMIT, as gdnsd
/// does): the kernel neither sets DF nor believes ICMP "fragmentation
/// needed", so a forged one cannot make us fragment answers, which are at
/// most 1232 bytes anyway.
fn omit_path_mtu_discovery(socket: &UdpSocket) -> io::Result<()> {
    use nix::libc;
    if socket.local_addr()?.is_ipv6() {
        set_int_option(
            socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_OMIT,
        )?;
        // A dual-stack socket also sends IPv4; a v6-only one refuses this.
        let _ = set_int_option(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_OMIT,
        );
        Ok(())
    } else {
        set_int_option(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_OMIT,
        )
    }
}

/// Starts answering on `socket` in a thread of its own.
pub fn spawn(
    socket: UdpSocket,
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    fast_path: bool,
    rrl: RrlConfig,
) -> io::Result<UdpLoop> {
    if let Err(e) = omit_path_mtu_discovery(&socket) {
        // Some kernels and sandboxes lack the option: answers still go out.
        warn!("cannot turn path MTU discovery off for UDP answers: {e}");
    }
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new().name("dns-udp".into()).spawn({
        let stop = stop.clone();
        move || {
            // A panic answering one datagram must not end UDP service:
            // the loop starts again (the datagrams of that batch are lost).
            while !stop.load(Ordering::Relaxed) {
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    serve(&socket, &table, &counters, fast_path, &rrl, &stop)
                }));
                if served.is_err() {
                    error!("the UDP loop panicked; it starts again");
                }
            }
        }
    })?;
    Ok(UdpLoop {
        stop,
        thread: Some(thread),
    })
}

fn serve(
    socket: &UdpSocket,
    table: &SharedTable,
    counters: &ResponseCounters,
    fast_path: bool,
    rrl: &RrlConfig,
    stop: &AtomicBool,
) {
    let mut limiter = Limiter::new(rrl.clone());
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    // Per datagram received: its buffer's index, length and sender.
    let mut received: Vec<(usize, usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
    // Per reply, in sending order: its buffer's index, and (in `to` and
    // `rcodes`) its address and rcode.
    let mut answered: Vec<usize> = Vec::with_capacity(BATCH);
    let mut to: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    let mut rcodes: Vec<ResponseCode> = Vec::with_capacity(BATCH);
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut recent = fast::Recent::default();
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = {
                let mut rest = &mut bufs[..];
                std::array::from_fn(|_| {
                    let (first, tail) = std::mem::take(&mut rest).split_at_mut(1);
                    rest = tail;
                    [IoSliceMut::new(&mut first[0][..])]
                })
            };
            // Blocks for the first datagram (up to STOP_CHECK), then takes
            // whatever else is queued without waiting.
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => {
                    for (i, msg) in results.enumerate() {
                        if let Some(addr) = msg.address {
                            received.push((i, msg.bytes, addr));
                        }
                    }
                }
                Err(e) => {
                    let e = io::Error::from(e);
                    if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                        // An ICMP error for an earlier reply, and the like.
                        debug!("udp receive: {e}");
                    }
                    continue;
                }
            }
        }
        let served = table.load();
        let now = std::time::Instant::now();
        answered.clear();
        to.clear();
        rcodes.clear();
        for &(i, len, addr) in &received {
            let packet = &bufs[i][..len];
            let out = &mut outs[i];
            out.clear();
            let Some(src) = to_std(&addr).filter(|a| a.port() != 0) else {
                continue;
            };
            let fast = if fast_path {
                recent.answer(&served, packet, out)
            } else {
                None
            };
            match fast.or_else(|| fast::general(&served, packet, src, out)) {
                Some(rcode) if !out.is_empty() => {
                    match limiter.check(src.ip(), out, now, &counters.rrl) {
                        Verdict::Send => {}
                        Verdict::Slip => handler::slip(&served, packet, out),
                        Verdict::Drop => continue,
                    }
                    answered.push(i);
                    to.push(Some(addr));
                    rcodes.push(rcode);
                }
                _ => {}
            }
        }
        drop(served);
        if answered.is_empty() {
            continue;
        }
        let mut replies: [[IoSlice<'_>; 1]; BATCH] = [[IoSlice::new(&[])]; BATCH];
        for (slot, &i) in replies.iter_mut().zip(&answered) {
            *slot = [IoSlice::new(&outs[i])];
        }
        let replies = &replies[..answered.len()];
        // Never waits: with the send buffer full, a reply is dropped, as
        // the network may drop it anyway, and the loop goes on receiving.
        let mut sent = 0;
        while sent < replies.len() {
            match sendmmsg(
                fd,
                &mut send_headers,
                &replies[sent..],
                &to[sent..],
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let n = results.count();
                    if n == 0 {
                        break;
                    }
                    for rcode in &rcodes[sent..sent + n] {
                        counters.count(*rcode);
                    }
                    sent += n;
                }
                Err(e) => {
                    let e = io::Error::from(e);
                    if e.kind() != ErrorKind::Interrupted {
                        debug!("udp send: {e}");
                        // Skip the reply that failed, keep the rest.
                        sent += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_option(socket: &UdpSocket, level: i32, name: i32) -> i32 {
        use nix::libc;
        let mut value: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as in set_int_option, with a writable c_int and its size.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&raw mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn answers_go_out_without_path_mtu_discovery() {
        use nix::libc;
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        omit_path_mtu_discovery(&v4).unwrap();
        assert_eq!(
            int_option(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_OMIT
        );
        // IPv6 where the machine has it.
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            omit_path_mtu_discovery(&v6).unwrap();
            assert_eq!(
                int_option(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
                libc::IPV6_PMTUDISC_OMIT
            );
        }
    }
}
