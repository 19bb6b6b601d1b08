//! Routing decisions remembered per client network, per answering thread.
//!
//! Most queries come from a few thousand resolver networks, and within a
//! snapshot the same (service, network) always gets the same decision, so
//! computing it once per network and snapshot and reusing it takes GeoIP,
//! rule and latency lookups and their allocations off nearly every query.
//!
//! A decision is reused only where it provably holds: its ECS scope says
//! every address in `addr/scope` gets the same decision (that is what
//! [`super::route`] narrows the scope for), so a decision whose scope is no
//! longer than the memo's network length holds for the whole network. A
//! client whose source prefix is that short or shorter is fully described
//! by the key. Anything else is computed afresh and not kept.
//!
//! Each answering thread owns one memo (no sharing, no locks). It forgets
//! everything when the snapshot changes (in one step: slots carry the
//! snapshot's epoch), and its two tables hold at most [`NETWORK_SLOTS`]
//! and [`WIDE_SLOTS`] keys: slots come in sets of [`WAYS`], and a new key
//! whose set is full replaces one of the set's, so the bound holds
//! without ever starting over. A slot names its decision in [`Decisions`], where each distinct
//! decision is kept once (a snapshot makes few: zone orders times
//! scopes); should [`DECISIONS`] of them ever be kept, the memo starts
//! over as if the snapshot had changed.
//!
//! The tables are sized for the cache, not only for the count: a slot is
//! sixteen bytes and a set one cache line, so both tables of a thread
//! take 1.25 MiB. A flood of new networks touches a set in each per query;
//! when sets were twice as wide and each slot had its own 48-byte
//! decision beside it (11 MiB a thread), those lines came from beyond
//! the core's cache and the flood's CPU per answer rose by a fifth
//! against gdnsd while its instructions fell (README, Benchmarks).
//!
//! A miss must be cheap too (a flood of random client subnets misses on
//! every query): it decides with [`route_in`] in the memo's own
//! [`Workspace`], which reuses its buffers and the distances from each
//! GeoIP record's location to the zones, and keeps up to
//! [`INLINE_ENDPOINTS`] chosen endpoints inline, so that once the tables
//! have grown a miss allocates nothing.
//! Keys come from the network (ECS subnets), so the set a key lands in
//! comes from a randomly seeded hash: nobody outside can aim many keys at
//! one set, and one set thrashing costs only its own [`WAYS`] decisions.
//!
//! A flood of random subnets (every query a network the memo has not seen)
//! would make every query a miss. But most decisions hold far wider than a
//! /24: a country's addresses all rank the zones alike, and routing says so
//! with a short scope. A decision whose scope is no longer than
//! [`V4_WIDE_LEN`] (or [`V6_WIDE_LEN`]) is kept for the wide network too,
//! in a table of its own (a flood's networks would push it out of theirs),
//! and a network the memo has not seen is looked for there before
//! anything is computed: a new /24 inside a known uniform /16 costs a
//! second lookup, not a decision.
//!
//! The table is a plain array rather than a general hash map because a hit
//! is on every geo answer's path: one multiply finds the set, and at most
//! four key compares find the decision.

use std::hash::BuildHasher;
use std::net::IpAddr;

use super::{Client, Router, Workspace, route_in};
use crate::config::Config;
use crate::health::HealthView;

/// Networks are keyed at these lengths: a /24 or /56 is what resolvers send
/// as ECS in practice and what the weighted policy hashes on.
pub const V4_NETWORK_LEN: u8 = 24;
pub const V6_NETWORK_LEN: u8 = 56;
/// The wide networks a decision is also kept for when its scope allows:
/// an IPv4 /16, an IPv6 /32 (a typical provider allocation).
pub const V4_WIDE_LEN: u8 = 16;
pub const V6_WIDE_LEN: u8 = 32;
/// Keys kept at most: per client network, and per wide network. The
/// networks' table is the smaller: a flood fills it with networks never
/// asked again, and its sets must stay in the core's cache beside the
/// kernel's socket buffers, while the wide table is what answers a
/// flood's networks (see the module's docs).
const NETWORK_SLOTS: usize = 1 << 14;
const WIDE_SLOTS: usize = 1 << 16;
/// Slots per set: a key is looked for in its set's slots only.
const WAYS: usize = 4;
const _: () = assert!(NETWORK_SLOTS.is_multiple_of(WAYS) && WIDE_SLOTS.is_multiple_of(WAYS));
/// Distinct decisions kept per thread at most (a slot names one in 16
/// bits); more, and the memo starts over.
const DECISIONS: usize = 1 << 16;

