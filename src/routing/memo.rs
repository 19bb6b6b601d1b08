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
//! snapshot's epoch), and each of its two tables holds at most [`SLOTS`]
//! decisions: slots come in sets of [`WAYS`], and a new decision whose set
//! is full replaces one of the set's, so the bound holds without ever
//! starting over.
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
/// Decisions kept per thread at most.
const SLOTS: usize = 1 << 16;
/// Slots per set: a key is looked for in its set's slots only.
const WAYS: usize = 4;

/// (service, client network, family, source prefix) as one number, so a
/// lookup hashes two words: the network's bits (a /24's 24, a /56's 56)
/// in the low half, the rest above.
type MemoKey = u128;

#[inline(always)]
fn memo_key(service: usize, client: Client) -> (MemoKey, u8) {
    network_key(service, client, V4_NETWORK_LEN, V6_NETWORK_LEN)
}

/// The key of `client`'s wide network, which holds decisions whose scope
/// is no longer than it; the lowest bit of the upper half tells it from
/// a network key.
#[inline(always)]
fn wide_key(service: usize, client: Client) -> (MemoKey, u8) {
    let (key, len) = network_key(service, client, V4_WIDE_LEN, V6_WIDE_LEN);
    (key | 1 << 65, len)
}

/// (service, the client's network at `v4_len` or `v6_len`, family, source
/// prefix) as one number, with the network's length.
#[inline(always)]
fn network_key(service: usize, client: Client, v4_len: u8, v6_len: u8) -> (MemoKey, u8) {
    let (network, is_v6, len) = match client.addr {
        IpAddr::V4(a) => (u64::from(u32::from(a) >> (32 - v4_len)), false, v4_len),
        IpAddr::V6(a) => ((u128::from(a) >> (128 - v6_len)) as u64, true, v6_len),
    };
    let rest = (service as u64) << 16 | u64::from(client.source_prefix) << 8 | u64::from(is_v6);
    (u128::from(rest) << 64 | u128::from(network), len)
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

/// One slot: a key and where its decision is, valid in one epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: MemoKey,
    /// The memo's epoch when the slot was filled; 0 never is one, so a
    /// zeroed slot is empty.
    epoch: u32,
    /// Index of the decision in [`Table::decisions`].
    decision: u32,
}

/// Decisions by key: `SLOTS` slots, `WAYS` to a set, each slot with a
/// decision of its own.
#[derive(Debug)]
struct Table {
    /// Zeroed (empty) pages until used.
    slots: Box<[Slot]>,
    /// The decisions the slots point at; a replaced slot's is overwritten
    /// in place, so this never outgrows the slots.
    decisions: Vec<Remembered>,
    /// Seeds the set a key lands in.
    seed: u64,
    /// Turns for replacing within a full set.
    turn: usize,
}

impl Table {
    fn new() -> Table {
        Table {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            // Room for every slot's decision from the start: growing by
            // doubling would copy them all on a flood's misses. Pages are
            // touched (resident) only as decisions are made.
            decisions: Vec::with_capacity(SLOTS),
            seed: foldhash::fast::RandomState::default().hash_one(0u64),
            turn: 0,
        }
    }

    /// The first slot of the set `key` belongs to.
    #[inline(always)]
    fn set_of(&self, key: MemoKey) -> usize {
        let m = u128::from((key as u64) ^ self.seed) * u128::from((key >> 64) as u64 | 1);
        let h = (m as u64) ^ ((m >> 64) as u64);
        (h as usize & (SLOTS / WAYS - 1)) * WAYS
    }

    /// Where the decision kept for `key` (in the set at `set`) in `epoch`
    /// is.
    #[inline(always)]
    fn find(&self, key: MemoKey, set: usize, epoch: u32) -> Option<usize> {
        let ways: &[Slot; WAYS] = self.slots[set..set + WAYS].try_into().expect("a set");
        ways.iter()
            .find(|s| s.key == key && s.epoch == epoch)
            .map(|s| s.decision as usize)
    }

    /// Keeps `remembered` for `key` in an empty slot of its set, else in
    /// one of the set's four in turn; where it is.
    fn keep(&mut self, key: MemoKey, set: usize, epoch: u32, remembered: Remembered) -> usize {
        let ways = &mut self.slots[set..set + WAYS];
        let way = match ways.iter().position(|s| s.epoch != epoch) {
            Some(way) => way,
            None => {
                self.turn = self.turn.wrapping_add(1);
                self.turn % WAYS
            }
        };
        let slot = &mut ways[way];
        let at = if slot.epoch == epoch {
            // Every slot has a decision of its own: overwriting it leaves
            // no other slot pointing at the wrong one.
            self.decisions[slot.decision as usize] = remembered;
            slot.decision as usize
        } else {
            self.decisions.push(remembered);
            self.decisions.len() - 1
        };
        *slot = Slot {
            key,
            epoch,
            decision: at as u32,
        };
        at
    }

