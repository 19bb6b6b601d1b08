//! Abuse resistance: response rate limiting with slip, DNS cookies that
//! exempt real clients, and TCP limits that bound what a client can hold.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::harness::*;

fn example_with_server(keys: &str) -> String {
    all_policy_example().replace("[server]\n", &format!("[server]\n{keys}\n"))
}

/// A mail A query with EDNS and, optionally, a COOKIE option payload.
fn mail_query(cookie: Option<Vec<u8>>) -> Message {
    let mut q = query("mail.gslb.example.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(c) = cookie {
        edns.options_mut()
            .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), c));
    }
    q.set_edns(edns);
    q
}

#[derive(Debug, Default, PartialEq)]
struct Tally {
    answered: usize,
    truncated: usize,
    silent: usize,
}

/// Sends `n` queries back to back from one socket and sorts the replies.
fn burst(node: &Node, n: usize, cookie: Option<Vec<u8>>) -> Tally {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let q = mail_query(cookie.clone());
        ids.push(q.id);
        socket.send_to(&q.to_vec().unwrap(), node.dns).unwrap();
    }
    let mut tally = Tally::default();
    let mut buf = [0u8; 1500];
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..len]).unwrap();
        assert!(ids.contains(&m.id));
        if m.truncation {
            assert!(m.answers.is_empty(), "a slipped reply is empty");
            assert_eq!(m.queries.len(), 1, "and keeps the question");
            tally.truncated += 1;
        } else {
            assert_eq!(m.answers.len(), 1);
            tally.answered += 1;
        }
    }
    tally.silent = n - tally.answered - tally.truncated;
    tally
}

#[test]
fn rate_limiting_slips_and_drops_above_the_limit_only() {
    let node = Node::start(&example_with_server(
        "rrl_responses_per_second = 20\nrrl_slip = 2",
    ));
    // Below the limit: 10 queries, every one answered.
    assert_eq!(burst(&node, 10, None).answered, 10);
    std::thread::sleep(Duration::from_millis(1200));
    // Above it: 200 at once from one /24 (both UDP threads may each allow
    // their own 20, and tokens refill during the burst).
    let tally = burst(&node, 200, None);
    assert!(tally.answered >= 20 && tally.answered <= 60, "{tally:?}");
    let over = 200 - tally.answered;
    assert!(
        tally.truncated * 3 >= over && tally.truncated * 3 <= over * 2,
        "about half slipped: {tally:?}"
    );
    assert!(tally.silent > 0, "{tally:?}");
    // A real client retries over TCP and gets the answer.
    assert_eq!(node.tcp(&mail_query(None)).answers.len(), 1);
    let metrics = reqwest::blocking::get(format!("http://{}/metrics", node.admin))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "meridian_dns_rate_limited_total{{action=\"slipped\"}} {}",
            tally.truncated
        )),
        "{metrics}"
    );
}

#[test]
fn a_valid_cookie_exempts_a_client_from_rate_limiting() {
    let node = Node::start(&example_with_server("rrl_responses_per_second = 5"));
    let client = b"realclnt".to_vec();
    let reply = node.udp(&mail_query(Some(client.clone())));
    let Some(EdnsOption::Unknown(_, cookie)) =
        reply.edns.as_ref().unwrap().option(EdnsCode::Cookie)
    else {
        panic!("no cookie in {reply:?}");
    };
    assert_eq!(cookie.len(), 24);
    assert_eq!(
        &cookie[..8],
        client.as_slice(),
        "the client cookie comes back first"
    );
    let tally = burst(&node, 100, Some(cookie.clone()));
    assert_eq!(tally.answered, 100, "{tally:?}");
    // A forged server cookie is no pass.
    let mut forged = cookie.clone();
    forged[23] ^= 0xff;
    let tally = burst(&node, 100, Some(forged));
    assert!(tally.answered < 50, "{tally:?}");
}

#[test]
fn a_malformed_cookie_gets_formerr() {
    let node = Node::start(&all_policy_example());
    for len in [1usize, 7, 9, 15, 41] {
        let reply = node.udp(&mail_query(Some(vec![7; len])));
        assert_eq!(
            reply.response_code,
            ResponseCode::FormErr,
            "cookie of {len} bytes"
        );
    }
}