/// Services a memo key can tell apart: the service index has 24 bits of
/// [`MemoKey::rest`]. A config with more is refused (`config::validate`);
/// it would need well over a hundred GiB anyway.
pub const MAX_SERVICES: usize = 1 << 24;

/// (service, client network, family, source prefix) in twelve bytes, so
/// a slot is sixteen and a set of four is one cache line: a flood of new
/// networks touches two sets per query (the network's and the wide
/// network's), and each is one line to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MemoKey {
    /// The network's bits (a /24's 24, a /56's 56), with the family in
    /// bit 62 and the wide table's mark in bit 63.
    network: u64,
    /// The service's index above the source prefix.
    rest: u32,
}

const V6_BIT: u64 = 1 << 62;
const WIDE_BIT: u64 = 1 << 63;

#[inline(always)]
fn memo_key(service: usize, client: Client) -> (MemoKey, u8) {
    network_key(service, client, V4_NETWORK_LEN, V6_NETWORK_LEN)
}

/// The key of `client`'s wide network, which holds decisions whose scope
/// is no longer than it.
#[inline(always)]
fn wide_key(service: usize, client: Client) -> (MemoKey, u8) {
    let (key, len) = network_key(service, client, V4_WIDE_LEN, V6_WIDE_LEN);
    (
        MemoKey {
            network: key.network | WIDE_BIT,
            ..key
        },
        len,
    )
}

/// (service, the client's network at `v4_len` or `v6_len`, family, source
/// prefix) as a key, with the network's length.
#[inline(always)]
fn network_key(service: usize, client: Client, v4_len: u8, v6_len: u8) -> (MemoKey, u8) {
    debug_assert!(service < MAX_SERVICES, "the config checks the count");
    let (network, len) = match client.addr {
        IpAddr::V4(a) => (u64::from(u32::from(a) >> (32 - v4_len)), v4_len),
        IpAddr::V6(a) => ((u128::from(a) >> (128 - v6_len)) as u64 | V6_BIT, v6_len),
    };
    let rest = (service as u32) << 8 | u32::from(client.source_prefix);
    (MemoKey { network, rest }, len)
}

/// Chosen endpoints kept without a heap allocation; more (multi-value
/// answers, the `all` policy, fail-open over many zones) go to the heap.
pub const INLINE_ENDPOINTS: usize = 4;

/// Endpoint indices to answer with, preferred first: a slice, held inline
/// when short.
#[derive(Debug, Clone)]
pub enum Chosen {
    Inline {
        len: u8,
        ids: [usize; INLINE_ENDPOINTS],
    },
    Spilled(Box<[usize]>),
}

impl Chosen {
    fn from_slice(ids: &[usize]) -> Chosen {
        if ids.len() <= INLINE_ENDPOINTS {
            let mut inline = [0; INLINE_ENDPOINTS];
            inline[..ids.len()].copy_from_slice(ids);
            Chosen::Inline {
                len: ids.len() as u8,
                ids: inline,
            }
        } else {
            Chosen::Spilled(ids.into())
        }
    }
}

impl Default for Chosen {
    fn default() -> Chosen {
        Chosen::from_slice(&[])
    }
}

impl std::ops::Deref for Chosen {
    type Target = [usize];

    #[inline]
    fn deref(&self) -> &[usize] {
        match self {
            Chosen::Inline { len, ids } => &ids[..usize::from(*len)],
            Chosen::Spilled(ids) => ids,
        }
    }
}

impl PartialEq for Chosen {
    fn eq(&self, other: &Chosen) -> bool {
        **self == **other
    }
}

impl Eq for Chosen {}

/// What the answer path needs of a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// Endpoint indices to answer with, preferred first.
    pub endpoints: Chosen,
    /// No endpoint was serving: the all-down rule applies.
    pub is_all_down: bool,
    /// ECS scope prefix length, already capped at the client's source prefix.
    pub scope: u8,
}

/// Starts fetching the cache line holding `line` and returns at once; a
/// hint, so on targets without one it does nothing.
#[inline(always)]
fn prefetch_line<T>(line: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing the program sees and cannot
        // fault; `line` is a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(line).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// One slot: a key and where its decision is, valid in one epoch.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    /// [`MemoKey::network`].
    network: u64,
    /// [`MemoKey::rest`] in the high half; below it the memo's epoch when
    /// the slot was filled (0 never is one, so a zeroed slot is empty),
    /// then the index of the decision in [`Decisions::kept`]. The key's
    /// rest and the epoch are compared as one word.
    stamp: u64,
}

