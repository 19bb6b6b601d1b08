//! A running node flooded with malformed traffic keeps answering correctly.
//!
//! For a few seconds, several threads send the node (on 127.0.0.1 only) a
//! paced mix of random bytes, truncated headers, label compression loops,
//! huge section counts, wrong classes, responses sent as queries, oversized
//! datagrams and valid queries. Meanwhile separate clients ask valid
//! questions from their own sockets, with retries over UDP, and every one
//! must be answered with exactly the right records; a few TCP connections
//! send garbage framing or stall mid-query while other TCP clients must
//! still be served promptly. Afterwards the node answers normally over UDP
//! and TCP.
//!
//! Every reply that does arrive is checked: it parses, has QR set, and the
//! traffic it answers is known from its ID (each kind of packet is sent with
//! IDs from its own range), so replies to packets that must get none
//! (responses, short headers) and wrong rcodes (FORMERR for loops and huge
//! counts, REFUSED for other classes) are counted as failures too.
//!
//! The random traffic is reproducible: the seed is printed, and
//! `FLOOD_SEED=<n>` replays it.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::harness::*;

/// How long the flood lasts.
const FLOOD_FOR: Duration = Duration::from_secs(4);
/// Threads sending malformed traffic over UDP.
const FLOOD_THREADS: usize = 3;
/// Each flood thread sends this many datagrams, then pauses [`PAUSE`]: about
/// 5,000 datagrams a second per thread, so the node is loaded but can keep
/// up in a debug build on two cores. The point is malformed input under
/// load, not a denial-of-service test.
const BURST: usize = 25;
const PAUSE: Duration = Duration::from_millis(5);
/// Threads asking valid questions over UDP, from their own sockets.
const CHECKERS: usize = 2;
/// A UDP checker's wait for each try, and how many tries it makes: a query
/// (or its reply) dropped by a full socket buffer during the flood is
/// retried with the same ID, and must be answered within these tries.
const TRY_WAIT: Duration = Duration::from_millis(300);
const TRIES: usize = 20;
const CHECKER_PAUSE: Duration = Duration::from_millis(1);
/// A TCP client must be answered within this, well under the node's
/// 5-second `tcp_read_timeout`, so a slot held by a stalled connection
/// would show as a failure here.
const TCP_PROMPT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Expected answers of the example (`all_policy_example`)
// ---------------------------------------------------------------------------

const WWW_V4: [&str; 3] = ["192.0.2.10", "198.51.100.10", "203.0.113.10"];

/// A valid question and what its answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Valid {
    /// `mail A`: exactly one A record, 192.0.2.25, TTL 300.
    Mail,
    /// The same in mixed case: the owner name keeps the asker's case.
    MailMixedCase,
    /// A name that does not exist: NXDOMAIN with the SOA.
    Missing,
    /// `www A` over EDNS: every endpoint (policy `all`), TTL 30.
    Www,
    /// `docs A`: the CNAME to www, then www's addresses.
    Docs,
}

const VALID: [Valid; 5] = [
    Valid::Mail,
    Valid::MailMixedCase,
    Valid::Missing,
    Valid::Www,
    Valid::Docs,
];