fn framed(q: &Message) -> Vec<u8> {
    let bytes = q.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

#[test]
fn tcp_connections_close_after_their_query_budget() {
    let node = Node::start(&example_with_server("tcp_max_queries = 3"));
    let mut stream = node.tcp_connect();
    for _ in 0..3 {
        assert_eq!(
            tcp_exchange(&mut stream, &mail_query(None)).answers.len(),
            1
        );
    }
    stream.write_all(&framed(&mail_query(None))).unwrap();
    assert_closed_by_server(
        &mut stream,
        CUT_WITHIN,
        "the fourth query is not answered on this connection",
    );
}

/// How long a test waits for a TCP limit of 300 ms to cut a connection:
/// room for a loaded machine, and well below every other limit the test
/// sets (60 s), so only the limit under test can end the connection.
const CUT_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn an_idle_tcp_connection_is_closed_after_the_idle_timeout() {
    let node = Node::start(&example_with_server(
        "tcp_idle_timeout = \"300ms\"\ntcp_read_timeout = \"60s\"",
    ));
    // One client never says anything; another is answered, then goes quiet.
    let mut silent = node.tcp_connect();
    let mut answered = node.tcp_connect();
    assert_eq!(
        tcp_exchange(&mut answered, &mail_query(None)).answers.len(),
        1
    );
    assert_closed_by_server(&mut silent, CUT_WITHIN, "a client that never spoke");
    assert_closed_by_server(&mut answered, CUT_WITHIN, "a client idle after its answer");
}

#[test]
fn a_query_that_stalls_midway_is_cut_after_the_read_timeout() {
    let node = Node::start(&example_with_server(
        "tcp_idle_timeout = \"60s\"\ntcp_read_timeout = \"300ms\"",
    ));
    // Half a length prefix; a length and 2 of its 40 bytes.
    let mut half_length = node.tcp_connect();
    half_length.write_all(&[0]).unwrap();
    let mut half_query = node.tcp_connect();
    half_query.write_all(&[0, 40, 1, 2]).unwrap();
    assert_closed_by_server(&mut half_length, CUT_WITHIN, "half a length prefix");
    assert_closed_by_server(&mut half_query, CUT_WITHIN, "half a query");
}

#[test]
fn connections_over_the_cap_wait_until_a_slot_frees() {
    let node = Node::start(&example_with_server(
        "tcp_max_connections = 2\ntcp_idle_timeout = \"60s\"\ntcp_read_timeout = \"60s\"",
    ));
    let mut held: Vec<TcpStream> = (0..2).map(|_| node.tcp_connect()).collect();
    for stream in &mut held {
        assert_eq!(tcp_exchange(stream, &mail_query(None)).answers.len(), 1);
    }
    // The kernel completes the third handshake, but the server does not
    // take the connection while both slots are held: no reply comes.
    let mut third = node.tcp_connect();
    third.write_all(&framed(&mail_query(None))).unwrap();
    assert_eq!(
        read_ending(&mut third, Duration::from_secs(1)),
        Ending::StillOpen,
        "a third connection is served with the cap at 2"
    );
    // One slot is given back: the waiting query is answered.
    drop(held.pop());
    third.set_read_timeout(Some(CUT_WITHIN)).unwrap();
    let reply = tcp_recv(&mut third);
    assert_eq!(reply.answers.len(), 1);
}

#[test]
fn a_client_that_does_not_take_its_replies_is_cut_after_the_read_timeout() {
    // One slot, so a reader that never reads would hold the server's only
    // connection for as long as its reply write may wait.
    let node = Node::start(&large_txt_config().replace(
        "[server]\n",
        "[server]\ntcp_max_connections = 1\ntcp_idle_timeout = \"60s\"\ntcp_read_timeout = \"300ms\"\n",
    ));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive window, so the server's writes stall quickly.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&node.dns.into()).unwrap();
    let mut hog: TcpStream = socket.into();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Each query asks for 2.3 kB of TXT; 2,000 of them are megabytes of
    // replies that this client never reads. The writes stop when the
    // server stops reading (a timeout) or closes (an error).
    let big = framed(&query("big.gslb.example.", RecordType::TXT));
    for _ in 0..2000 {
        if hog.write_all(&big).is_err() {
            break;
        }
    }
    let mut other = node.tcp_connect();
    other.write_all(&framed(&mail_query(None))).unwrap();
    assert!(
        matches!(read_ending(&mut other, CUT_WITHIN), Ending::Data(_)),
        "another client is served once the stalled reader is cut"
    );
    assert!(
        matches!(
            drain_until_closed(&mut hog, CUT_WITHIN),
            Ending::Eof | Ending::Reset
        ),
        "the client that took no replies was disconnected"
    );
}

/// A TCP connection to `node` from a chosen loopback address.
fn connect_from(local: &str, node: &Node) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{local}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&node.dns.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Whether the server answers a query on `stream` rather than closing it.
fn is_served(stream: &mut TcpStream) -> bool {
    if stream.write_all(&framed(&mail_query(None))).is_err() {
        return false;
    }
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).is_ok()
}

#[test]
fn one_client_cannot_hold_every_tcp_slot() {
    let node = Node::start(&example_with_server(
        "tcp_max_connections_per_source = 3\ntcp_idle_timeout = \"30s\"",
    ));
    let mut hogs: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", &node)).collect();
    for hog in &mut hogs {
        assert!(is_served(hog), "within its share, a client is served");
    }
    let mut fourth = connect_from("127.0.0.1", &node);
    // The write may already fail: the connection was closed on accept.
    let _ = fourth.write_all(&framed(&mail_query(None)));
    assert_closed_by_server(
        &mut fourth,
        CUT_WITHIN,
        "a fourth connection from one client",
    );
    let mut other = connect_from("127.0.0.2", &node);
    assert!(is_served(&mut other), "another client still gets a slot");
    assert_eq!(node.metric("meridian_dns_tcp_refused_total"), 1.0);
    // When one of its connections ends, the first client may open another.
    drop(hogs.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_served(&mut connect_from("127.0.0.1", &node)) {
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot is given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// Every test above, again with the fast path switched off.
crate::also_on_general_path! {
    rate_limiting_slips_and_drops_above_the_limit_only,
    a_valid_cookie_exempts_a_client_from_rate_limiting,
    a_malformed_cookie_gets_formerr,
    tcp_connections_close_after_their_query_budget,
    an_idle_tcp_connection_is_closed_after_the_idle_timeout,
    a_query_that_stalls_midway_is_cut_after_the_read_timeout,
    connections_over_the_cap_wait_until_a_slot_frees,
    a_client_that_does_not_take_its_replies_is_cut_after_the_read_timeout,
    one_client_cannot_hold_every_tcp_slot,
}