impl Slot {
    /// The stamp's key-and-epoch part, as [`Slot::matches`] compares it.
    #[inline(always)]
    fn check(rest: u32, epoch: u16) -> u64 {
        u64::from(rest) << 16 | u64::from(epoch)
    }

    #[inline(always)]
    fn matches(&self, network: u64, check: u64) -> bool {
        self.network == network && self.stamp >> 16 == check
    }

    fn epoch(&self) -> u16 {
        (self.stamp >> 16) as u16
    }

    fn decision(&self) -> usize {
        usize::from(self.stamp as u16)
    }
}

/// A set's slots, in one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Set([Slot; WAYS]);

/// Keys to decisions: `SLOTS` slots, `WAYS` to a set, each naming a
/// decision in the memo's [`Decisions`].
#[derive(Debug)]
struct Table<const SLOTS: usize> {
    /// Zeroed (empty) pages until used.
    sets: Box<[Set]>,
    /// Seed and (odd) multiplier of the hash that picks a key's set.
    seed: u64,
    mix: u64,
    /// Turns for replacing within a full set.
    turn: usize,
}

impl<const SLOTS: usize> Table<SLOTS> {
    fn new() -> Table<SLOTS> {
        let random = foldhash::fast::RandomState::default();
        Table {
            sets: vec![Set::default(); SLOTS / WAYS].into_boxed_slice(),
            seed: random.hash_one(0u64),
            mix: random.hash_one(1u64) | 1,
            turn: 0,
        }
    }

    /// The set `key` belongs to: a multiply of the seeded key's two
    /// parts, folded, so every bit of either moves the set.
    #[inline(always)]
    fn set_of(&self, key: MemoKey) -> usize {
        let m =
            u128::from(key.network ^ self.seed) * u128::from(u64::from(key.rest) << 1 ^ self.mix);
        let h = (m as u64) ^ ((m >> 64) as u64);
        h as usize & (SLOTS / WAYS - 1)
    }

    /// Asks the CPU to bring `key`'s set into its cache without waiting
    /// for it.
    #[inline(always)]
    fn prefetch(&self, key: MemoKey) {
        if let Some(set) = self.sets.get(self.set_of(key)) {
            prefetch_line(set);
        }
    }

    /// The decision kept for `key` (in set `set`) in `epoch`.
    #[inline(always)]
    fn find(&self, key: MemoKey, set: usize, epoch: u16) -> Option<usize> {
        let check = Slot::check(key.rest, epoch);
        self.sets[set]
            .0
            .iter()
            .find(|s| s.matches(key.network, check))
            .map(Slot::decision)
    }

    /// Keeps decision `at` for `key` in an empty slot of its set, else in
    /// one of the set's four in turn.
    fn keep(&mut self, key: MemoKey, set: usize, epoch: u16, at: u16) {
        let ways = &mut self.sets[set].0;
        let way = match ways.iter().position(|s| s.epoch() != epoch) {
            Some(way) => way,
            None => {
                self.turn = self.turn.wrapping_add(1);
                self.turn % WAYS
            }
        };
        ways[way] = Slot {
            network: key.network,
            stamp: Slot::check(key.rest, epoch) << 16 | u64::from(at),
        };
    }

    /// Empties the table for a new epoch: nothing to do but after a wrap
    /// (`epoch` 1), when the slots are zeroed, or slots 2^16 epochs old
    /// would look current.
    fn clear(&mut self, epoch: u16) {
        if epoch == 1 {
            self.sets.fill(Set::default());
        }
    }
}

/// The distinct decisions the tables' slots name, each kept once: a
/// country's networks, thousands of keys, mostly share a handful of
/// decisions, so the tables are slots alone (a flood's query touches two
/// sets and a decision that is hot anyway), and a decision kept for a
/// network and for its wide network is kept once.
#[derive(Debug)]
struct Decisions {
    /// Never changed once kept, until the memo starts over.
    kept: Vec<Remembered>,
    /// Where a decision was last kept, by its [`Decisions::hash`]: a
    /// decision made again is found here unless another with the same
    /// hash came since (then it is kept twice, which is harmless). An
    /// entry may be stale; the comparison tells.
    recent: Box<[u16; RECENT]>,
    /// [`DECISIONS`], but in tests.
    limit: usize,
}

/// Entries of [`Decisions::recent`]: a few times the distinct decisions
/// a snapshot usually makes (zone orders times scopes).
const RECENT: usize = 1 << 10;

