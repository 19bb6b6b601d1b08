//! Abuse limits the README promises that no other test isolates: the TCP
//! query budget with pipelined queries, the reply write timeout (a client
//! that never reads its replies is cut off), rate limiting that drops with
//! `rrl_slip = 0` and counts it, and a `cookie_secret` shared by two nodes.
//!
//! Every "the connection was closed" check tells a close (EOF or reset)
//! from a read that timed out, so a server that keeps the connection open
//! fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::harness::*;

fn example_with_server(keys: &str) -> String {
    all_policy_example().replace("[server]\n", &format!("[server]\n{keys}\n"))
}

fn framed(q: &Message) -> Vec<u8> {
    let bytes = q.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

/// Reads until the peer closes the connection, discarding what arrives;
/// panics if it stays open (a read times out) or more than `limit` bytes
/// come. Returns how many bytes were read.
fn read_until_closed(stream: &mut TcpStream, what: &str, limit: usize) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => {
                total += n;
                assert!(total <= limit, "{what}: more than {limit} bytes");
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return total;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: the connection is still open after 10 s")
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn tcp_max_queries_closes_after_the_budget_even_when_pipelined() {
    let node = Node::start(&example_with_server("tcp_max_queries = 3"));
    let mail = || query("mail.gslb.example.", RecordType::A);

    // One at a time: three answers, then the server closes.
    let mut stream = node.tcp_connect();
    for _ in 0..3 {
        assert_eq!(tcp_exchange(&mut stream, &mail()).answers.len(), 1);
    }
    // The fourth query may still be written (or be refused with a reset);
    // no reply comes, and the connection ends.
    let _ = stream.write_all(&framed(&mail()));
    assert_eq!(read_until_closed(&mut stream, "fourth query", 0), 0);

    // Five pipelined in one write: exactly the first three are answered,
    // in order, then the connection closes.
    let queries: Vec<Message> = (0..5).map(|_| mail()).collect();
    let mut stream = node.tcp_connect();
    let bytes: Vec<u8> = queries.iter().flat_map(framed).collect();
    stream.write_all(&bytes).unwrap();
    for q in &queries[..3] {
        let reply = tcp_recv(&mut stream);
        assert_eq!(reply.id, q.id, "replies in query order");
        assert_eq!(reply.answers.len(), 1);
    }
    assert_eq!(
        read_until_closed(&mut stream, "queries past the budget", 0),
        0,
        "no reply past the budget"
    );
}

#[test]
fn a_client_that_never_reads_its_replies_is_cut_off_after_the_read_timeout() {
    // One connection slot, a long idle timeout: only the reply write
    // timeout (tcp_read_timeout) can free the slot from a client that
    // sends queries and never takes the replies.
    let node = Node::start(&large_txt_config().replace(
        "[server]\n",
        "[server]\ntcp_max_connections = 1\ntcp_idle_timeout = \"60s\"\ntcp_read_timeout = \"500ms\"\n",
    ));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive window, so the replies back up quickly.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&node.dns.into()).unwrap();
    let mut hog: TcpStream = socket.into();
    // 10,000 queries for ~2.3 kB each: ~23 MB of replies, more than any
    // socket buffers hold. Written from a thread, since the server stops
    // reading once its writes block.
    let mut writer = hog.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        writer
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let q = framed(&query_edns("big.gslb.example.", RecordType::TXT, 1232));
        let batch: Vec<u8> = q.repeat(500);
        for _ in 0..20 {
            if writer.write_all(&batch).is_err() {
                return;
            }
        }
    });

    // Another client waits for the only slot.
    let start = Instant::now();
    let mut other = node.tcp_connect();
    other
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let q = query("mail.gslb.example.", RecordType::A);
    other.write_all(&framed(&q)).unwrap();
    let mut len = [0u8; 2];
    other.read_exact(&mut len).unwrap_or_else(|e| {
        panic!(
            "the slot was not freed from the non-reading client within {:?}: {e}",
            start.elapsed()
        )
    });
    // The hog's connection was closed by the server (EOF or reset), well
    // before it had taken every reply.
    let taken = read_until_closed(&mut hog, "non-reading client", 30 << 20);
    assert!(taken < 20 << 20, "{taken} bytes of replies were taken");
    feeder.join().unwrap();
}

