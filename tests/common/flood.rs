//! A flood of DNS queries for www.example.com A, over UDP and TCP, from
//! closed-loop clients (one query outstanding each): every reply must be
//! well-formed, carry its query's id, NOERROR and one of the two sites'
//! addresses, and every query must be answered.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{Name, RData, RecordType},
};

use super::{query_message, wait_until};

/// The two answers www.example.com A may have.
const ANSWERS: [&str; 2] = ["192.0.2.10", "198.51.100.10"];

/// What the clients of one transport saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub answers: u64,
    pub wrong: Vec<String>,
    pub unanswered: u64,
}

pub struct Flood {
    stop: Arc<AtomicBool>,
    udp: Arc<Mutex<Seen>>,
    tcp: Arc<Mutex<Seen>>,
    clients: Vec<JoinHandle<()>>,
}

impl Flood {
    /// Starts `udp` UDP and `tcp` TCP clients against `server`, and waits
    /// until each transport has had 100 answers.
    pub fn start(server: SocketAddr, udp: usize, tcp: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (udp_seen, tcp_seen) = (Arc::default(), Arc::default());
        let mut clients = Vec::new();
        for _ in 0..udp {
            let (stop, seen) = (stop.clone(), Arc::clone(&udp_seen));
            clients.push(std::thread::spawn(move || flood_udp(server, stop, seen)));
        }
        for _ in 0..tcp {
            let (stop, seen) = (stop.clone(), Arc::clone(&tcp_seen));
            clients.push(std::thread::spawn(move || flood_tcp(server, stop, seen)));
        }
        let flood = Self {
            stop,
            udp: udp_seen,
            tcp: tcp_seen,
            clients,
        };
        assert!(wait_until(Duration::from_secs(5), || {
            flood.udp.lock().expect("lock").answers > 100
                && flood.tcp.lock().expect("lock").answers > 100
        }));
        flood
    }

    /// Lets the flood go on half a second more, stops it, and hands back
    /// what UDP and TCP saw.
    pub fn stop(self) -> (Seen, Seen) {
        std::thread::sleep(Duration::from_millis(500));
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().expect("flood client");
        }
        let take = |seen: Arc<Mutex<Seen>>| std::mem::take(&mut *seen.lock().expect("lock"));
        (take(self.udp), take(self.tcp))
    }
}

/// Every query of both transports answered, well-formed, and plenty.
pub fn assert_all_answered(udp: &Seen, tcp: &Seen) {
    for (what, seen) in [("UDP", udp), ("TCP", tcp)] {
        assert!(
            seen.wrong.is_empty(),
            "{what}: {:?}",
            &seen.wrong[..seen.wrong.len().min(5)]
        );
        assert_eq!(seen.unanswered, 0, "{what}: unanswered queries");
        assert!(seen.answers > 1000, "{what}: only {} answers", seen.answers);
    }
}

fn check_reply(reply: &[u8], id: u16, seen: &Mutex<Seen>) {
    let mut seen = seen.lock().expect("lock");
    match Message::from_vec(reply) {
        Ok(m) if m.metadata.id == id && m.metadata.response_code == ResponseCode::NoError => {
            let got: Vec<String> = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect();
            if got.len() == 1 && ANSWERS.contains(&got[0].as_str()) {
                seen.answers += 1;
            } else {
                seen.wrong.push(format!("answer {got:?}"));
            }
        }
        Ok(m) => seen.wrong.push(format!(
            "id {} rcode {:?}",
            m.metadata.id, m.metadata.response_code
        )),
        Err(e) => seen.wrong.push(format!("malformed: {e}")),
    }
}

fn flood_udp(server: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let name = Name::from_ascii("www.example.com.").expect("name");
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let query = query_message(&name, RecordType::A, false);
        let id = query.metadata.id;
        socket
            .send_to(&query.to_vec().expect("encode"), server)
            .expect("send");
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => check_reply(&buf[..n], id, &seen),
            Err(_) => seen.lock().expect("lock").unanswered += 1,
        }
    }
}

fn flood_tcp(server: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let name = Name::from_ascii("www.example.com.").expect("name");
    let mut stream: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let conn = match &mut stream {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect(server).expect("connect");
                conn.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                stream.insert(conn)
            }
        };
        let query = query_message(&name, RecordType::A, false);
        let id = query.metadata.id;
        let bytes = query.to_vec().expect("encode");
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        let mut len = [0u8; 2];
        let answered = conn.write_all(&framed).is_ok() && conn.read_exact(&mut len).is_ok();
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        if answered && conn.read_exact(&mut reply).is_ok() {
            check_reply(&reply, id, &seen);
        } else {
            // The server may close an idle or long-lived connection; a
            // query it took and never answered is counted.
            seen.lock().expect("lock").unanswered += u64::from(answered);
            stream = None;
        }
    }
}
