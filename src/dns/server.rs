//! Binds the configured addresses (UDP and TCP on the same port) and runs
//! our UDP loops and TCP side over them.

use std::{io, net::SocketAddr};

use std::{net::UdpSocket, sync::Arc};

use tokio::net::TcpListener;

use super::{
    ResponseCounters, SharedTable,
    tcp::{TcpLimits, TcpServer},
    udp::UdpLoop,
};

/// One bound address: a UDP socket and a TCP listener on the same port.
pub struct Bound {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Bound {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Binds UDP and TCP on each address. Port 0 picks a free port, the same
/// for both protocols.
pub async fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<Bound>> {
    let mut bound = Vec::new();
    for &addr in addrs {
        bound.push(
            bind_one(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?,
        );
    }
    Ok(bound)
}

async fn bind_one(addr: SocketAddr) -> io::Result<Bound> {
    // With port 0 the UDP port the kernel picks may be taken for TCP: try
    // a few times.
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok(Bound { udp, tcp }),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

/// A running DNS server: UDP loops and the TCP side.
pub struct DnsServer {
    tcp: TcpServer,
    udp: Vec<UdpLoop>,
}

impl DnsServer {
    pub fn start(
        table: SharedTable,
        counters: Arc<ResponseCounters>,
        bound: Vec<Bound>,
        tcp: TcpLimits,
        fast_path: bool,
        rrl: super::rrl::RrlConfig,
    ) -> io::Result<Self> {
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        for b in bound {
            udp.push(super::udp::spawn(
                b.udp,
                table.clone(),
                counters.clone(),
                fast_path,
                rrl.clone(),
            )?);
            listeners.push(b.tcp);
        }
        let tcp = TcpServer::start(listeners, table, counters, tcp, fast_path);
        Ok(Self { tcp, udp })
    }

    /// Stops accepting queries and waits for those in flight.
    pub async fn shutdown(mut self) -> io::Result<()> {
        for udp in &self.udp {
            udp.signal_stop();
        }
        for udp in self.udp.drain(..) {
            udp.stop().await;
        }
        self.tcp.shutdown().await;
        Ok(())
    }
}
