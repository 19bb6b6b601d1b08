//! Datagrams in and out by the batch: `recvmmsg` and `sendmmsg`.
//!
//! Under load the kernel's per-call cost dominates a cheap answer: one
//! system call per datagram each way costs more than the fast path's whole
//! answer. Receiving up to [`BATCH`] datagrams per call (waiting only for
//! the first) and sending their replies in one call divides that by the
//! batch size when busy, and costs nothing extra when a single query
//! arrives alone.
//!
//! All buffers live in one boxed block allocated once per thread, so the
//! headers' pointers into it are set once and stay valid; only what the
//! kernel overwrites is reset between calls. Send header `i` names slot
//! `i`'s source and control buffer from the start, so a reply fills in
//! only its bytes (reply buffers may grow) and two lengths; only a batch
//! with a slot that sends nothing moves later replies down, and puts the
//! headers back after.
//!
//! A socket bound to a wildcard address (`0.0.0.0`, `[::]`) on a host with
//! several addresses must answer from the address each query was sent to,
//! or resolvers drop the reply. Such sockets ask the kernel for each
//! datagram's destination ([`report_destinations`]: IP_PKTINFO,
//! IPV6_RECVPKTINFO); the control message it writes into the slot's
//! control buffer is handed back on the send as the source to use. Other
//! sockets get no control message, and their replies carry none.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;

use super::wire;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest UDP datagram we read; anything longer is not a sane query.
pub const RECV_MAX: usize = 4096;

/// Room for one control message with the larger packet info (IPv6's).
const CONTROL_LEN: usize = 64;

/// A control message buffer, aligned as `cmsghdr` needs.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// Asks the kernel to report each datagram's destination address on a
/// socket bound to a wildcard address, so [`Batch::reply_each`] can
/// answer from it. Sockets bound to one address need nothing: their
/// replies leave from it.
pub fn report_destinations(socket: &UdpSocket) -> io::Result<()> {
    let local = socket.local_addr()?;
    if !local.ip().is_unspecified() {
        return Ok(());
    }
    let (level, name) = match local.ip() {
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    };
    set_int_option(socket, level, name, 1)
}

/// Sets an int-valued socket option.
fn set_int_option(
    socket: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket and an int option of its true size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel never to fragment a reply and to ignore path MTU
/// information (IP_PMTUDISC_PROBE, IPV6_PMTUDISC_PROBE): every reply
/// leaves with DF set and at most the interface's MTU. A reply the link
/// cannot carry fails with EMSGSIZE and goes out truncated instead
/// ([`Batch::reply_each`]), so the client retries over TCP (RFC 9715:
/// fragmented DNS replies can be spoofed, and reach resolvers badly). On
/// the default setting a forged ICMP "fragmentation needed" lowers the
/// path MTU and the kernel then fragments replies to that client. An IPv4
/// datagram with DF set also takes IP ID 0, where the default costs a
/// keyed hash per reply.
pub fn never_fragment(socket: &UdpSocket) -> io::Result<()> {
    let (level, name, value) = match socket.local_addr()?.ip() {
        IpAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        ),
        IpAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        ),
    };
    set_int_option(socket, level, name, value)
}

/// One thread's receive and send buffers.
pub struct Batch {
    requests: Box<[[u8; RECV_MAX]; BATCH]>,
    sources: Box<[libc::sockaddr_storage; BATCH]>,
    /// Per slot, the destination the kernel reported (if asked to), made
    /// into the source the reply is sent from.
    controls: Box<[Control; BATCH]>,
    received: [libc::mmsghdr; BATCH],
    recv_iov: [libc::iovec; BATCH],
    /// Reply bytes per slot; capacity is kept across batches.
    replies: Vec<Vec<u8>>,
    outgoing: [libc::mmsghdr; BATCH],
    send_iov: [libc::iovec; BATCH],
}

/// The bytes of a received datagram its slot holds: a longer one was cut
/// to the slot's [`RECV_MAX`].
#[inline(always)]
fn datagram_len(message: &libc::mmsghdr) -> usize {
    (message.msg_len as usize).min(RECV_MAX)
}

