//! Longest-prefix match over client networks, built once, read lock-free.
//!
//! One hash map per prefix length that occurs, probed from the longest
//! length down. The sets routing uses (CIDR rules, latency prefixes) hold
//! few distinct lengths, so a lookup is a handful of hash probes whatever
//! the number of prefixes, and building is a plain insert per prefix.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The prefixes of one length, keyed by their masked bits.
type Level<K, N, T> = (u8, HashMap<K, (N, T)>);

#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    /// Levels by prefix length, longest first, per family.
    v4: Vec<Level<u32, Ipv4Net, T>>,
    v6: Vec<Level<u128, Ipv6Net, T>>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        PrefixMap {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

fn mask4(addr: Ipv4Addr, len: u8) -> u32 {
    let bits = u32::from(addr);
    if len == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(addr: Ipv6Addr, len: u8) -> u128 {
    let bits = u128::from(addr);
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(len)))
    }
}

impl<T> PrefixMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the value for `net` (host bits are ignored).
    pub fn insert(&mut self, net: IpNet, value: T) {
        match net.trunc() {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let slot = match self.v4.iter().position(|(l, _)| *l == len) {
                    Some(i) => i,
                    None => {
                        self.v4.push((len, HashMap::new()));
                        self.v4.sort_by_key(|level| std::cmp::Reverse(level.0));
                        self.v4
                            .iter()
                            .position(|(l, _)| *l == len)
                            .expect("just pushed")
                    }
                };
                self.v4[slot].1.insert(mask4(n.network(), len), (n, value));
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let slot = match self.v6.iter().position(|(l, _)| *l == len) {
                    Some(i) => i,
                    None => {
                        self.v6.push((len, HashMap::new()));
                        self.v6.sort_by_key(|level| std::cmp::Reverse(level.0));
                        self.v6
                            .iter()
                            .position(|(l, _)| *l == len)
                            .expect("just pushed")
                    }
                };
                self.v6[slot].1.insert(mask6(n.network(), len), (n, value));
            }
        }
    }

    /// The most specific prefix containing `addr` that is no longer than
    /// `max_len` (a client known only to a /24 cannot match a /28 rule).
    pub fn lookup(&self, addr: IpAddr, max_len: u8) -> Option<(IpNet, &T)> {
        match addr {
            IpAddr::V4(a) => self
                .v4
                .iter()
                .filter(|(len, _)| *len <= max_len)
                .find_map(|(len, map)| map.get(&mask4(a, *len)))
                .map(|(n, v)| (IpNet::V4(*n), v)),
            IpAddr::V6(a) => self
                .v6
                .iter()
                .filter(|(len, _)| *len <= max_len)
                .find_map(|(len, map)| map.get(&mask6(a, *len)))
                .map(|(n, v)| (IpNet::V6(*n), v)),
        }
    }

    /// The longest prefix length present for `addr`'s family.
    pub fn max_len(&self, addr: IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(_) => self.v4.first().map(|(l, _)| *l),
            IpAddr::V6(_) => self.v6.first().map(|(l, _)| *l),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &T)> {
        let v4 = self
            .v4
            .iter()
            .flat_map(|(_, m)| m.values().map(|(n, v)| (IpNet::V4(*n), v)));
        let v6 = self
            .v6
            .iter()
            .flat_map(|(_, m)| m.values().map(|(n, v)| (IpNet::V6(*n), v)));
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut map = PrefixMap::new();
        map.insert(net("10.0.0.0/8"), "eight");
        map.insert(net("10.1.0.0/16"), "sixteen");
        map.insert(net("2001:db8::/32"), "v6");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            map.lookup(ip("10.1.2.3"), 32).map(|x| *x.1),
            Some("sixteen")
        );
        assert_eq!(map.lookup(ip("10.2.2.3"), 32).map(|x| *x.1), Some("eight"));
        assert_eq!(map.lookup(ip("11.0.0.1"), 32), None);
        assert_eq!(
            map.lookup(ip("2001:db8:1::1"), 128).unwrap().0,
            net("2001:db8::/32")
        );
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn a_client_prefix_shorter_than_the_rule_does_not_match_it() {
        let mut map = PrefixMap::new();
        map.insert(net("10.0.0.0/8"), 1);
        map.insert(net("10.1.2.0/24"), 2);
        let ip = "10.1.2.0".parse().unwrap();
        assert_eq!(map.lookup(ip, 16).map(|x| *x.1), Some(1));
        assert_eq!(map.lookup(ip, 24).map(|x| *x.1), Some(2));
        assert_eq!(map.max_len(ip), Some(24));
    }

    #[test]
    fn zero_length_prefix_matches_everything_of_its_family() {
        let mut map = PrefixMap::new();
        map.insert(net("0.0.0.0/0"), 0);
        assert!(map.lookup("203.0.113.9".parse().unwrap(), 32).is_some());
        assert!(map.lookup("2001:db8::1".parse().unwrap(), 128).is_none());
    }
}