impl Valid {
    fn qname(self) -> &'static str {
        match self {
            Valid::Mail => "mail.gslb.example.",
            Valid::MailMixedCase => "MaIl.GsLb.ExAmPlE.",
            Valid::Missing => "no-such-name.gslb.example.",
            Valid::Www => "www.gslb.example.",
            Valid::Docs => "docs.gslb.example.",
        }
    }

    fn message(self, id: u16) -> Message {
        let mut message = query(self.qname(), RecordType::A);
        message.metadata.id = id;
        if self == Valid::Www {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            message.set_edns(edns);
        }
        message
    }

    fn bytes(self, id: u16) -> Vec<u8> {
        self.message(id).to_vec().expect("a valid query encodes")
    }

    /// Checks `reply` is exactly the answer to this question with `id`.
    fn check(self, id: u16, reply: &Message) -> Result<(), String> {
        let fail = |what: String| Err(format!("{self:?} (ID {id:#06x}): {what}\n{reply:?}"));
        if reply.id != id {
            return fail(format!("ID {:#06x}", reply.id));
        }
        if reply.message_type != MessageType::Response || !reply.authoritative {
            return fail("not an authoritative response".into());
        }
        if reply.truncation || reply.recursion_available {
            return fail("TC or RA set".into());
        }
        let question = Query::query(Name::from_ascii(self.qname()).unwrap(), RecordType::A);
        if reply.queries != [question] {
            return fail("question not echoed".into());
        }
        if reply.edns.is_some() != (self == Valid::Www) {
            return fail("OPT present iff the query had one".into());
        }
        match self {
            Valid::Mail | Valid::MailMixedCase => {
                expect_rcode(reply, ResponseCode::NoError).or_else(fail)?;
                let [record] = &reply.answers[..] else {
                    return fail(format!("{} answers, not 1", reply.answers.len()));
                };
                if record.name.to_ascii() != self.qname()
                    || record.ttl != 300
                    || record.dns_class != DNSClass::IN
                    || a_addr(record).as_deref() != Some("192.0.2.25")
                {
                    return fail(format!("answer {record}"));
                }
                if !reply.authorities.is_empty() {
                    return fail("authority section not empty".into());
                }
            }
            Valid::Missing => {
                expect_rcode(reply, ResponseCode::NXDomain).or_else(fail)?;
                if !reply.answers.is_empty() {
                    return fail("answers to a missing name".into());
                }
                let soa_ok = matches!(
                    &reply.authorities[..],
                    [soa] if soa.name.to_ascii() == "gslb.example."
                        && soa.ttl == 60
                        && matches!(&soa.data, RData::SOA(s) if s.serial == 2026112301)
                );
                if !soa_ok {
                    return fail("authority is not the SOA with the negative TTL".into());
                }
            }
            Valid::Www => {
                expect_rcode(reply, ResponseCode::NoError).or_else(fail)?;
                if sorted_a(&reply.answers, "www.gslb.example.", 30) != Some(WWW_V4.to_vec()) {
                    return fail("not www's three addresses".into());
                }
            }
            Valid::Docs => {
                expect_rcode(reply, ResponseCode::NoError).or_else(fail)?;
                let Some((cname, rest)) = reply.answers.split_first() else {
                    return fail("no answers".into());
                };
                let cname_ok = cname.name.to_ascii() == "docs.gslb.example."
                    && matches!(&cname.data, RData::CNAME(c) if c.0.to_ascii() == "www.gslb.example.");
                if !cname_ok || sorted_a(rest, "www.gslb.example.", 30) != Some(WWW_V4.to_vec()) {
                    return fail("not the CNAME to www and www's addresses".into());
                }
            }
        }
        Ok(())
    }
}

fn expect_rcode(reply: &Message, rcode: ResponseCode) -> Result<(), String> {
    if reply.response_code == rcode {
        Ok(())
    } else {
        Err(format!("rcode {:?}, not {rcode:?}", reply.response_code))
    }
}

fn a_addr(record: &Record) -> Option<String> {
    match &record.data {
        RData::A(a) => Some(a.to_string()),
        _ => None,
    }
}

/// The sorted addresses of `records` if every one is an A record of
/// `owner` with `ttl`.
fn sorted_a(records: &[Record], owner: &str, ttl: u32) -> Option<Vec<&'static str>> {
    let mut addrs = Vec::new();
    for record in records {
        if record.name.to_ascii() != owner || record.ttl != ttl {
            return None;
        }
        let addr = a_addr(record)?;
        addrs.push(*WWW_V4.iter().find(|w| **w == addr)?);
    }
    addrs.sort();
    Some(addrs)
}