impl Batch {
    pub fn new() -> Box<Batch> {
        // SAFETY: these are plain C structs for which all-zero is valid.
        let (sources, received, recv_iov, outgoing, send_iov) =
            unsafe { (Box::new(zeroed()), zeroed(), zeroed(), zeroed(), zeroed()) };
        let mut batch = Box::new(Batch {
            requests: vec![[0u8; RECV_MAX]; BATCH]
                .into_boxed_slice()
                .try_into()
                .expect("BATCH buffers"),
            sources,
            controls: Box::new([Control([0; CONTROL_LEN]); BATCH]),
            received,
            recv_iov,
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            outgoing,
            send_iov,
        });
        for i in 0..BATCH {
            batch.recv_iov[i] = libc::iovec {
                iov_base: batch.requests[i].as_mut_ptr().cast(),
                iov_len: RECV_MAX,
            };
            let source: *mut libc::sockaddr_storage = &mut batch.sources[i];
            let iov: *mut libc::iovec = &mut batch.recv_iov[i];
            let control: *mut Control = &mut batch.controls[i];
            let header = &mut batch.received[i].msg_hdr;
            header.msg_name = source.cast();
            header.msg_iov = iov;
            header.msg_iovlen = 1;
            header.msg_control = control.cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_controllen = CONTROL_LEN as _;
            // Send header `i` always carries send iovec `i`, and until a
            // skipped slot moves replies down, slot `i`'s source and
            // control buffer (read only when a length says so).
            let iov: *mut libc::iovec = &mut batch.send_iov[i];
            let header = &mut batch.outgoing[i].msg_hdr;
            header.msg_iov = iov;
            header.msg_iovlen = 1;
        }
        batch.point_send_headers_at_own_slots(BATCH);
        batch
    }

    /// Points send headers `..n` at their own slot's source and control
    /// buffer again, after a batch moved replies down.
    fn point_send_headers_at_own_slots(&mut self, n: usize) {
        for i in 0..n.min(BATCH) {
            self.point_send_header(i, i);
        }
    }

    /// Points send header `header` at slot `slot`'s source and control
    /// buffer.
    #[inline]
    fn point_send_header(&mut self, header: usize, slot: usize) {
        let source: *mut libc::sockaddr_storage = &mut self.sources[slot];
        let control: *mut Control = &mut self.controls[slot];
        let header = &mut self.outgoing[header].msg_hdr;
        header.msg_name = source.cast();
        header.msg_control = control.cast();
    }

