//! Our own UDP loop: each socket is drained in batches, up to `BATCH`
//! datagrams a system call (recvmmsg), answered inline (from the
//! precomputed answers when a query is plain, else the general way), and
//! the replies sent back in one system call (sendmmsg). No task per
//! datagram, no channel for replies.

use std::{
    io::{ErrorKind, IoSlice, IoSliceMut},
    net::SocketAddr,
    os::fd::AsRawFd,
    sync::Arc,
};

use hickory_proto::op::ResponseCode;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::{io::Interest, net::UdpSocket, task::JoinHandle};
use tracing::debug;

use super::{ResponseCounters, SharedTable, fast};

/// Datagrams taken per system call.
const BATCH: usize = 32;
/// The largest query read; longer ones are cut and then fail to parse.
const MAX_QUERY: usize = 4096;

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// Starts answering on `socket`.
pub fn spawn(
    socket: UdpSocket,
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    fast_path: bool,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let fd = socket.as_raw_fd();
        let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
        let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
        let mut received: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
        let mut rcodes: Vec<ResponseCode> = Vec::with_capacity(BATCH);
        loop {
            if socket.readable().await.is_err() {
                return;
            }
            loop {
                received.clear();
                let got = socket.try_io(Interest::READABLE, || {
                    // The headers hold raw pointers (not Send): made per batch.
                    let mut recv_headers =
                        MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
                    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                        .iter_mut()
                        .map(|b| [IoSliceMut::new(&mut b[..])])
                        .collect();
                    let results = recvmmsg(
                        fd,
                        &mut recv_headers,
                        iovs.iter_mut(),
                        MsgFlags::MSG_DONTWAIT,
                        None,
                    )
                    .map_err(std::io::Error::from)?;
                    for msg in results {
                        if let Some(addr) = msg.address {
                            received.push((msg.bytes, addr));
                        }
                    }
                    Ok(())
                });
                match got {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // An ICMP error for an earlier reply, and the like.
                    Err(e) => {
                        debug!("udp receive: {e}");
                        continue;
                    }
                }
                if received.is_empty() {
                    continue;
                }
                // Answer each; a datagram left unanswered gets an empty slot.
                let served = table.load();
                let mut to: Vec<Option<SockaddrStorage>> = Vec::with_capacity(received.len());
                rcodes.clear();
                for (i, (len, addr)) in received.iter().enumerate() {
                    let packet = &bufs[i][..*len];
                    let out = &mut outs[i];
                    out.clear();
                    let Some(src) = to_std(addr).filter(|a| a.port() != 0) else {
                        continue;
                    };
                    let fast = if fast_path {
                        served.fast.answer(packet, out)
                    } else {
                        None
                    };
                    if let Some(rcode) = fast.or_else(|| fast::general(&served, packet, src, out)) {
                        to.push(Some(*addr));
                        rcodes.push(rcode);
                    } else {
                        out.clear();
                    }
                }
                drop(served);
                // Replies in the order of `to`: the non-empty outs.
                let replies: Vec<[IoSlice<'_>; 1]> = outs[..received.len()]
                    .iter()
                    .filter(|o| !o.is_empty())
                    .map(|o| [IoSlice::new(o)])
                    .collect();
                if replies.is_empty() {
                    continue;
                }
                let mut sent = 0;
                while sent < replies.len() {
                    let result = socket.try_io(Interest::WRITABLE, || {
                        let mut send_headers =
                            MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
                        sendmmsg(
                            fd,
                            &mut send_headers,
                            &replies[sent..],
                            &to[sent..],
                            [],
                            MsgFlags::MSG_DONTWAIT,
                        )
                        .map(|results| results.count())
                        .map_err(std::io::Error::from)
                    });
                    match result {
                        Ok(n) if n > 0 => sent += n,
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            if socket.writable().await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            debug!("udp send: {e}");
                            // Skip the reply that failed, keep the rest.
                            sent += 1;
                        }
                    }
                }
                for rcode in &rcodes[..sent.min(rcodes.len())] {
                    counters.count(*rcode);
                }
            }
        }
    })
}