// ---------------------------------------------------------------------------
// Malformed traffic
// ---------------------------------------------------------------------------

/// Kinds of flood datagram. Each is sent with IDs from its own range, so a
/// reply tells what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Random bytes (ID and the QR bit forced): any reply must parse.
    Random,
    /// Fewer than 12 bytes: never a reply.
    ShortHeader,
    /// A question name whose compression pointers loop or point nowhere:
    /// FORMERR.
    CompressionLoop,
    /// A real question with section counts far beyond the packet: FORMERR.
    HugeCounts,
    /// A real question in a class other than IN: REFUSED.
    WrongClass,
    /// A valid packet with QR=1: never a reply (no reflection loops).
    Response,
    /// More than the node reads (4 kB): a real query padded to many kB, or
    /// random bytes; any reply must parse.
    Oversized,
    /// A valid question on the flood socket: the exact answer if any.
    Valid(Valid),
}

const KINDS: [Kind; 8] = [
    Kind::Random,
    Kind::ShortHeader,
    Kind::CompressionLoop,
    Kind::HugeCounts,
    Kind::WrongClass,
    Kind::Response,
    Kind::Oversized,
    Kind::Valid(Valid::Mail),
];

impl Kind {
    /// The ID range of this kind: the top four bits of the ID.
    fn tag(self) -> u16 {
        match self {
            Kind::Random => 0x0,
            Kind::ShortHeader => 0x1,
            Kind::CompressionLoop => 0x2,
            Kind::HugeCounts => 0x3,
            Kind::WrongClass => 0x4,
            Kind::Response => 0x5,
            Kind::Oversized => 0x6,
            Kind::Valid(v) => 0x8 + VALID.iter().position(|x| *x == v).unwrap() as u16,
        }
    }