/// A mail A query with EDNS and a COOKIE option.
fn cookie_query(cookie: &[u8]) -> Message {
    let mut q = query("mail.gslb.example.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut().insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Cookie),
        cookie.to_vec(),
    ));
    q.set_edns(edns);
    q
}

/// Sends `n` queries back to back from one socket; returns how many were
/// answered with the record (neither dropped nor slipped).
fn answered_of(node: &Node, n: usize, cookie: Option<&[u8]>) -> (usize, usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..n {
        let q = match cookie {
            Some(c) => cookie_query(c),
            None => query("mail.gslb.example.", RecordType::A),
        };
        socket.send_to(&q.to_vec().unwrap(), node.dns).unwrap();
    }
    let (mut answered, mut replies) = (0, 0);
    let mut buf = [0u8; 1500];
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..len]).unwrap();
        replies += 1;
        if !m.truncation && m.answers.len() == 1 {
            answered += 1;
        }
    }
    (answered, replies)
}

#[test]
fn rate_limiting_with_slip_zero_drops_and_counts_every_reply_over_the_limit() {
    let node = Node::start(&example_with_server(
        "rrl_responses_per_second = 10\nrrl_slip = 0",
    ));
    let n = 200;
    let (answered, replies) = answered_of(&node, n, None);
    assert_eq!(answered, replies, "slip 0: nothing is sent truncated");
    // Both UDP threads may allow their own 10, and tokens refill.
    assert!((10..=60).contains(&answered), "{answered} of {n} answered");
    let dropped = (n - replies) as f64;
    let series = "meridian_dns_rate_limited_total{action=\"dropped\"}";
    wait_until(
        "every withheld reply counted",
        Duration::from_secs(5),
        || node.series(series) == Some(dropped),
    );
    assert_eq!(
        node.series("meridian_dns_rate_limited_total{action=\"slipped\"}"),
        Some(0.0)
    );
}

/// The 24-byte cookie (client cookie + server cookie) `node` returns.
fn server_cookie(node: &Node) -> Vec<u8> {
    let reply = node.udp(&cookie_query(b"sharedcl"));
    match reply.edns.as_ref().unwrap().option(EdnsCode::Cookie) {
        Some(EdnsOption::Unknown(_, cookie)) if cookie.len() == 24 => cookie.clone(),
        other => panic!("no server cookie: {other:?}"),
    }
}

#[test]
fn a_shared_cookie_secret_makes_one_nodes_cookie_valid_at_the_other() {
    let rrl = "rrl_responses_per_second = 5";
    let secret = "cookie_secret = \"00112233445566778899aabbccddeeff\"";
    let other = "cookie_secret = \"ffeeddccbbaa99887766554433221100\"";
    let a = Node::start(&example_with_server(&format!("{rrl}\n{secret}")));
    let b = Node::start(&example_with_server(&format!("{rrl}\n{secret}")));
    let c = Node::start(&example_with_server(&format!("{rrl}\n{other}")));
    // Nodes in one process would share the per-process random secret;
    // these set theirs, so only the configured value can make them agree.
    let cookie = server_cookie(&a);
    assert_eq!(&cookie[..8], b"sharedcl");
    // At B (same secret) the cookie proves the address: no rate limit.
    assert_eq!(answered_of(&b, 100, Some(&cookie)).0, 100);
    // At C (another secret) it proves nothing: limited like anyone.
    let (answered, _) = answered_of(&c, 100, Some(&cookie));
    assert!(answered < 50, "{answered} of 100 answered at C");
}

// The tests again with the fast path switched off.
crate::also_on_general_path! {
    tcp_max_queries_closes_after_the_budget_even_when_pipelined,
    a_client_that_never_reads_its_replies_is_cut_off_after_the_read_timeout,
    rate_limiting_with_slip_zero_drops_and_counts_every_reply_over_the_limit,
    a_shared_cookie_secret_makes_one_nodes_cookie_valid_at_the_other,
}