    /// Waits for at least one datagram (up to the socket's read timeout)
    /// and takes whatever else is already queued, up to [`BATCH`].
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // SAFETY: every header points at buffers owned by `self` that
        // outlive the call, with their true lengths (restored by
        // `reply_each` in the slots a receive filled).
        let n = unsafe {
            mmsg_syscall(
                libc::SYS_recvmmsg,
                socket.as_raw_fd(),
                self.received.as_mut_ptr(),
                BATCH,
                libc::MSG_WAITFORONE,
            )
        }?;
        Ok(n)
    }

    /// The first `received` datagrams as [`Self::receive`] took them, not
    /// yet answered: for warming caches before they are (the source and
    /// the checks come with [`Self::reply_each`]).
    pub fn requests(&self, received: usize) -> impl Iterator<Item = &[u8]> {
        let received = received.min(BATCH);
        let lens = self.received[..received].iter().map(datagram_len);
        self.requests[..received]
            .iter()
            .zip(lens)
            .map(|(request, len)| &request[..len])
    }

    /// Hands each of the `received` datagrams to `answer` with its source
    /// and the buffer its reply goes in (it returns false to send nothing;
    /// a datagram from an address family we do not serve is not offered),
    /// then sends the replies, each to the address its query came from, in
    /// one call. A reply larger than the link allows goes out truncated
    /// (see [`never_fragment`]); gives how many did. Any other reply the
    /// kernel refuses is logged and skipped; the rest still go. One pass
    /// over the slots: each is made ready for the next receive as its
    /// reply is queued.
    ///
    /// Inlined into the loop that calls it: called out of line, the
    /// loop's state is passed through memory and read back for every
    /// batch, about 55 instructions per answer when batches hold one
    /// query (`benches/load.sh`'s callgrind counts).
    #[inline(always)]
    pub fn reply_each(
        &mut self,
        socket: &UdpSocket,
        received: usize,
        mut answer: impl FnMut(&[u8], &IpAddr, &mut Vec<u8>) -> bool,
    ) -> usize {
        let received = received.min(BATCH);
        let mut queued = 0;
        for i in 0..received {
            let len = datagram_len(&self.received[i]);
            let namelen = self.received[i].msg_hdr.msg_namelen;
            // Only a socket that asked for destinations has a control
            // message; it goes back as the reply's source.
            let controllen = self.received[i].msg_hdr.msg_controllen;
            if controllen > 0 {
                // SAFETY: the kernel wrote `controllen` bytes of control
                // messages into this slot's buffer, which the header names.
                unsafe { source_from_destination(&self.received[i].msg_hdr) };
            }
            // The kernel rewrote these two lengths; the pointers set in
            // `new` still hold, and the rest it only writes.
            let header = &mut self.received[i].msg_hdr;
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_controllen = CONTROL_LEN as _;
            let Some(source) = source_ip(&self.sources[i]) else {
                continue;
            };
            let reply = &mut self.replies[i];
            if !answer(&self.requests[i][..len], &source, reply) {
                continue;
            }
            self.send_iov[queued] = libc::iovec {
                iov_base: reply.as_mut_ptr().cast(),
                iov_len: reply.len(),
            };
            if queued < i {
                // A slot before this one sends nothing: this reply moves
                // down, with its own slot's source and control buffer.
                self.point_send_header(queued, i);
            }
            // No control message (length 0) when the socket asked for none.
            let header = &mut self.outgoing[queued].msg_hdr;
            header.msg_namelen = namelen;
            header.msg_controllen = controllen;
            queued += 1;
        }
        let mut sent = 0;
        let mut truncated = 0;
        while sent < queued {
            // SAFETY: headers `sent..queued` point at live buffers of `self`.
            // Straight to the kernel, as in `receive`.
            let n = unsafe {
                mmsg_syscall(
                    libc::SYS_sendmmsg,
                    socket.as_raw_fd(),
                    self.outgoing[sent..].as_mut_ptr(),
                    queued - sent,
                    0,
                )
            };
            let err = match n {
                Ok(n) if n > 0 => {
                    sent += n;
                    continue;
                }
                Ok(_) => io::Error::other("the kernel took no datagram"),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.raw_os_error() == Some(libc::EMSGSIZE) && self.truncate(sent) => {
                    truncated += 1;
                    continue;
                }
                Err(err) => err,
            };
            // The first remaining reply failed (an unreachable source, a
            // full buffer): drop it and carry on with the others.
            tracing::debug!(%err, "udp send failed");
            sent += 1;
        }
        if queued < received {
            self.point_send_headers_at_own_slots(queued);
        }
        truncated
    }

    /// Cuts queued reply `queued` down to what a client retries over TCP
    /// for; false if it does not read or is already that short.
    #[cold]
    fn truncate(&mut self, queued: usize) -> bool {
        let iov = &mut self.send_iov[queued];
        // SAFETY: a queued iovec names `iov_len` bytes of one of our reply
        // buffers, which nothing else borrows during the send.
        let reply =
            unsafe { std::slice::from_raw_parts_mut(iov.iov_base.cast::<u8>(), iov.iov_len) };
        match wire::truncate_for_tcp(reply) {
            Some(len) if len < iov.iov_len => {
                iov.iov_len = len;
                true
            }
            _ => false,
        }
    }
}

/// `recvmmsg` or `sendmmsg` (no timeout) on `fd` over `len` headers
/// from `headers`; the count of datagrams, or the error.
///
/// The system call itself, not libc's `recvmmsg`/`sendmmsg`: those make
/// it a thread cancellation point, bookkeeping nothing here uses (no
/// thread is ever cancelled). On x86-64 it is the `syscall` instruction:
/// libc's variadic `syscall` wrapper shuffles every argument and sets
/// `errno`, about as many instructions per batch as a static answer's
/// header and question. Elsewhere it is that wrapper.
///
/// # Safety
///
/// `headers` must point at `len` headers whose buffers are live and
/// writable for the call, as the system call requires.
#[inline(always)]
unsafe fn mmsg_syscall(
    nr: libc::c_long,
    fd: libc::c_int,
    headers: *mut libc::mmsghdr,
    len: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let ret: isize;
        // SAFETY: the caller's contract; the kernel clobbers rcx and r11
        // and nothing else, and the timeout argument (r8) is null.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") fd as isize,
                in("rsi") headers,
                in("rdx") len,
                in("r10") flags as isize,
                in("r8") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if (-4095..0).contains(&ret) {
            return Err(io::Error::from_raw_os_error(-ret as i32));
        }
        Ok(ret as usize)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: the caller's contract.
        let ret = unsafe {
            libc::syscall(
                nr,
                fd,
                headers,
                len as libc::c_uint,
                flags,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ret as usize)
    }
}