    /// Empties the table for a new epoch (`epoch` 1 after a wrap: then
    /// the slots are zeroed, or slots 2^32 epochs old would look current).
    fn clear(&mut self, epoch: u32) {
        self.decisions.clear();
        if epoch == 1 {
            self.slots.fill(Slot::default());
        }
    }
}

/// One thread's remembered decisions for one snapshot.
#[derive(Debug)]
pub struct DecisionMemo {
    /// The snapshot the decisions were made in (`Snapshot::id`).
    snapshot: u64,
    /// Bumped when the snapshot changes: every slot of an older epoch is
    /// empty from then on.
    epoch: u32,
    /// Decisions per client network (/24, /56).
    networks: Table,
    /// Decisions per wide network (/16, /32), for those that hold for it;
    /// a table of their own, so a flood's networks never push them out.
    wide: Table,
    /// Holds a decision that may not be kept, for the caller to read.
    scratch: Remembered,
    /// Buffers and per-record distances for misses; they belong to
    /// `snapshot` like the decisions.
    workspace: Workspace,
    hits: u64,
    misses: u64,
}

impl Default for DecisionMemo {
    fn default() -> DecisionMemo {
        DecisionMemo {
            snapshot: 0,
            epoch: 1,
            networks: Table::new(),
            wide: Table::new(),
            scratch: Remembered::default(),
            workspace: Workspace::default(),
            hits: 0,
            misses: 0,
        }
    }
}

impl DecisionMemo {
    pub fn new() -> DecisionMemo {
        DecisionMemo {
            workspace: Workspace::remembering_places(),
            ..DecisionMemo::default()
        }
    }

    /// Forgets every decision: a new snapshot decides differently.
    fn forget(&mut self, snapshot: u64) {
        self.workspace.forget_places();
        self.snapshot = snapshot;
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.networks.clear(self.epoch);
        self.wide.clear(self.epoch);
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
        let (key, len) = memo_key(service, client);
        let set = self.networks.set_of(key);
        if snapshot == self.snapshot
            && let Some(at) = self.networks.find(key, set, self.epoch)
        {
            self.hits += 1;
            return &self.networks.decisions[at];
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
        if snapshot != self.snapshot {
            self.forget(snapshot);
        }
        let epoch = self.epoch;
        let (wide, wide_len) = wide_key(service, client);
        let wide_set = self.wide.set_of(wide);
        if let Some(at) = self.wide.find(wide, wide_set, epoch) {
            self.hits += 1;
            return &self.wide.decisions[at];
        }
        self.misses += 1;
        let (is_all_down, scope) =
            route_in(config, health, router, service, client, &mut self.workspace);
        let remembered = Remembered {
            endpoints: Chosen::from_slice(&self.workspace.chosen),
            is_all_down,
            scope,
        };
        if remembered.scope <= wide_len {
            // Kept for the network too: its next query is a hit at once.
            self.wide.keep(wide, wide_set, epoch, remembered.clone());
        }
        // A source prefix within the key's length means the key is the
        // client; otherwise the scope must cover the network.
        if client.source_prefix > len && remembered.scope > len {
            self.scratch = remembered;
            return &self.scratch;
        }
        let at = self.networks.keep(key, set, epoch, remembered);
        &self.networks.decisions[at]
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
    use crate::routing::tests::{client, config, health, router, service, zones};

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
                        let who = client(&text);
                        let fresh = route(&c, &h, &r, 0, who);
                        let got = memo.decide(1, &c, &h, &r, 0, who);
                        assert_eq!(
                            &*got.endpoints,
                            fresh.endpoints.as_slice(),
                            "{policy} {text} round {round}"
                        );
                        assert_eq!(got.scope, fresh.scope, "{policy} {text}");
                        assert_eq!(got.is_all_down, fresh.is_all_down);
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
        for i in 0..(SLOTS as u32 + SLOTS as u32 / 4) {
            memo.decide(1, &c, &h, &r, 0, network(i));
        }
        assert!(memo.networks.decisions.len() <= SLOTS);
        assert!(memo.wide.decisions.len() <= SLOTS);
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
    fn a_new_snapshot_forgets() {
        let c = config(&service("weighted", "", [1, 1, 1]));
        let (r, h) = (router(&c), health(&c, &[]));
        let mut memo = DecisionMemo::new();
        let who = client("10.2.3.4");
        memo.decide(1, &c, &h, &r, 0, who);
        memo.decide(1, &c, &h, &r, 0, who);
        memo.decide(2, &c, &h, &r, 0, who);
        assert_eq!(memo.counts(), (1, 2));
    }
}