impl Decisions {
    fn new() -> Decisions {
        Decisions {
            // Full size from the start, so keeping never allocates; pages
            // are touched only as decisions are kept.
            kept: Vec::with_capacity(DECISIONS),
            recent: Box::new([0; RECENT]),
            limit: DECISIONS,
        }
    }

    /// Which entry of `recent` a decision goes to: a multiply per
    /// endpoint, no more (it runs on every decision made).
    fn hash(remembered: &Remembered) -> usize {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = u64::from(remembered.scope) << 1 | u64::from(remembered.is_all_down);
        for &e in remembered.endpoints.iter() {
            h = (h ^ e as u64).wrapping_mul(K);
        }
        (h.wrapping_mul(K) >> (64 - RECENT.trailing_zeros())) as usize
    }

    /// Where `remembered` is kept, kept now if it was not found; given
    /// back when there is no room (the memo starts over).
    fn keep(&mut self, remembered: Remembered) -> Result<u16, Remembered> {
        let entry = &mut self.recent[Self::hash(&remembered)];
        if self.kept.get(usize::from(*entry)) == Some(&remembered) {
            return Ok(*entry);
        }
        if self.kept.len() == self.limit {
            return Err(remembered);
        }
        let at = self.kept.len() as u16;
        self.kept.push(remembered);
        *entry = at;
        Ok(at)
    }

    /// Forgets every decision; `recent`'s entries are then stale, and
    /// the comparison in `keep` tells.
    fn clear(&mut self) {
        self.kept.clear();
    }
}

/// One thread's remembered decisions for one snapshot.
#[derive(Debug)]
pub struct DecisionMemo {
    /// The snapshot the decisions were made in (`Snapshot::id`).
    snapshot: u64,
    /// Bumped when the snapshot changes: every slot of an older epoch is
    /// empty from then on.
    epoch: u16,
    /// Decisions per client network (/24, /56).
    networks: Table<NETWORK_SLOTS>,
    /// Decisions per wide network (/16, /32), for those that hold for it;
    /// a table of their own, so a flood's networks never push them out.
    wide: Table<WIDE_SLOTS>,
    /// What the two tables' slots name.
    decisions: Decisions,
    /// Holds a decision that may not be kept, for the caller to read.
    scratch: Remembered,
    /// Buffers and per-record distances for misses; they belong to
    /// `snapshot` like the decisions.
    workspace: Workspace,
    hits: u64,
    misses: u64,
    /// The service of the last decision: what [`Self::prefetch`] expects
    /// the next query to ask for.
    last_service: usize,
    /// Decisions not found in the networks' table since
    /// [`Self::take_network_misses`] was last called.
    network_misses: usize,
}

impl Default for DecisionMemo {
    fn default() -> DecisionMemo {
        DecisionMemo::new()
    }
}

impl DecisionMemo {
    /// An empty memo whose workspace remembers distances per GeoIP
    /// record: a miss computes them once per record, not per client.
    pub fn new() -> DecisionMemo {
        DecisionMemo {
            snapshot: 0,
            epoch: 1,
            networks: Table::new(),
            wide: Table::new(),
            decisions: Decisions::new(),
            scratch: Remembered::default(),
            workspace: Workspace::remembering_places(),
            hits: 0,
            misses: 0,
            last_service: 0,
            network_misses: 0,
        }
    }

    /// Forgets every decision: a new snapshot decides differently.
    fn forget(&mut self, snapshot: u64) {
        self.workspace.forget_places();
        self.snapshot = snapshot;
        self.start_over();
    }

    /// Empties both tables (in one step: a new epoch) and the decisions.
    fn start_over(&mut self) {
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.networks.clear(self.epoch);
        self.wide.clear(self.epoch);
        self.decisions.clear();
    }

    /// The decision for `client` asking for `service` under `snapshot`:
    /// remembered when it holds for the client's whole network, else
    /// computed afresh. The hit is inlined into the caller; everything
    /// else is [`Self::decide_afresh`].
    #[inline(always)]
    pub fn decide(
        &mut self,
        snapshot: u64,
        config: &Config,
        health: &HealthView,
        router: &Router,
        service: usize,
        client: Client,
    ) -> &Remembered {
        self.last_service = service;
        let (key, len) = memo_key(service, client);
        let set = self.networks.set_of(key);
        if snapshot == self.snapshot
            && let Some(at) = self.networks.find(key, set, self.epoch)
        {
            self.hits += 1;
            return &self.decisions.kept[at];
        }
        self.decide_afresh(
            snapshot,
            (config, health, router),
            (service, client),
            (key, len, set),
        )
    }

