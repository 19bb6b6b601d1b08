//! Response rate limiting: a reflector must not be a cannon.
//!
//! Spoofed queries make a DNS server send its answers at a victim, and an
//! authoritative server answers anyone. So UDP responses to one client
//! network (IPv4 /24, IPv6 /56: spoofers vary the low bits) are limited to
//! a rate. Over it, most responses are dropped and every `slip`-th is sent
//! as an empty TC=1 reply: a real client behind that network retries over
//! TCP, which cannot be spoofed, and still gets its answer. Queries with a
//! valid DNS cookie are never limited.
//!
//! Each UDP thread keeps its own buckets, so the answer path shares
//! nothing; the kernel spreads a client's packets over sockets by their
//! address and port, so a network sending from many ports may get up to
//! one limit per thread. The limit is a bound on amplification, not an
//! exact quota.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::wire;
use crate::config::RrlSettings;

/// Buckets kept before idle ones are swept.
const SWEEP_AT: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send an empty truncated reply instead.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    over: u32,
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<u128, Bucket>,
}

/// The client network a response is counted against.
fn network_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a) & 0xffff_ff00),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4) & 0xffff_ff00),
            // Tagged so an IPv6 /56 never shares a bucket with IPv4.
            None => (u128::from(a) & !((1u128 << 72) - 1)) | 1,
        },
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides for one response to `addr`.
    pub fn check(&mut self, settings: &RrlSettings, addr: IpAddr, now: Instant) -> Verdict {
        if self.buckets.len() >= SWEEP_AT {
            self.buckets
                .retain(|_, b| now.duration_since(b.last).as_secs_f64() < 1.0);
        }
        let rate = f64::from(settings.responses_per_second);
        let bucket = self.buckets.entry(network_key(addr)).or_insert(Bucket {
            tokens: rate,
            last: now,
            over: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.over = bucket.over.wrapping_add(1);
        if settings.slip > 0 && bucket.over.is_multiple_of(settings.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// An empty reply with TC=1: the reply's header with the answer sections
/// emptied and the request's question. `None` if the question cannot be
/// delimited (then the response is dropped).
pub fn truncated(request: &[u8], reply: &[u8]) -> Option<Vec<u8>> {
    if request.len() < 12 || reply.len() < 12 {
        return None;
    }
    if u16::from_be_bytes([request[4], request[5]]) == 0 {
        return None;
    }
    let question_end = wire::question_end(request)?;
    let mut out = Vec::with_capacity(question_end);
    out.extend_from_slice(&reply[..4]);
    out[2] |= 0x02; // TC
    out[3] &= 0xf0; // NOERROR: the answer is over TCP
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&request[12..question_end]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(rate: u32, slip: u32) -> RrlSettings {
        RrlSettings {
            responses_per_second: rate,
            slip,
        }
    }

    #[test]
    fn below_the_rate_everything_is_sent() {
        let mut rl = RateLimiter::new();
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // 10/s for 3 s, at 10/s: never limited.
        for i in 0..30 {
            let now = start + Duration::from_millis(100 * i);
            assert_eq!(rl.check(&settings(10, 2), ip, now), Verdict::Send, "{i}");
        }
    }

    #[test]
    fn above_the_rate_it_slips_and_drops() {
        let mut rl = RateLimiter::new();
        let now = Instant::now();
        let s = settings(5, 2);
        let verdicts: Vec<Verdict> = (0..11)
            .map(|i| rl.check(&s, format!("192.0.2.{i}").parse().unwrap(), now))
            .collect();
        // One /24: five sent, then alternately dropped and slipped.
        use Verdict::*;
        assert_eq!(
            verdicts,
            [
                Send, Send, Send, Send, Send, Drop, Slip, Drop, Slip, Drop, Slip
            ]
        );
        // Another network has its own bucket.
        assert_eq!(rl.check(&s, "198.51.100.1".parse().unwrap(), now), Send);
        // Tokens come back with time.
        assert_eq!(
            rl.check(
                &s,
                "192.0.2.1".parse().unwrap(),
                now + Duration::from_millis(250)
            ),
            Send
        );
    }

    #[test]
    fn ipv6_is_limited_per_56() {
        let mut rl = RateLimiter::new();
        let now = Instant::now();
        let s = settings(1, 0);
        assert_eq!(
            rl.check(&s, "2001:db8:0:1::1".parse().unwrap(), now),
            Verdict::Send
        );
        assert_eq!(
            rl.check(&s, "2001:db8:0:2::1".parse().unwrap(), now),
            Verdict::Drop
        );
        assert_eq!(
            rl.check(&s, "2001:db8:0:100::1".parse().unwrap(), now),
            Verdict::Send
        );
    }

    #[test]
    fn truncated_keeps_id_and_question() {
        let request = [
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 0, 0, 1, 0, 1,
        ];
        let reply = [0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        let tc = truncated(&request, &reply).unwrap();
        assert_eq!(&tc[..4], &[0x12, 0x34, 0x87, 0x00]);
        assert_eq!(&tc[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&tc[12..], &request[12..]);
        assert_eq!(truncated(&request[..15], &reply), None);
    }
}
