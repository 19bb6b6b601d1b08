//! Longest-prefix match over client networks, built once, read lock-free.
//!
//! The sets routing uses (CIDR rules, a latency table of up to millions of
//! client prefixes) are rebuilt whole and never edited, so the map is
//! frozen at construction: per prefix length that occurs, one array of
//! (masked network, value) sorted by network. That costs the key and the
//! value per prefix and nothing else (a hash map per length cost several
//! times that in empty buckets and repeated networks). A lookup probes
//! each length from the longest down; within a length a small bucket
//! index on the leading bits narrows the binary search to a few
//! neighbours, and as each key sits beside its value a probe is two cache
//! lines however large the table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A network's address bits, ordered as the unsigned integer of the
/// family's width would be.
trait Key: Copy + Ord {
    const BITS: u32;
    fn masked(self, len: u8) -> Self;
    /// The leading `bits` bits (1..=BITS) as an index.
    fn leading(self, bits: u32) -> usize;
}

impl Key for u32 {
    const BITS: u32 = 32;
    fn masked(self, len: u8) -> Self {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - u32::from(len)))
        }
    }
    fn leading(self, bits: u32) -> usize {
        (self >> (32 - bits)) as usize
    }
}

/// An IPv6 network as two halves: compares as the `u128` would, but is
/// aligned to 8 bytes, so a key beside a small value is not padded to 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct V6Key {
    high: u64,
    low: u64,
}

impl From<u128> for V6Key {
    fn from(bits: u128) -> Self {
        V6Key {
            high: (bits >> 64) as u64,
            low: bits as u64,
        }
    }
}

impl From<V6Key> for u128 {
    fn from(key: V6Key) -> Self {
        u128::from(key.high) << 64 | u128::from(key.low)
    }
}

impl Key for V6Key {
    const BITS: u32 = 128;
    fn masked(self, len: u8) -> Self {
        if len == 0 {
            V6Key { high: 0, low: 0 }
        } else {
            V6Key::from(u128::from(self) & (u128::MAX << (128 - u32::from(len))))
        }
    }
    fn leading(self, bits: u32) -> usize {
        (u128::from(self) >> (128 - bits)) as usize
    }
}

/// Below this many prefixes a length is searched whole: the index would
/// cost more than it saves.
const INDEX_FROM: usize = 64;
/// Caps the index at 2^20 + 1 entries (4 MiB) for one length.
const MAX_INDEX_BITS: u32 = 20;

/// The prefixes of one length.
#[derive(Debug, Clone)]
struct Level<K, T> {
    len: u8,
    /// By masked network, ascending, no repeats.
    entries: Vec<(K, T)>,
    /// How many leading bits `index` buckets by; 0 when there is no index.
    bits: u32,
    /// `index[b]` is the first position in `entries` whose key's leading
    /// `bits` bits are `b` or more; `index[2^bits] == entries.len()`.
    index: Vec<u32>,
}

impl<K: Key, T> Level<K, T> {
    fn new(len: u8, entries: Vec<(K, T)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        // About one key per bucket, but never more buckets than the length
        // can tell apart (a /8 has only 256 networks).
        let bits = if entries.len() < INDEX_FROM {
            0
        } else {
            entries
                .len()
                .ilog2()
                .min(MAX_INDEX_BITS)
                .min(u32::from(len))
                .min(K::BITS)
        };
        let mut index = Vec::new();
        if bits > 0 {
            index.reserve_exact((1 << bits) + 1);
            let mut at = 0;
            for bucket in 0..=(1usize << bits) {
                while at < entries.len() && entries[at].0.leading(bits) < bucket {
                    at += 1;
                }
                index.push(u32::try_from(at).expect("fewer than 2^32 prefixes of one length"));
            }
        }
        Level {
            len,
            entries,
            bits,
            index,
        }
    }

    fn get(&self, addr: K) -> Option<&T> {
        let key = addr.masked(self.len);
        let (start, end) = if self.bits == 0 {
            (0, self.entries.len())
        } else {
            let bucket = key.leading(self.bits);
            (self.index[bucket] as usize, self.index[bucket + 1] as usize)
        };
        let within = &self.entries[start..end];
        within
            .binary_search_by(|(k, _)| k.cmp(&key))
            .ok()
            .map(|i| &within[i].1)
    }
}

/// One family's levels, longest prefix length first.
#[derive(Debug, Clone)]
struct Family<K, T> {
    levels: Vec<Level<K, T>>,
}