    /// A miss: the snapshot changed, or the network is new to it. The
    /// wide network may know; else the decision is made, and kept for the
    /// network and the wide network as its scope allows.
    #[inline(never)]
    fn decide_afresh(
        &mut self,
        snapshot: u64,
        (config, health, router): (&Config, &HealthView, &Router),
        (service, client): (usize, Client),
        (key, len, set): (MemoKey, u8, usize),
    ) -> &Remembered {
        self.network_misses += 1;
        if snapshot != self.snapshot {
            self.forget(snapshot);
        }
        let epoch = self.epoch;
        let (wide, wide_len) = wide_key(service, client);
        let wide_set = self.wide.set_of(wide);
        if let Some(at) = self.wide.find(wide, wide_set, epoch) {
            self.hits += 1;
            return &self.decisions.kept[at];
        }
        self.misses += 1;
        let (is_all_down, scope) =
            route_in(config, health, router, service, client, &mut self.workspace);
        let remembered = Remembered {
            endpoints: Chosen::from_slice(&self.workspace.chosen),
            is_all_down,
            scope,
        };
        // A source prefix within the key's length means the key is the
        // client; otherwise the scope must cover the network.
        if client.source_prefix > len && remembered.scope > len {
            self.scratch = remembered;
            return &self.scratch;
        }
        let scope = remembered.scope;
        let at = match self.decisions.keep(remembered) {
            Ok(at) => at,
            Err(remembered) => {
                // As many distinct decisions as a slot can name: begin
                // again, as a new snapshot would.
                self.start_over();
                self.decisions
                    .keep(remembered)
                    .expect("room after starting over")
            }
        };
        let epoch = self.epoch;
        if scope <= wide_len {
            // Kept for the wide network too: its other networks' first
            // queries are answered without deciding.
            self.wide.keep(wide, wide_set, epoch, at);
        }
        self.networks.keep(key, set, epoch, at);
        &self.decisions.kept[usize::from(at)]
    }

    /// Starts fetching the sets [`Self::decide`] will read for `client` if
    /// it asks for the service last decided for, and returns at once.
    ///
    /// A flood of new networks finds its sets out of the core's cache:
    /// the tables are larger than what stays there beside the kernel's
    /// socket buffers, and each new network lands in a random set. Called
    /// for every query of a batch before the first is answered, the
    /// fetches overlap each other and the answers instead of stalling
    /// each answer in turn. A wrong guess (the query asks for another
    /// service) costs a line fetched for nothing, never a wrong decision:
    /// nothing is read.
    #[inline(always)]
    pub fn prefetch(&self, client: Client) {
        self.networks
            .prefetch(memo_key(self.last_service, client).0);
        self.wide.prefetch(wide_key(self.last_service, client).0);
    }

    /// How many decisions were not in the networks' table since the last
    /// call: the answer loop's measure of whether [`Self::prefetch`] is
    /// worth its instructions (about 70 a query with the guess at its
    /// client, counted while draining full batches) for the next batch. When
    /// the networks' table answers, its sets are the few in use and
    /// already in cache.
    pub fn take_network_misses(&mut self) -> usize {
        std::mem::take(&mut self.network_misses)
    }