    fn of_id(id: u16) -> Option<Kind> {
        let tag = id >> 12;
        if tag >= 0x8 {
            return VALID.get(usize::from(tag - 0x8)).map(|v| Kind::Valid(*v));
        }
        KINDS.iter().copied().find(|k| k.tag() == tag)
    }
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

/// `mail.gslb.example.` in wire form.
fn mail_wire() -> Vec<u8> {
    let mut name = Vec::new();
    for label in ["mail", "gslb", "example"] {
        name.push(label.len() as u8);
        name.extend_from_slice(label.as_bytes());
    }
    name.push(0);
    name
}

/// One flood datagram of `kind` with an ID from its range.
fn datagram(kind: Kind, rng: &mut Rng) -> Vec<u8> {
    let id = (kind.tag() << 12) | (rng.next() as u16 & 0x0fff);
    let mut packet = match kind {
        Kind::Random => {
            let len = 12 + rng.below(500);
            let mut p = rng.bytes(len);
            p[2] &= 0x7f;
            p
        }
        Kind::ShortHeader => {
            let len = rng.below(12);
            let mut p = Valid::Mail.bytes(id);
            p.truncate(len);
            return p;
        }
        Kind::CompressionLoop => {
            let mut p = header(id, 0x0100, [1, 0, 0, 0]);
            match rng.below(4) {
                // A pointer to itself.
                0 => p.extend_from_slice(&[0xc0, 12]),
                // A label, then a pointer back to that label: a cycle.
                1 => p.extend_from_slice(&[4, b'm', b'a', b'i', b'l', 0xc0, 12]),
                // Two pointers to each other.
                2 => p.extend_from_slice(&[0xc0, 14, 0xc0, 12]),
                // A pointer past the end of the packet.
                _ => p.extend_from_slice(&[0xc0, 0xff]),
            }
            p.extend_from_slice(&[0, 1, 0, 1]);
            return p;
        }
        Kind::HugeCounts => {
            let counts = match rng.below(3) {
                0 => [1, 0xffff, 0xffff, 0xffff],
                1 => [0xffff, 0, 0, 0],
                _ => [1, 0, 0, 0x8000 | rng.next() as u16],
            };
            let mut p = header(id, 0x0100, counts);
            p.extend_from_slice(&mail_wire());
            p.extend_from_slice(&[0, 1, 0, 1]);
            return p;
        }
        Kind::WrongClass => {
            let classes = [DNSClass::CH, DNSClass::HS, DNSClass::NONE];
            let mut message = Valid::Mail.message(id);
            message.queries[0].set_query_class(classes[rng.below(classes.len())]);
            return message.to_vec().unwrap();
        }
        Kind::Response => {
            let mut p = Valid::VALID_FOR_RESPONSES[rng.below(2)].bytes(id);
            p[2] |= 0x80;
            p[3] = rng.next() as u8;
            return p;
        }
        Kind::Oversized => {
            let len = 4097 + rng.below(60_000);
            if rng.below(2) == 0 {
                let mut p = Valid::Mail.bytes(id);
                p.resize(len, 0);
                return p;
            }
            let mut p = rng.bytes(len);
            p[2] &= 0x7f;
            p
        }
        Kind::Valid(v) => return v.bytes(id),
    };
    packet[0..2].copy_from_slice(&id.to_be_bytes());
    packet
}

impl Valid {
    /// Questions whose replies are re-sent as queries.
    const VALID_FOR_RESPONSES: [Valid; 2] = [Valid::Mail, Valid::Www];
}

// ---------------------------------------------------------------------------
// Tallies
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    replies: AtomicU64,
    /// Replies to valid questions that were right.
    valid_ok: AtomicU64,
    /// Valid questions on the flood sockets that got no reply (tolerated:
    /// UDP under load; the checkers carry the strict requirement).
    valid_unanswered: AtomicU64,
    /// UDP checker queries answered on the first try, and after retries.
    checked_first_try: AtomicU64,
    checked_after_retry: AtomicU64,
    tcp_served: AtomicU64,
    /// Everything that went wrong, with enough detail to debug it.
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks one reply read from a flood socket against the kind its ID names.
fn check_flood_reply(bytes: &[u8], pending: &mut HashMap<u16, u32>, tally: &Tally) {
    Tally::count(&tally.replies);
    let reply = match Message::from_vec(bytes) {
        Ok(reply) => reply,
        Err(err) => {
            tally.fail(format!("a reply does not parse ({err}): {bytes:02x?}"));
            return;
        }
    };
    if reply.message_type != MessageType::Response {
        tally.fail(format!("a reply without QR: {reply:?}"));
    }
    match Kind::of_id(reply.id) {
        Some(Kind::ShortHeader) | Some(Kind::Response) | None => tally.fail(format!(
            "a reply to a packet that must get none (ID {:#06x}): {reply:?}",
            reply.id
        )),
        Some(Kind::CompressionLoop) | Some(Kind::HugeCounts) => {
            if reply.response_code != ResponseCode::FormErr {
                tally.fail(format!("not FORMERR for a malformed body: {reply:?}"));
            }
        }
        Some(Kind::WrongClass) => {
            if reply.response_code != ResponseCode::Refused || !reply.answers.is_empty() {
                tally.fail(format!("not REFUSED for another class: {reply:?}"));
            }
        }
        Some(Kind::Random) | Some(Kind::Oversized) => {}
        Some(Kind::Valid(valid)) => match pending.get_mut(&reply.id) {
            Some(outstanding) if *outstanding > 0 => {
                *outstanding -= 1;
                match valid.check(reply.id, &reply) {
                    Ok(()) => Tally::count(&tally.valid_ok),
                    Err(e) => tally.fail(format!("wrong answer on a flood socket: {e}")),
                }
            }
            _ => tally.fail(format!(
                "more replies than questions with this ID: {reply:?}"
            )),
        },
    }
}

/// Reads every reply waiting on a non-blocking flood socket.
fn drain(socket: &UdpSocket, buf: &mut [u8], pending: &mut HashMap<u16, u32>, tally: &Tally) {
    loop {
        match socket.recv(buf) {
            Ok(n) => check_flood_reply(&buf[..n], pending, tally),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("flood socket: {e}"),
        }
    }
}

/// One flood thread: paced bursts of every kind, replies checked as they
/// come, until `stop`.
fn flood(node: SocketAddr, seed: u64, stop: &AtomicBool, tally: &Tally) {
    let mut rng = Rng(seed | 1);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(node).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65536];
    // Valid questions sent on this socket and not yet answered, by ID (the
    // ID's top bits say which question it is).
    let mut pending: HashMap<u16, u32> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BURST {
            let kind = match rng.below(KINDS.len() + 2) {
                i if i < KINDS.len() => KINDS[i],
                // Valid questions interleaved, all of them.
                _ => Kind::Valid(VALID[rng.below(VALID.len())]),
            };
            let packet = datagram(kind, &mut rng);
            match socket.send(&packet) {
                Ok(_) => {
                    Tally::count(&tally.sent);
                    if let Kind::Valid(_) = kind {
                        let id = u16::from_be_bytes([packet[0], packet[1]]);
                        *pending.entry(id).or_default() += 1;
                    }
                }
                // The local send buffer is full: the node is behind.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("flood send: {e}"),
            }
        }
        drain(&socket, &mut buf, &mut pending, tally);
        std::thread::sleep(PAUSE);
    }
    // Late replies.
    std::thread::sleep(Duration::from_millis(300));
    drain(&socket, &mut buf, &mut pending, tally);
    let unanswered: u32 = pending.values().sum();
    tally
        .valid_unanswered
        .fetch_add(u64::from(unanswered), Ordering::Relaxed);
}

