//! The HTTP side's limits, as the DNS side's TCP ones: at most
//! `LIMITS.max_per_source` open connections from one address (another is
//! closed at once) and `LIMITS.max_connections` in all (past that, the one
//! idle the longest is closed to make room); a connection that sends
//! nothing for `LIMITS.idle` (a request's headers and body must come
//! within it) or lasts `LIMITS.lifetime` is closed. So a slow or idle
//! client cannot hold the page and the API out of reach.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};
use tracing::warn;

use crate::dns::{
    TcpLimits,
    tcp::{Full, Open, Slot},
};

pub const LIMITS: TcpLimits = TcpLimits {
    idle: Duration::from_secs(30),
    lifetime: Duration::from_secs(300),
    max_connections: 256,
    max_per_source: 32,
};

/// A listener that keeps to `LIMITS`.
pub struct Limited {
    inner: TcpListener,
    open: Arc<Mutex<Open>>,
}

impl Limited {
    pub fn new(inner: TcpListener) -> Self {
        Self {
            inner,
            open: Arc::default(),
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait, don't spin.
                    warn!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match Slot::take(&self.open, addr.ip(), &LIMITS) {
                Ok(slot) => {
                    let evicted = slot.evicted.clone();
                    return (
                        Connection {
                            stream,
                            slot,
                            idle: Box::pin(tokio::time::sleep(LIMITS.idle)),
                            evicted: Box::pin(async move { evicted.notified().await }),
                            end: Instant::now() + LIMITS.lifetime,
                        },
                        addr,
                    );
                }
                Err(Full::Source) => crate::dns::refused(
                    addr.ip(),
                    &format!(
                        "an HTTP connection past the cap of {} open from one address",
                        LIMITS.max_per_source
                    ),
                ),
                Err(Full::Everywhere) => crate::dns::refused(
                    addr.ip(),
                    &format!(
                        "an HTTP connection past the cap of {} open, none idle",
                        LIMITS.max_connections
                    ),
                ),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, holding its place until dropped.
pub struct Connection {
    stream: TcpStream,
    slot: Slot,
    idle: Pin<Box<Sleep>>,
    evicted: Pin<Box<dyn Future<Output = ()> + Send>>,
    end: Instant,
}

fn closed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if Instant::now() >= self.end {
            return Poll::Ready(Err(closed("the connection lasted too long")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.slot.busy();
                    let next = (Instant::now() + LIMITS.idle).min(self.end);
                    self.idle.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if self.evicted.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(closed("closed to make room for another")));
                }
                match self.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(closed("the connection was idle too long"))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
