//! DNS Cookies (RFC 7873) with the interoperable server cookie of RFC 9018.
//!
//! A client that sends a cookie gets our server cookie back; when it
//! returns a server cookie we minted recently for its address, it has shown
//! it can receive our replies at that address, so it is not spoofing, and
//! response rate limiting leaves it alone. The server cookie is
//! `version 1 | reserved | timestamp | SipHash-2-4(client cookie, version,
//! reserved, timestamp, client address)` under a 16-byte secret. Nodes that
//! share `server.cookie_secret` accept each other's cookies.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use siphasher::sip::SipHasher24;

/// RFC 9018 section 4.3: accept cookies minted up to an hour ago and up to
/// five minutes in the future (clock skew between nodes).
const MAX_AGE_SECS: u32 = 3600;
const MAX_FUTURE_SECS: u32 = 300;
pub const CLIENT_COOKIE_LEN: usize = 8;
const SERVER_COOKIE_LEN: usize = 16;

/// What the COOKIE option of a query says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieCheck {
    /// The query has no cookie.
    Absent,
    /// A client cookie, with no server cookie or one we cannot vouch for.
    ClientOnly([u8; CLIENT_COOKIE_LEN]),
    /// A server cookie we minted for this client, recently.
    Valid([u8; CLIENT_COOKIE_LEN]),
    /// Wrong length: FORMERR (RFC 7873 section 5.2.2).
    Malformed,
}

impl CookieCheck {
    pub fn is_valid(self) -> bool {
        matches!(self, CookieCheck::Valid(_))
    }

    pub fn client_cookie(self) -> Option<[u8; CLIENT_COOKIE_LEN]> {
        match self {
            CookieCheck::ClientOnly(c) | CookieCheck::Valid(c) => Some(c),
            _ => None,
        }
    }
}

/// The secret cookies are minted under: the configured one (shared by
/// every node of the domain), else this process's own.
pub fn secret(configured: Option<[u8; 16]>) -> [u8; 16] {
    configured.unwrap_or_else(process_secret)
}

/// A random secret for this process, used when the config sets none.
pub fn process_secret() -> [u8; 16] {
    static SECRET: OnceLock<[u8; 16]> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).expect("the OS provides randomness");
        secret
    })
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn hash(secret: &[u8; 16], client: &[u8; 8], head: &[u8; 8], addr: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(head);
    match addr {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.finish().to_be_bytes()
}

/// Checks a COOKIE option's payload from `addr`.
pub fn check(option: &[u8], addr: IpAddr, secret: &[u8; 16]) -> CookieCheck {
    check_at(option, addr, secret, now_secs())
}

fn check_at(option: &[u8], addr: IpAddr, secret: &[u8; 16], now: u32) -> CookieCheck {
    // A client cookie alone, or with a server cookie of 8 to 32 bytes.
    if option.len() != CLIENT_COOKIE_LEN && !(16..=40).contains(&option.len()) {
        return CookieCheck::Malformed;
    }
    let mut client = [0u8; CLIENT_COOKIE_LEN];
    client.copy_from_slice(&option[..CLIENT_COOKIE_LEN]);
    let server = &option[CLIENT_COOKIE_LEN..];
    if server.len() != SERVER_COOKIE_LEN || server[0] != 1 {
        return CookieCheck::ClientOnly(client);
    }
    let mut head = [0u8; 8];
    head.copy_from_slice(&server[..8]);
    let minted = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let fresh =
        now.wrapping_sub(minted) <= MAX_AGE_SECS || minted.wrapping_sub(now) <= MAX_FUTURE_SECS;
    if fresh && hash(secret, &client, &head, addr) == server[8..] {
        CookieCheck::Valid(client)
    } else {
        CookieCheck::ClientOnly(client)
    }
}

/// The COOKIE option payload for a reply: the client cookie and a fresh
/// server cookie for `addr`.
pub fn reply(client: [u8; CLIENT_COOKIE_LEN], addr: IpAddr, secret: &[u8; 16]) -> [u8; REPLY_LEN] {
    reply_at(client, addr, secret, now_secs())
}

/// Length of the COOKIE option payload in replies.
pub const REPLY_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;

fn reply_at(
    client: [u8; CLIENT_COOKIE_LEN],
    addr: IpAddr,
    secret: &[u8; 16],
    now: u32,
) -> [u8; REPLY_LEN] {
    let mut head = [1u8, 0, 0, 0, 0, 0, 0, 0];
    head[4..].copy_from_slice(&now.to_be_bytes());
    let mut out = [0u8; REPLY_LEN];
    out[..8].copy_from_slice(&client);
    out[8..16].copy_from_slice(&head);
    out[16..].copy_from_slice(&hash(secret, &client, &head, addr));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 16] = *b"0123456789abcdef";
    const CLIENT: [u8; 8] = *b"clientck";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_minted_cookie_is_valid_for_its_client_only() {
        let now = 1_800_000_000;
        let option = reply_at(CLIENT, ip("192.0.2.7"), &SECRET, now);
        assert_eq!(option.len(), 24);
        assert_eq!(
            check_at(&option, ip("192.0.2.7"), &SECRET, now + 10),
            CookieCheck::Valid(CLIENT)
        );
        assert_eq!(
            check_at(&option, ip("192.0.2.8"), &SECRET, now),
            CookieCheck::ClientOnly(CLIENT)
        );
        let other = *b"fedcba9876543210";
        assert_eq!(
            check_at(&option, ip("192.0.2.7"), &other, now),
            CookieCheck::ClientOnly(CLIENT)
        );
    }

    #[test]
    fn old_cookies_expire() {
        let now = 1_800_000_000;
        let option = reply_at(CLIENT, ip("2001:db8::1"), &SECRET, now);
        assert!(check_at(&option, ip("2001:db8::1"), &SECRET, now + 3600).is_valid());
        assert!(!check_at(&option, ip("2001:db8::1"), &SECRET, now + 3601).is_valid());
        assert!(check_at(&option, ip("2001:db8::1"), &SECRET, now - 300).is_valid());
        assert!(!check_at(&option, ip("2001:db8::1"), &SECRET, now - 301).is_valid());
    }

    #[test]
    fn lengths_are_checked() {
        let addr = ip("192.0.2.7");
        assert_eq!(
            check(&CLIENT, addr, &SECRET),
            CookieCheck::ClientOnly(CLIENT)
        );
        assert_eq!(check(&[0; 7], addr, &SECRET), CookieCheck::Malformed);
        assert_eq!(check(&[0; 12], addr, &SECRET), CookieCheck::Malformed);
        assert_eq!(check(&[0; 41], addr, &SECRET), CookieCheck::Malformed);
        // A server cookie of another format is not ours: client only.
        assert_eq!(
            check(&[7; 24], addr, &SECRET),
            CookieCheck::ClientOnly([7; 8])
        );
    }
}
