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
//! receive headers' pointers into it are set once and stay valid; only
//! what the kernel overwrites is reset between calls. Send headers point
//! at reply buffers that may grow, so they are filled per send.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest UDP datagram we read; anything longer is not a sane query.
pub const RECV_MAX: usize = 4096;

/// One thread's receive and send buffers.
pub struct Batch {
    requests: Box<[[u8; RECV_MAX]; BATCH]>,
    sources: Box<[libc::sockaddr_storage; BATCH]>,
    received: [libc::mmsghdr; BATCH],
    recv_iov: [libc::iovec; BATCH],
    /// Reply bytes per slot; capacity is kept across batches.
    replies: Vec<Vec<u8>>,
    /// Whether slot `i` has a reply to send.
    answered: [bool; BATCH],
    /// Slots the last receive filled, whose headers need resetting.
    filled: usize,
    outgoing: [libc::mmsghdr; BATCH],
    send_iov: [libc::iovec; BATCH],
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
            received,
            recv_iov,
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            answered: [false; BATCH],
            filled: BATCH,
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
            let header = &mut batch.received[i].msg_hdr;
            header.msg_name = source.cast();
            header.msg_iov = iov;
            header.msg_iovlen = 1;
        }
        batch
    }

    /// Waits for at least one datagram (up to the socket's read timeout)
    /// and takes whatever else is already queued, up to [`BATCH`].
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // The kernel rewrote the address length and flags of the slots it
        // filled last time; the pointers set in `new` still hold.
        for received in &mut self.received[..self.filled] {
            received.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            received.msg_hdr.msg_flags = 0;
            received.msg_len = 0;
        }
        self.filled = 0;
        // SAFETY: every header points at buffers owned by `self` that
        // outlive the call, with their true lengths.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.received.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        self.filled = n;
        self.answered[..n].fill(true);
        Ok(n)
    }

    /// Datagram `i`: its bytes, its source (`None` for an address family
    /// we do not serve) and the buffer its reply goes in.
    pub fn slot(&mut self, i: usize) -> (&[u8], Option<IpAddr>, &mut Vec<u8>) {
        let len = (self.received[i].msg_len as usize).min(RECV_MAX);
        let source = source_ip(&self.sources[i]);
        (&self.requests[i][..len], source, &mut self.replies[i])
    }

    /// Datagram `i` gets no reply.
    pub fn skip(&mut self, i: usize) {
        self.answered[i] = false;
    }

    /// Sends the replies of the first `received` slots, each to the
    /// address its query came from. A reply the kernel refuses is logged
    /// and skipped; the rest still go.
    pub fn send(&mut self, socket: &UdpSocket, received: usize) {
        let mut queued = 0;
        for i in 0..received {
            if !self.answered[i] {
                continue;
            }
            self.send_iov[queued] = libc::iovec {
                iov_base: self.replies[i].as_mut_ptr().cast(),
                iov_len: self.replies[i].len(),
            };
            let header = &mut self.outgoing[queued].msg_hdr;
            header.msg_name = (&mut self.sources[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = self.received[i].msg_hdr.msg_namelen;
            header.msg_iov = &mut self.send_iov[queued];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            queued += 1;
        }
        let mut sent = 0;
        while sent < queued {
            // SAFETY: headers `sent..queued` point at live buffers of `self`.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.outgoing[sent..].as_mut_ptr(),
                    (queued - sent) as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first remaining reply failed (an unreachable source, a
            // full buffer): drop it and carry on with the others.
            tracing::debug!(%err, "udp send failed");
            sent += 1;
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