/// One UDP checker: valid questions from its own socket, each retried with
/// the same ID until answered; every reply, late ones included, must be
/// exactly right.
fn checker(node: SocketAddr, first_id: u16, stop: &AtomicBool, tally: &Tally) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(node).unwrap();
    socket.set_read_timeout(Some(TRY_WAIT)).unwrap();
    let mut asked: HashMap<u16, Valid> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut id = first_id;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let valid = VALID[n % VALID.len()];
        n += 1;
        id = id.wrapping_add(1);
        asked.insert(id, valid);
        let packet = valid.bytes(id);
        let mut answered = false;
        'tries: for attempt in 0..TRIES {
            socket.send(&packet).expect("checker send");
            let deadline = Instant::now() + TRY_WAIT;
            while Instant::now() < deadline {
                let len = match socket.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) => panic!("checker receive: {e}"),
                };
                let reply = match Message::from_vec(&buf[..len]) {
                    Ok(reply) => reply,
                    Err(e) => {
                        tally.fail(format!("checker: a reply does not parse: {e}"));
                        continue;
                    }
                };
                // A late reply to an earlier question (its retry was
                // answered first) must be right too.
                let Some(&expected) = asked.get(&reply.id) else {
                    tally.fail(format!("checker: a reply to no question: {reply:?}"));
                    continue;
                };
                if let Err(e) = expected.check(reply.id, &reply) {
                    tally.fail(format!("checker: wrong answer: {e}"));
                }
                if reply.id == id {
                    Tally::count(if attempt == 0 {
                        &tally.checked_first_try
                    } else {
                        &tally.checked_after_retry
                    });
                    answered = true;
                    break 'tries;
                }
            }
        }
        if !answered {
            tally.fail(format!(
                "checker: {valid:?} (ID {id:#06x}) unanswered after {TRIES} tries"
            ));
        }
        // Paced too: the flood, not the checkers, is the load, and other
        // tests may be running beside this one.
        std::thread::sleep(CHECKER_PAUSE);
    }
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

fn framed(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Reads one framed reply, or `None` on EOF, reset or timeout.
fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).ok()?;
    Some(reply)
}