impl<K, T> Default for Family<K, T> {
    fn default() -> Self {
        Family { levels: Vec::new() }
    }
}

impl<K: Key, T> Family<K, T> {
    /// `entries` in insertion order; a later entry for the same network
    /// replaces an earlier one.
    fn build(entries: Vec<(u8, K, T)>) -> Self {
        let mut entries: Vec<(usize, (u8, K, T))> = entries.into_iter().enumerate().collect();
        // Longest first, then by key; among repeats the latest first, so
        // keeping the first of each run keeps the latest.
        entries.sort_unstable_by(|(ia, (la, ka, _)), (ib, (lb, kb, _))| {
            lb.cmp(la).then(ka.cmp(kb)).then(ib.cmp(ia))
        });
        entries.dedup_by(|(_, (la, ka, _)), (_, (lb, kb, _))| la == lb && ka == kb);
        let mut levels = Vec::new();
        let mut entries = entries.into_iter().map(|(_, e)| e).peekable();
        while let Some(&(len, _, _)) = entries.peek() {
            let mut level = Vec::new();
            while let Some((_, key, value)) = entries.next_if(|(l, _, _)| *l == len) {
                level.push((key, value));
            }
            level.shrink_to_fit();
            levels.push(Level::new(len, level));
        }
        Family { levels }
    }

    fn lookup(&self, addr: K, max_len: u8) -> Option<(u8, K, &T)> {
        self.levels
            .iter()
            .filter(|level| level.len <= max_len)
            .find_map(|level| {
                level
                    .get(addr)
                    .map(|v| (level.len, addr.masked(level.len), v))
            })
    }

    fn len(&self) -> usize {
        self.levels.iter().map(|l| l.entries.len()).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (u8, K, &T)> {
        self.levels
            .iter()
            .flat_map(|l| l.entries.iter().map(|(k, v)| (l.len, *k, v)))
    }
}

/// Client networks to values, for longest-prefix match. Build it with
/// `collect()` from `(network, value)` pairs; host bits are ignored and a
/// later pair for the same network replaces an earlier one.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    v4: Family<u32, T>,
    v6: Family<V6Key, T>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        PrefixMap {
            v4: Family::default(),
            v6: Family::default(),
        }
    }
}

impl<T> FromIterator<(IpNet, T)> for PrefixMap<T> {
    fn from_iter<I: IntoIterator<Item = (IpNet, T)>>(pairs: I) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (net, value) in pairs {
            match net.trunc() {
                IpNet::V4(n) => v4.push((n.prefix_len(), u32::from(n.network()), value)),
                IpNet::V6(n) => {
                    v6.push((n.prefix_len(), V6Key::from(u128::from(n.network())), value))
                }
            }
        }
        PrefixMap {
            v4: Family::build(v4),
            v6: Family::build(v6),
        }
    }
}

fn net4(len: u8, key: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(key), len).expect("a stored length is valid"))
}

fn net6(len: u8, key: V6Key) -> IpNet {
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(u128::from(key)), len).expect("a stored length is valid"))
}

impl<T> PrefixMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most specific prefix containing `addr` that is no longer than
    /// `max_len` (a client known only to a /24 cannot match a /28 rule).
    #[inline]
    pub fn lookup(&self, addr: IpAddr, max_len: u8) -> Option<(IpNet, &T)> {
        // An empty family (no rules, no measurements) answers inline.
        self.max_len(addr)?;
        self.lookup_in(addr, max_len)
    }

    #[inline(never)]
    fn lookup_in(&self, addr: IpAddr, max_len: u8) -> Option<(IpNet, &T)> {
        match addr {
            IpAddr::V4(a) => self
                .v4
                .lookup(u32::from(a), max_len)
                .map(|(len, key, v)| (net4(len, key), v)),
            IpAddr::V6(a) => self
                .v6
                .lookup(V6Key::from(u128::from(a)), max_len)
                .map(|(len, key, v)| (net6(len, key), v)),
        }
    }

    /// The longest prefix length present for `addr`'s family.
    #[inline]
    pub fn max_len(&self, addr: IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(_) => self.v4.levels.first().map(|l| l.len),
            IpAddr::V6(_) => self.v6.levels.first().map(|l| l.len),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every prefix with its value: IPv4 then IPv6, longest length first,
    /// ascending within a length.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &T)> {
        let v4 = self.v4.iter().map(|(len, key, v)| (net4(len, key), v));
        let v6 = self.v6.iter().map(|(len, key, v)| (net6(len, key), v));
        v4.chain(v6)
    }
}