    /// Decisions reused (from either table) and decisions computed, since
    /// the thread started.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Of the decisions computed, those whose choice a GeoIP record had
    /// already settled (see `routing::settled`): a walk of the tree and
    /// one lookup each.
    pub fn settled(&self) -> u64 {
        self.workspace.settled.recalled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::route;
    use crate::routing::tests::{client, config, decides_as_route, health, router, service, zones};

    #[test]
    fn a_default_memo_remembers_distances_per_record_as_a_new_one_does() {
        // A memo that forgets them computes great circles on every miss:
        // the flood's cost doubles.
        assert!(DecisionMemo::default().workspace.remembers_places());
        assert!(DecisionMemo::new().workspace.remembers_places());
    }

    #[test]
    fn remembered_decisions_equal_fresh_ones() {
        // Weighted and rule-split decisions, from hosts and from subnets.
        let rules = "[[cidr_rules]]\nnetworks = [\"10.1.1.128/25\"]\nzones = [\"c\"]\n";
        for policy in ["weighted", "nearest"] {
            let c = config(&service(policy, rules, [5, 3, 2]));
            let (r, h) = (router(&c), health(&c, &[]));
            let mut memo = DecisionMemo::new();
            for round in 0..2 {
                for i in 0..3000u32 {
                    let host = std::net::Ipv4Addr::from(0x0a01_0000 + i * 7);
                    for text in [
                        host.to_string(),
                        format!("{}/24", {
                            let n: ipnet::Ipv4Net = format!("{host}/24").parse().unwrap();
                            n.trunc().addr()
                        }),
                    ] {
                        let what = format!("{policy} {text} round {round}");
                        decides_as_route(&mut memo, 1, (&c, &h, &r), client(&text), &what);
                    }
                }
            }
            let (hits, misses) = memo.counts();
            assert!(hits > misses, "{policy}: hits {hits} misses {misses}");
        }
    }

    #[test]
    fn misses_decide_as_route_does_with_geoip_and_every_policy() {
        // Distances remembered per GeoIP record, reused buffers and the
        // unstable sorts must not change a single decision.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/default.mmdb");
        let db = std::sync::Arc::new(crate::routing::geo::GeoDb::open(&[path]).unwrap());
        let geo_map = "[services.geo]\ndefault = [\"b\"]\ncontinents = { AS = [\"c\", \"a\"] }\n";
        let rules = "[[cidr_rules]]\nnetworks = [\"10.1.0.0/16\"]\nzones = [\"c\"]\n";
        for policy in ["nearest", "geo", "latency", "weighted", "failover", "all"] {
            let mut text = service(policy, rules, [5, 3, 2]);
            if policy == "geo" {
                text = text.replace("[services.check]", &format!("{geo_map}[services.check]"));
            }
            if policy == "failover" {
                text = text.replace(
                    "policy = \"failover\"",
                    "policy = \"failover\"\norder = [\"c\", \"a\"]",
                );
            }
            let c = config(&text);
            let mut r = router(&c);
            r.geo = Some(db.clone());
            // Merged scopes: a decision kept for a /24 must hold for all of it.
            r.uniform = crate::routing::uniform::for_router(&c, r.geo.as_ref());
            let mut table = crate::routing::latency::LatencyTable::default();
            table.push(
                "8.8.0.0/16".parse().unwrap(),
                2,
                9.0,
                std::time::Instant::now(),
            );
            r.latency = std::sync::Arc::new(table.view(0.2, 5.0));
            for drained in [&[][..], &["a"], &["a", "b", "c"]] {
                let h = health(&c, drained);
                let mut memo = DecisionMemo::new();
                for round in 0..2 {
                    for i in 0..2000u32 {
                        let n = i.wrapping_mul(0x9E37_79B1) >> 8;
                        let addr = std::net::Ipv4Addr::from(n << 8 | 7);
                        for who in [
                            Client::from_source(IpAddr::V4(addr)),
                            client(&format!("{}/24", std::net::Ipv4Addr::from(n << 8))),
                        ] {
                            let fresh = route(&c, &h, &r, 0, who);
                            let got = memo.decide(1, &c, &h, &r, 0, who);
                            let what = format!("{policy} {who:?} {drained:?} round {round}");
                            assert_eq!(&*got.endpoints, fresh.endpoints.as_slice(), "{what}");
                            assert_eq!(got.scope, fresh.scope, "{what}");
                            assert_eq!(got.is_all_down, fresh.is_all_down, "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_rule_narrower_than_the_network_is_not_generalised() {
        let rules = "[[cidr_rules]]\nnetworks = [\"10.1.1.128/25\"]\nzones = [\"c\"]\n";
        let c = config(
            &service("failover", rules, [1, 1, 1])
                .replace("policy = \"failover\"", "policy = \"nearest\""),
        );
        let (r, h) = (router(&c), health(&c, &[]));
        let mut memo = DecisionMemo::new();
        let inside = memo.decide(1, &c, &h, &r, 0, client("10.1.1.200")).clone();
        let outside = memo.decide(1, &c, &h, &r, 0, client("10.1.1.1")).clone();
        let fresh_outside = route(&c, &h, &r, 0, client("10.1.1.1"));
        assert_eq!(zones(&c, &fresh_outside)[0], "a");
        assert_eq!(&*outside.endpoints, fresh_outside.endpoints.as_slice());
        assert_ne!(inside.endpoints, outside.endpoints);
        assert_eq!(memo.counts(), (0, 2), "both computed, neither reused");
    }

    #[test]
    fn the_memo_holds_at_most_its_slots_and_still_decides_right() {
        // More networks than slots: sets fill and replace, the decisions
        // kept stay bounded, and every answer (a replaced one asked again
        // included) is still the fresh decision.
        let c = config(&service("weighted", "", [5, 3, 2]));
        let (r, h) = (router(&c), health(&c, &[]));
        let mut memo = DecisionMemo::new();
        let network = |i: u32| client(&format!("{}/24", std::net::Ipv4Addr::from(i << 8)));
        const SLOTS: usize = WIDE_SLOTS;
        for i in 0..(SLOTS as u32 + SLOTS as u32 / 4) {
            memo.decide(1, &c, &h, &r, 0, network(i));
        }
        assert!(memo.decisions.kept.len() <= DECISIONS);
        assert_eq!(memo.counts().0, 0, "every network was new");
        for i in (0..SLOTS as u32 + SLOTS as u32 / 4).step_by(97) {
            let fresh = route(&c, &h, &r, 0, network(i));
            let got = memo.decide(1, &c, &h, &r, 0, network(i));
            assert_eq!(&*got.endpoints, fresh.endpoints.as_slice(), "network {i}");
        }
        let (hits, _) = memo.counts();
        assert!(hits > 0, "the most recent networks are still remembered");
    }

    #[test]
    fn a_decision_as_wide_as_its_scope_answers_new_networks_inside_it() {
        // No rule near 10.2/16: every /24 there ranks alike (scope 0), so
        // a new /24 is answered from the wide network without deciding.
        // 10.1/16 holds a rule: its decisions' scopes stop short of the
        // rule and are not kept wide, so the rule's /24 still decides.
        let rules = "[[cidr_rules]]\nnetworks = [\"10.1.1.128/25\"]\nzones = [\"c\"]\n";
        let c = config(&service("nearest", rules, [1, 1, 1]));
        let (r, h) = (router(&c), health(&c, &[]));
        let mut memo = DecisionMemo::new();
        let check = |memo: &mut DecisionMemo, text: &str| {
            let fresh = route(&c, &h, &r, 0, client(text));
            let got = memo.decide(1, &c, &h, &r, 0, client(text)).clone();
            assert_eq!(&*got.endpoints, fresh.endpoints.as_slice(), "{text}");
            assert_eq!(got.scope, fresh.scope, "{text}");
            got
        };
        assert!(check(&mut memo, "10.2.0.0/24").scope <= V4_WIDE_LEN);
        check(&mut memo, "10.2.77.0/24");
        check(&mut memo, "10.2.255.0/24");
        assert_eq!(memo.counts(), (2, 1), "two new /24s answered wide");
        let outside = check(&mut memo, "10.1.0.0/24");
        assert!(outside.scope > V4_WIDE_LEN, "{}", outside.scope);
        let inside = check(&mut memo, "10.1.1.128/25");
        assert_ne!(inside.endpoints, outside.endpoints);
        check(&mut memo, "10.1.200.0/24");
        assert_eq!(memo.counts(), (2, 4), "10.1/16 decides per network");
    }

    #[test]
    fn a_prefetch_reads_nothing_and_changes_no_decision() {
        // Two memos asked alike, one also prefetching for every client
        // before and after (either family, networks it holds or not): the
        // same decisions, the fresh ones, and the same counts.
        let rules = "[[cidr_rules]]\nnetworks = [\"10.1.1.128/25\"]\nzones = [\"c\"]\n";
        let c = config(&service("nearest", rules, [1, 1, 1]));
        let (r, h) = (router(&c), health(&c, &[]));
        let (mut plain, mut prefetching) = (DecisionMemo::new(), DecisionMemo::new());
        let asked = ["10.2.0.0/24", "10.1.0.0/24", "10.1.1.200", "2001:db8::/56"];
        let guessed = ["10.9.9.0/24", "2001:db8:ff::/48", "0.0.0.0/0"];
        for round in 0..2 {
            for text in asked {
                for guess in asked.iter().chain(&guessed) {
                    prefetching.prefetch(client(guess));
                }
                let what = format!("{text} round {round}");
                decides_as_route(&mut plain, 1, (&c, &h, &r), client(text), &what);
                decides_as_route(&mut prefetching, 1, (&c, &h, &r), client(text), &what);
            }
        }
        assert_eq!(prefetching.counts(), plain.counts());
        assert!(plain.counts().0 >= 3, "found again: {:?}", plain.counts());
    }

    #[test]
    fn network_misses_are_counted_until_taken() {
        // What the answer loop prefetches by: decisions the networks'
        // table did not hold, whether the wide table or a decision
        // answered them, since the last take.
        let c = config(&service("nearest", "", [1, 1, 1]));
        let (r, h) = (router(&c), health(&c, &[]));
        let mut memo = DecisionMemo::new();
        for text in ["10.2.0.0/24", "10.2.1.0/24", "10.3.0.0/24"] {
            memo.decide(1, &c, &h, &r, 0, client(text));
        }
        assert_eq!(memo.take_network_misses(), 3);
        assert_eq!(memo.take_network_misses(), 0);
        for text in ["10.2.0.0/24", "10.3.0.0/24", "10.2.9.0/24"] {
            memo.decide(1, &c, &h, &r, 0, client(text));
        }
        assert_eq!(
            memo.take_network_misses(),
            1,
            "two found in the networks' table"
        );
    }

    #[test]
    fn keys_tell_apart_every_part_of_what_they_stand_for() {
        // Service (the largest a config may have too), family, source
        // prefix, network and table: each changes the key, and the set
        // found for a key is always the same.
        let table = Table::<NETWORK_SLOTS>::new();
        let mut seen = std::collections::HashSet::new();
        for service in [0, 1, MAX_SERVICES - 1] {
            for text in [
                "10.2.3.0/24",
                "10.3.3.0/24",
                "10.2.3.0/23",
                "10.2.3.4",
                "2001:db8::/48",
            ] {
                let (key, _) = memo_key(service, client(text));
                let (wide, _) = wide_key(service, client(text));
                assert!(seen.insert(key), "{service} {text}");
                assert!(seen.insert(wide), "wide {service} {text}");
                assert_eq!(table.set_of(key), table.set_of(key));
                assert!(table.set_of(key) < NETWORK_SLOTS / WAYS);
            }
            // Two networks of one /16 share its wide key.
            let (a, b) = (client("10.2.3.0/24"), client("10.2.200.0/24"));
            assert_ne!(memo_key(service, a), memo_key(service, b));
            assert_eq!(wide_key(service, a), wide_key(service, b));
        }
    }

    #[test]
    fn a_memo_out_of_room_for_decisions_starts_over_and_still_decides_right() {
        // Room for three distinct decisions: the GeoIP-placed clients
        // below make more (zone orders and scopes), so the memo starts
        // over many times, and every answer must still be the fresh one.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/default.mmdb");
        let db = std::sync::Arc::new(crate::routing::geo::GeoDb::open(&[path]).unwrap());
        let c = config(&service("nearest", "", [1, 1, 1]));
        let mut r = router(&c);
        r.geo = Some(db.clone());
        r.uniform = crate::routing::uniform::for_router(&c, r.geo.as_ref());
        let h = health(&c, &[]);
        let mut memo = DecisionMemo::new();
        memo.decisions.limit = 3;
        let mut epochs = std::collections::HashSet::new();
        for round in 0..2 {
            for i in 0..3000u32 {
                let n = i.wrapping_mul(0x9E37_79B1) >> 8;
                let who = client(&format!("{}/24", std::net::Ipv4Addr::from(n << 8)));
                // Asked twice: the second is a hit unless the first had
                // to start over.
                for _ in 0..2 {
                    let what = format!("{who:?} round {round}");
                    decides_as_route(&mut memo, 1, (&c, &h, &r), who, &what);
                    assert!(memo.decisions.kept.len() <= 3);
                    epochs.insert(memo.epoch);
                }
            }
        }
        assert!(epochs.len() > 10, "started over {} times", epochs.len() - 1);
        assert!(memo.counts().0 > 0, "and reused decisions in between");
    }

    #[test]
    fn a_new_snapshot_forgets_even_after_the_epoch_wraps() {
        let c = config(&service("weighted", "", [1, 1, 1]));
        let (r, h) = (router(&c), health(&c, &[]));
        let mut memo = DecisionMemo::new();
        let who = client("10.2.3.4");
        memo.decide(1, &c, &h, &r, 0, who);
        memo.decide(1, &c, &h, &r, 0, who);
        memo.decide(2, &c, &h, &r, 0, who);
        assert_eq!(memo.counts(), (1, 2));
        // 2^16 - 1 snapshots later the epoch is the one the decision above
        // was kept in again (0 is skipped): it must not be found, the
        // slots having been emptied when the epoch wrapped.
        let kept_in = memo.epoch;
        let last = 2 + u64::from(u16::MAX);
        for snapshot in 3..=last {
            memo.forget(snapshot);
        }
        assert_eq!(memo.epoch, kept_in);
        memo.decide(last, &c, &h, &r, 0, who);
        assert_eq!(memo.counts(), (1, 3), "decided again, not found");
    }
}