/// Connections that misbehave and then stay open (or are closed by the
/// node): they must hold nothing other clients need.
fn bad_tcp_connections(node: SocketAddr, rng: &mut Rng) -> Vec<(&'static str, TcpStream)> {
    let connect = || TcpStream::connect(node).expect("connect for garbage");
    let mut bad = Vec::new();
    // Announces 65,535 bytes and sends none.
    let mut s = connect();
    s.write_all(&[0xff, 0xff]).unwrap();
    bad.push(("announces 64 KiB, sends nothing", s));
    // Half a length prefix.
    let mut s = connect();
    s.write_all(&[0x00]).unwrap();
    bad.push(("half a length prefix", s));
    // A length of 500, then 10 bytes.
    let mut s = connect();
    s.write_all(&[0x01, 0xf4]).unwrap();
    s.write_all(&rng.bytes(10)).unwrap();
    bad.push(("a short body", s));
    // Connected, silent.
    bad.push(("silent", connect()));
    // A zero-length message: nothing to answer, the node closes.
    let mut s = connect();
    s.write_all(&[0, 0]).unwrap();
    bad.push(("zero length", s));
    // A response framed as a query: the node closes.
    let mut s = connect();
    let mut response = Valid::Mail.bytes(0x5000);
    response[2] |= 0x80;
    s.write_all(&framed(&response)).unwrap();
    bad.push(("a response", s));
    // Queries it never reads the replies of.
    let mut s = connect();
    let many: Vec<u8> = (0..500)
        .flat_map(|i| framed(&Valid::Www.bytes(0x9000 + i)))
        .collect();
    s.write_all(&many).unwrap();
    bad.push(("never reads its replies", s));
    bad
}

