//! Our own UDP loop: each socket is read in a loop that drains every
//! datagram waiting before it sleeps again, and each is answered inline,
//! from the precomputed answers when it is a plain query, else the general
//! way. No task per datagram, no channel for replies.

use std::{io::ErrorKind, sync::Arc};

use tokio::{net::UdpSocket, task::JoinHandle};
use tracing::debug;

use super::{ResponseCounters, SharedTable, fast};

/// Starts answering on `socket`.
pub fn spawn(
    socket: UdpSocket,
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    fast_path: bool,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        let mut out = Vec::with_capacity(4096);
        loop {
            if socket.readable().await.is_err() {
                return;
            }
            loop {
                let (n, src) = match socket.try_recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // An ICMP error for an earlier reply, and the like.
                    Err(e) => {
                        debug!("udp receive: {e}");
                        continue;
                    }
                };
                if src.port() == 0 {
                    continue;
                }
                let packet = &buf[..n];
                let served = table.load();
                let fast = if fast_path {
                    served.fast.answer(packet, &mut out)
                } else {
                    None
                };
                let Some(rcode) = fast.or_else(|| fast::general(&served, packet, src, &mut out))
                else {
                    continue;
                };
                drop(served);
                let sent = match socket.try_send_to(&out, src) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => socket.send_to(&out, src).await,
                    other => other,
                };
                match sent {
                    Ok(_) => counters.count(rcode),
                    Err(e) => debug!("udp send to {src}: {e}"),
                }
            }
        }
    })
}