/// Turns the packet info a datagram arrived with into the packet info
/// its reply is sent with: the query's destination becomes the reply's
/// source. IPv4's `in_pktinfo` is read for `ipi_spec_dst` on send, so the
/// destination is copied there and the interface left to routing; IPv6's
/// `in6_pktinfo` means the same both ways and is sent back as it came.
///
/// # Safety
///
/// `header` must describe control messages the kernel wrote into a buffer
/// of at least `msg_controllen` bytes.
unsafe fn source_from_destination(header: &libc::msghdr) {
    // SAFETY: the caller's contract; the CMSG macros stay inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                let info = libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>();
                let mut pktinfo = info.read_unaligned();
                pktinfo.ipi_spec_dst = pktinfo.ipi_addr;
                pktinfo.ipi_ifindex = 0;
                info.write_unaligned(pktinfo);
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
}

fn source_ip(storage: &libc::sockaddr_storage) -> Option<IpAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Real sockets on the loopback: each reply must reach the client whose
    //! query filled its slot, skipped slots send nothing, and the slots
    //! are clean for the next batch.

    use std::io::ErrorKind;
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    fn bound(addr: &str, timeout: Duration) -> UdpSocket {
        let socket = UdpSocket::bind(addr).expect("a loopback socket");
        socket.set_read_timeout(Some(timeout)).unwrap();
        socket
    }

    fn server() -> UdpSocket {
        bound("127.0.0.1:0", Duration::from_secs(5))
    }

    fn client(server: &UdpSocket) -> UdpSocket {
        let ip = server.local_addr().unwrap().ip();
        let client = bound(&SocketAddr::new(ip, 0).to_string(), Duration::from_secs(5));
        client.connect(server.local_addr().unwrap()).unwrap();
        client
    }

    /// Receives until `want` datagrams were taken (the kernel may hand
    /// them over in more than one batch), replying to each as `reply` says
    /// (`None`: skip it). Returns what each slot held, batch by batch.
    fn serve(
        batch: &mut Batch,
        server: &UdpSocket,
        want: usize,
        mut reply: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Vec<Vec<(Vec<u8>, IpAddr)>> {
        let mut batches = Vec::new();
        let mut taken = 0;
        while taken < want {
            assert!(batches.len() < want, "at least one datagram per receive");
            let n = batch.receive(server).expect("the datagrams sent");
            assert!((1..=BATCH).contains(&n), "{n}");
            let ahead: Vec<Vec<u8>> = batch.requests(n).map(<[u8]>::to_vec).collect();
            let mut slots = Vec::new();
            batch.reply_each(server, n, |request, source, out| {
                slots.push((request.to_vec(), *source));
                match reply(request) {
                    Some(bytes) => {
                        out.clear();
                        out.extend_from_slice(&bytes);
                        true
                    }
                    None => false,
                }
            });
            // What `requests` gave before the answers is what they answered.
            let answered: Vec<&Vec<u8>> = slots.iter().map(|(request, _)| request).collect();
            assert_eq!(ahead.iter().collect::<Vec<_>>(), answered);
            taken += n;
            batches.push(slots);
        }
        assert_eq!(taken, want);
        batches
    }

    fn reply_to(request: &[u8]) -> Vec<u8> {
        [b"re:", request].concat()
    }

    fn recv(client: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 100_000];
        let n = client.recv(&mut buf).expect("a reply");
        buf[..n].to_vec()
    }

    /// Nothing arrives within the client's read timeout.
    fn assert_silent(client: &UdpSocket) {
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        match client.recv(&mut buf) {
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{e}"
            ),
            Ok(n) => panic!("an unexpected datagram: {:?}", &buf[..n]),
        }
    }

    #[test]
    fn replies_reach_their_own_sources_and_skipped_slots_send_nothing() {
        let server = server();
        let clients: Vec<UdpSocket> = (0..4).map(|_| client(&server)).collect();
        for (i, client) in clients.iter().enumerate() {
            // Different lengths, so a slot showing a stale length shows.
            client.send(&vec![b'a' + i as u8; 3 + i * 5]).unwrap();
        }
        let mut batch = Batch::new();
        let batches = serve(&mut batch, &server, 4, |request| {
            (request[0] != b'b').then(|| reply_to(request))
        });
        let slots: Vec<_> = batches.concat();
        for (i, (request, source)) in slots.iter().enumerate() {
            assert_eq!(*request, vec![b'a' + i as u8; 3 + i * 5]);
            assert_eq!(*source, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        for (i, client) in clients.iter().enumerate() {
            if i == 1 {
                assert_silent(client);
            } else {
                assert_eq!(recv(client), reply_to(&vec![b'a' + i as u8; 3 + i * 5]));
            }
        }
        // The next batch starts clean: the slot skipped last time is
        // answered, and every slot shows only its new bytes.
        for client in &clients {
            client.send(b"x").unwrap();
        }
        let batches = serve(&mut batch, &server, 4, |request| Some(reply_to(request)));
        assert!(batches.concat().iter().all(|(request, _)| request == b"x"));
        for client in &clients {
            assert_eq!(recv(client), b"re:x");
        }
    }

    #[test]
    fn more_datagrams_than_a_batch_take_several_receives_in_order() {
        let server = server();
        let client = client(&server);
        let total = BATCH + 5;
        for i in 0..total {
            client.send(&(i as u32).to_be_bytes()).unwrap();
        }
        let mut batch = Batch::new();
        let batches = serve(&mut batch, &server, total, |request| {
            Some(reply_to(request))
        });
        assert!(batches.len() >= 2, "no batch holds more than {BATCH}");
        let order: Vec<u32> = batches
            .concat()
            .iter()
            .map(|(request, _)| u32::from_be_bytes(request[..].try_into().unwrap()))
            .collect();
        assert_eq!(order, (0..total as u32).collect::<Vec<_>>());
        for i in 0..total {
            assert_eq!(recv(&client), reply_to(&(i as u32).to_be_bytes()));
        }
    }

    #[test]
    fn a_reply_the_kernel_refuses_does_not_stop_the_others() {
        let server = server();
        let clients: Vec<UdpSocket> = (0..3).map(|_| client(&server)).collect();
        for (i, client) in clients.iter().enumerate() {
            client.send(&[i as u8]).unwrap();
        }
        let mut batch = Batch::new();
        serve(&mut batch, &server, 3, |request| {
            // Larger than any UDP datagram: sendmmsg fails on this one.
            Some(if request == [1] {
                vec![0; 70_000]
            } else {
                reply_to(request)
            })
        });
        assert_eq!(recv(&clients[0]), reply_to(&[0]));
        assert_silent(&clients[1]);
        assert_eq!(recv(&clients[2]), reply_to(&[2]));
    }

    /// A reply to `www.gslb.example` A: `answers` TXT records of `rdata`
    /// bytes each, then an OPT (payload 1232).
    fn dns_reply(answers: u16, rdata: usize) -> (Vec<u8>, Vec<u8>) {
        let head = [0x12, 0x34, 0x84, 0x00, 0, 1, 0, answers as u8, 0, 0, 0, 1];
        let question = b"\x03www\x04gslb\x07example\x00\x00\x01\x00\x01";
        let opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
        let mut reply = [&head[..], question].concat();
        let strings: Vec<u8> = (0..rdata / 256)
            .flat_map(|_| std::iter::once(255).chain(std::iter::repeat_n(b'x', 255)))
            .collect();
        for _ in 0..answers {
            reply.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 30]);
            reply.extend_from_slice(&(strings.len() as u16).to_be_bytes());
            reply.extend_from_slice(&strings);
        }
        reply.extend_from_slice(&opt);
        let mut truncated = [&head[..], question, &opt].concat();
        truncated[2] |= 0x02;
        truncated[7] = 0;
        (reply, truncated)
    }

    #[test]
    fn a_reply_larger_than_the_link_goes_out_truncated_with_its_opt() {
        // Two records of 35,000 bytes: more than any IPv4 datagram holds,
        // so even the loopback refuses it (EMSGSIZE).
        let (huge, truncated) = dns_reply(2, 35_000);
        assert!(huge.len() > 65_535);
        let server = server();
        never_fragment(&server).unwrap();
        let clients: Vec<UdpSocket> = (0..2).map(|_| client(&server)).collect();
        for (i, client) in clients.iter().enumerate() {
            client.send(&[i as u8]).unwrap();
        }
        let mut batch = Batch::new();
        let mut taken = 0;
        let mut sent_truncated = 0;
        while taken < 2 {
            let n = batch.receive(&server).unwrap();
            sent_truncated += batch.reply_each(&server, n, |request, _, out| {
                out.clear();
                out.extend_from_slice(&if request == [1] {
                    huge.clone()
                } else {
                    reply_to(request)
                });
                true
            });
            taken += n;
        }
        assert_eq!(recv(&clients[0]), reply_to(&[0]));
        assert_eq!(
            recv(&clients[1]),
            truncated,
            "header, question and OPT, TC=1"
        );
        assert_eq!(sent_truncated, 1);
    }

    #[test]
    fn replies_are_never_fragmented_and_path_mtu_is_ignored() {
        for (addr, level, name, probe) in [
            (
                "127.0.0.1:0",
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            ),
            (
                "[::1]:0",
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            ),
        ] {
            let socket = bound(addr, Duration::from_secs(1));
            let read = |socket: &UdpSocket| {
                let mut value: libc::c_int = -1;
                let mut len = size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: a valid socket and an int of its true size.
                let rc = unsafe {
                    libc::getsockopt(
                        socket.as_raw_fd(),
                        level,
                        name,
                        (&mut value as *mut libc::c_int).cast(),
                        &mut len,
                    )
                };
                assert_eq!(rc, 0, "{}", io::Error::last_os_error());
                value
            };
            assert_ne!(read(&socket), probe, "{addr}: not the default");
            never_fragment(&socket).unwrap();
            assert_eq!(read(&socket), probe, "{addr}");
        }
    }

    #[test]
    fn a_datagram_longer_than_recv_max_is_cut() {
        let server = server();
        let client = client(&server);
        client.send(&vec![7u8; RECV_MAX + 904]).unwrap();
        let mut batch = Batch::new();
        let batches = serve(&mut batch, &server, 1, |_| None);
        assert_eq!(batches[0][0].0, vec![7u8; RECV_MAX]);
    }

    #[test]
    fn ipv6_sources_are_read_and_answered() {
        let server = bound("[::1]:0", Duration::from_secs(5));
        let client = client(&server);
        client.send(b"six").unwrap();
        let mut batch = Batch::new();
        let batches = serve(&mut batch, &server, 1, |request| Some(reply_to(request)));
        assert_eq!(batches[0][0].1, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(recv(&client), b"re:six");
    }

    /// A wildcard-bound server asked at `targets`, each on its port: every
    /// reply must come from the address its query went to.
    fn assert_replies_from_the_address_asked(wildcard: &str, client_at: &str, targets: &[&str]) {
        let server = bound(wildcard, Duration::from_secs(5));
        report_destinations(&server).expect("packet info on a wildcard socket");
        let port = server.local_addr().unwrap().port();
        let client = bound(client_at, Duration::from_secs(5));
        let mut batch = Batch::new();
        for round in 0..2 {
            for target in targets {
                let to: SocketAddr = SocketAddr::new(target.parse().unwrap(), port);
                client.send_to(target.as_bytes(), to).unwrap();
            }
            serve(&mut batch, &server, targets.len(), |request| {
                Some(reply_to(request))
            });
            let mut buf = [0u8; 256];
            for _ in targets {
                let (n, from) = client.recv_from(&mut buf).expect("a reply");
                let asked = std::str::from_utf8(&buf[3..n]).unwrap();
                assert_eq!(from.ip().to_string(), asked, "round {round}");
                assert_eq!(from.port(), port);
            }
        }
    }

    #[test]
    fn a_wildcard_socket_replies_from_the_address_each_query_was_sent_to() {
        assert_replies_from_the_address_asked(
            "0.0.0.0:0",
            "127.0.0.1:0",
            &["127.0.0.2", "127.0.0.3", "127.0.0.1"],
        );
        assert_replies_from_the_address_asked("[::]:0", "[::1]:0", &["::1"]);
        // A socket bound to one address needs no packet info, and asks
        // for none: its replies carry no control message.
        let server = server();
        report_destinations(&server).unwrap();
        let client = client(&server);
        client.send(b"one").unwrap();
        let mut batch = Batch::new();
        serve(&mut batch, &server, 1, |request| Some(reply_to(request)));
        assert_eq!(batch.outgoing[0].msg_hdr.msg_controllen, 0);
        assert_eq!(recv(&client), b"re:one");
    }

    #[test]
    fn an_idle_socket_times_out_and_the_batch_still_works_after() {
        let server = bound("127.0.0.1:0", Duration::from_millis(100));
        let mut batch = Batch::new();
        let err = batch.receive(&server).expect_err("nothing was sent");
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let client = client(&server);
        client.send(b"late").unwrap();
        serve(&mut batch, &server, 1, |request| Some(reply_to(request)));
        assert_eq!(recv(&client), b"re:late");
    }
}