/// Lengthens `len` until `addr/len` contains no more specific prefix of
/// `map` than `len`: addresses sharing the scope must share the decision.
#[inline]
pub fn narrow<T>(len: u8, addr: IpAddr, map: &PrefixMap<T>) -> u8 {
    // Inline up to here: the answer path mostly stops here (no prefix in
    // the family, or none longer than the scope).
    match map.max_len(addr) {
        Some(max) if max > len => narrow_around(len, max, addr, map),
        _ => len,
    }
}

#[inline(never)]
fn narrow_around<T>(len: u8, max: u8, addr: IpAddr, map: &PrefixMap<T>) -> u8 {
    if map.len() > 64 {
        // Many prefixes (a latency table): do not scan on the hot path;
        // the longest length present is a safe scope.
        return max;
    }
    let mut scope = len;
    let here = IpNet::new(addr, len).expect("length fits").trunc();
    for (net, _) in map.iter() {
        if net.prefix_len() > len && here.contains(&net.network()) && same_family(addr, net.addr())
        {
            // The widest prefix of addr that excludes `net`.
            let common = common_prefix(addr, net.network());
            scope = scope.max((common + 1).min(net.prefix_len()));
        }
    }
    scope
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn common_prefix(a: IpAddr, b: IpAddr) -> u8 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() as u8,
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() as u8,
        _ => 0,
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
        let map: PrefixMap<_> = [
            (net("10.0.0.0/8"), "eight"),
            (net("10.1.0.0/16"), "sixteen"),
            (net("2001:db8::/32"), "v6"),
        ]
        .into_iter()
        .collect();
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
        let map: PrefixMap<_> = [(net("10.0.0.0/8"), 1), (net("10.1.2.0/24"), 2)]
            .into_iter()
            .collect();
        let ip = "10.1.2.0".parse().unwrap();
        assert_eq!(map.lookup(ip, 16).map(|x| *x.1), Some(1));
        assert_eq!(map.lookup(ip, 24).map(|x| *x.1), Some(2));
        assert_eq!(map.max_len(ip), Some(24));
    }

    #[test]
    fn zero_length_prefix_matches_everything_of_its_family() {
        let map: PrefixMap<_> = [(net("0.0.0.0/0"), 0)].into_iter().collect();
        assert!(map.lookup("203.0.113.9".parse().unwrap(), 32).is_some());
        assert!(map.lookup("2001:db8::1".parse().unwrap(), 128).is_none());
        let map: PrefixMap<_> = [(net("::/0"), 0), (net("::/128"), 1)].into_iter().collect();
        assert_eq!(
            map.lookup("2001:db8::1".parse().unwrap(), 128)
                .map(|x| *x.1),
            Some(0)
        );
        assert_eq!(
            map.lookup("::".parse().unwrap(), 128).map(|x| *x.1),
            Some(1)
        );
        assert_eq!(
            map.lookup("::".parse().unwrap(), 127).map(|x| *x.1),
            Some(0)
        );
    }

    #[test]
    fn a_later_pair_replaces_an_earlier_one_and_host_bits_are_ignored() {
        let map: PrefixMap<_> = [
            (net("10.1.2.3/24"), 1),
            (net("10.1.2.0/24"), 2),
            (net("2001:db8::1/64"), 3),
            (net("2001:db8::/64"), 4),
            (net("2001:db8::2/64"), 5),
        ]
        .into_iter()
        .collect();
        assert_eq!(map.len(), 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            map.lookup(ip("10.1.2.200"), 32),
            Some((net("10.1.2.0/24"), &2))
        );
        assert_eq!(
            map.lookup(ip("2001:db8::ff"), 128),
            Some((net("2001:db8::/64"), &5))
        );
    }

    use crate::test_rng::Rng;

    /// The longest match by scanning every prefix: obviously right, slow.
    fn naive(prefixes: &[(IpNet, u32)], addr: IpAddr, max_len: u8) -> Option<(IpNet, u32)> {
        prefixes
            .iter()
            .filter(|(n, _)| n.prefix_len() <= max_len && n.contains(&addr))
            // Of equal lengths `max_by_key` keeps the last: the last pair
            // for a network wins, as in the map.
            .max_by_key(|(n, _)| n.prefix_len())
            .copied()
    }

    /// Random prefixes clustered under a few parents so that lengths nest
    /// and lookups hit, miss and fall back to shorter lengths; enough of
    /// one length that its bucket index is built.
    fn random_prefixes(rng: &mut Rng, v6: bool, count: usize) -> Vec<(IpNet, u32)> {
        let lens: &[u8] = if v6 {
            &[0, 16, 32, 48, 56, 64, 127, 128]
        } else {
            &[0, 8, 16, 20, 24, 31, 32]
        };
        let parents: Vec<u128> = (0..4).map(|_| u128::from(rng.next()) << 64).collect();
        (0..count)
            .map(|i| {
                let parent = parents[rng.below(4) as usize];
                // Most prefixes share one length so one level is large.
                let len = if rng.below(3) == 0 {
                    lens[rng.below(lens.len() as u64) as usize]
                } else {
                    lens[lens.len() - 3]
                };
                let noise = u128::from(rng.next()) << 64 | u128::from(rng.next());
                let bits = if v6 {
                    parent ^ (noise >> 20)
                } else {
                    (parent ^ (noise >> 12)) >> 96
                };
                let addr = if v6 {
                    IpAddr::V6(Ipv6Addr::from(bits))
                } else {
                    IpAddr::V4(Ipv4Addr::from(bits as u32))
                };
                (IpNet::new(addr, len).unwrap().trunc(), i as u32)
            })
            .collect()
    }

    fn probe(rng: &mut Rng, prefixes: &[(IpNet, u32)]) -> IpAddr {
        // Mostly inside a stored prefix, with random host bits, so that
        // longer prefixes near it are tried and missed.
        let (net, _) = prefixes[rng.below(prefixes.len() as u64) as usize];
        match net {
            IpNet::V4(n) => {
                let host = (rng.next() as u32) & !u32::from(n.netmask());
                let flip = if rng.below(4) == 0 {
                    1u32 << rng.below(32)
                } else {
                    0
                };
                IpAddr::V4(Ipv4Addr::from((u32::from(n.network()) | host) ^ flip))
            }
            IpNet::V6(n) => {
                let random = u128::from(rng.next()) << 64 | u128::from(rng.next());
                let host = random & !u128::from(n.netmask());
                let flip = if rng.below(4) == 0 {
                    1u128 << rng.below(128)
                } else {
                    0
                };
                IpAddr::V6(Ipv6Addr::from((u128::from(n.network()) | host) ^ flip))
            }
        }
    }

    #[test]
    fn matches_a_naive_scan_over_random_prefixes_of_both_families() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..6 {
            let count = [3, 40, 300, 1500, 1500, 1500][round];
            let mut prefixes = random_prefixes(&mut rng, false, count);
            prefixes.extend(random_prefixes(&mut rng, true, count));
            let map: PrefixMap<u32> = prefixes.iter().copied().collect();
            for _ in 0..3000 {
                let addr = probe(&mut rng, &prefixes);
                let max_len = match addr {
                    IpAddr::V4(_) => [32, 24, 16, 0][rng.below(4) as usize],
                    IpAddr::V6(_) => [128, 64, 56, 0][rng.below(4) as usize],
                };
                let got = map.lookup(addr, max_len).map(|(n, v)| (n, *v));
                assert_eq!(got, naive(&prefixes, addr, max_len), "{addr}/{max_len}");
            }
        }
    }

    #[test]
    fn len_max_len_and_iter_agree_with_the_distinct_networks() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut prefixes = random_prefixes(&mut rng, false, 2000);
        prefixes.extend(random_prefixes(&mut rng, true, 2000));
        let map: PrefixMap<u32> = prefixes.iter().copied().collect();
        let mut want = std::collections::HashMap::new();
        for (n, v) in &prefixes {
            want.insert(*n, *v);
        }
        assert_eq!(map.len(), want.len());
        let got: std::collections::HashMap<IpNet, u32> = map.iter().map(|(n, v)| (n, *v)).collect();
        assert_eq!(got, want);
        assert_eq!(map.iter().count(), want.len(), "iter yields no repeats");
        for (probe, family_v6) in [("192.0.2.1", false), ("2001:db8::1", true)] {
            let longest = want
                .keys()
                .filter(|n| matches!(n, IpNet::V6(_)) == family_v6)
                .map(IpNet::prefix_len)
                .max();
            assert_eq!(map.max_len(probe.parse().unwrap()), longest);
        }
        let empty = PrefixMap::<u32>::new();
        assert!(empty.is_empty());
        assert_eq!(empty.max_len("192.0.2.1".parse().unwrap()), None);
        assert_eq!(empty.iter().count(), 0);
    }
}
