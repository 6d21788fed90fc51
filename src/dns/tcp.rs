//! DNS over TCP (RFC 7766): length-prefixed messages on a connection kept
//! while queries come within the idle timeout. Each request is answered
//! by `handler::respond` (a zone transfer on a blocking thread: it may take
//! a while to encode), and every message of its response is written in
//! order, so a transfer is as many frames as it needs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tracing::{debug, warn};

use super::{ResponseCounters, SharedTable, handler, transfer};
use hickory_server::net::xfer::Protocol;

/// How long a stop waits for connections still answering.
const STOP_GRACE: Duration = Duration::from_secs(2);

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
        idle: Duration,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        for listener in listeners {
            loops.spawn(accept(
                listener,
                table.clone(),
                counters.clone(),
                idle,
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
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, src)) => {
                    connections.spawn(serve(
                        stream,
                        src,
                        table.clone(),
                        counters.clone(),
                        idle,
                        stopped.clone(),
                    ));
                }
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
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    loop {
        let mut length = [0u8; 2];
        let read = tokio::select! {
            _ = stopped.changed() => return,
            read = tokio::time::timeout(idle, reader.read_exact(&mut length)) => read,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(length))];
        match tokio::time::timeout(idle, reader.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        let served = table.load_full();
        let transfer = transfer::asks_transfer(&packet);
        let answer = move || {
            let mut messages = Vec::new();
            let rcode = handler::respond(&served, &packet, src, Protocol::Tcp, &mut messages);
            (rcode, messages)
        };
        // A query is answered here; a transfer, which may take a while to
        // encode, on a blocking thread.
        let (rcode, messages) = if transfer {
            match tokio::task::spawn_blocking(answer).await {
                Ok(answered) => answered,
                Err(e) => {
                    warn!("a TCP answer failed: {e}");
                    return;
                }
            }
        } else {
            answer()
        };
        if messages.is_empty() {
            // Not a query we can answer (no header, a response): nothing
            // more is expected of this connection.
            return;
        }
        for message in &messages {
            let Ok(length) = u16::try_from(message.len()) else {
                warn!("a TCP answer over 64 KiB was not sent");
                return;
            };
            if let Err(e) = write(&mut writer, length, message).await {
                debug!(%src, "tcp write: {e}");
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
        if let Some(rcode) = rcode {
            counters.count(rcode);
        }
    }
}

async fn write(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    length: u16,
    message: &[u8],
) -> std::io::Result<()> {
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(message).await
}