/// A thread that keeps opening connections that send framed random bytes
/// or unframed noise, and reads whatever comes back: every framed reply
/// must parse.
fn tcp_garbage(node: SocketAddr, seed: u64, stop: &AtomicBool, tally: &Tally) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(node) else {
            tally.fail("garbage TCP connect refused".into());
            return;
        };
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut bytes = Vec::new();
        if rng.below(2) == 0 {
            // Framed garbage, a few messages.
            for _ in 0..1 + rng.below(5) {
                let len = 12 + rng.below(300);
                let mut p = rng.bytes(len);
                p[2] &= 0x7f;
                bytes.extend_from_slice(&framed(&p));
            }
        } else {
            let len = 1 + rng.below(3000);
            bytes = rng.bytes(len);
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        while let Some(reply) = read_framed(&mut s) {
            if let Err(e) = Message::from_vec(&reply) {
                tally.fail(format!("a TCP reply to garbage does not parse: {e}"));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A well-behaved TCP client: a new connection per question, sometimes
/// several questions pipelined; each answered promptly and exactly.
fn tcp_client(node: SocketAddr, stop: &AtomicBool, tally: &Tally) {
    let mut n = 0u16;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let mut s = TcpStream::connect(node).expect("a TCP client connects during the flood");
        s.set_read_timeout(Some(TCP_PROMPT)).unwrap();
        let questions: Vec<(u16, Valid)> = (0..1 + usize::from(n % 4))
            .map(|i| {
                n = n.wrapping_add(1);
                (
                    0xa000 | (n & 0x0fff),
                    VALID[(usize::from(n) + i) % VALID.len()],
                )
            })
            .collect();
        let bytes: Vec<u8> = questions
            .iter()
            .flat_map(|(id, v)| framed(&v.bytes(*id)))
            .collect();
        s.write_all(&bytes).expect("TCP client write");
        for (id, valid) in &questions {
            let Some(reply) = read_framed(&mut s) else {
                tally.fail(format!(
                    "TCP client: {valid:?} unanswered after {:?}",
                    start.elapsed()
                ));
                return;
            };
            match Message::from_vec(&reply).map_err(|e| e.to_string()) {
                Ok(reply) => match valid.check(*id, &reply) {
                    Ok(()) => Tally::count(&tally.tcp_served),
                    Err(e) => tally.fail(format!("TCP client: wrong answer: {e}")),
                },
                Err(e) => tally.fail(format!("TCP client: reply does not parse: {e}")),
            }
        }
        if start.elapsed() > TCP_PROMPT {
            tally.fail(format!("TCP client served in {:?}", start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// A thread's work: runs until the flag is set, reporting to the tally.
type Job = Box<dyn FnOnce(&AtomicBool, &Tally) + Send>;

#[test]
fn a_flood_of_malformed_packets_does_not_change_any_answer() {
    let seed = std::env::var("FLOOD_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("flood seed {seed} (replay with FLOOD_SEED={seed})");
    let mut rng = Rng(seed | 1);

    let node = Node::start(&all_policy_example());
    let addr = node.dns;
    assert_eq!(
        Valid::Mail.check(0x1111, &node.udp(&Valid::Mail.message(0x1111))),
        Ok(()),
        "the node answers before the flood"
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let bad_tcp = bad_tcp_connections(addr, &mut rng);
    let mut threads = Vec::new();
    let mut spawn = |f: Job| {
        let (stop, tally) = (stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || f(&stop, &tally)));
    };
    for _ in 0..FLOOD_THREADS {
        let seed = rng.next();
        spawn(Box::new(move |stop, tally| flood(addr, seed, stop, tally)));
    }
    for i in 0..CHECKERS {
        let first_id = (i as u16) << 14;
        spawn(Box::new(move |stop, tally| {
            checker(addr, first_id, stop, tally)
        }));
    }
    let seed = rng.next();
    spawn(Box::new(move |stop, tally| {
        tcp_garbage(addr, seed, stop, tally)
    }));
    spawn(Box::new(move |stop, tally| tcp_client(addr, stop, tally)));

    std::thread::sleep(FLOOD_FOR);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a flood thread panicked");
    }

    // The connections that sent nothing the node can answer were closed.
    for (what, mut stream) in bad_tcp {
        if matches!(what, "zero length" | "a response") {
            assert_closed_by_server(
                &mut stream,
                Duration::from_secs(5),
                &format!("a connection that sent {what}"),
            );
        }
    }

    // After the flood: normal answers over UDP and TCP.
    for (i, valid) in VALID.iter().enumerate() {
        let id = 0x7000 + i as u16;
        let message = valid.message(id);
        assert_eq!(valid.check(id, &node.udp(&message)), Ok(()), "UDP after");
        assert_eq!(valid.check(id, &node.tcp(&message)), Ok(()), "TCP after");
    }

    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "flood: {} datagrams sent, {} replies read, {} valid answered right on flood \
         sockets ({} unanswered, tolerated); checkers: {} first try, {} after retries; \
         TCP: {} answered",
        n(&tally.sent),
        n(&tally.replies),
        n(&tally.valid_ok),
        n(&tally.valid_unanswered),
        n(&tally.checked_first_try),
        n(&tally.checked_after_retry),
        n(&tally.tcp_served),
    );
    let failures = tally.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures, the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Not vacuous: the flood flowed, was answered, and the clients asked.
    assert!(n(&tally.sent) >= 1000, "the flood sent too little");
    assert!(n(&tally.replies) >= 100, "the node answered too little");
    assert!(
        n(&tally.valid_ok) >= 10,
        "too few valid answers on flood sockets"
    );
    assert!(
        n(&tally.checked_first_try) + n(&tally.checked_after_retry) >= 20,
        "too few checker questions"
    );
    assert!(n(&tally.tcp_served) >= 10, "too few TCP clients served");
}

// Every test above, again with the fast path switched off.
crate::also_on_general_path! {
    a_flood_of_malformed_packets_does_not_change_any_answer,
}
