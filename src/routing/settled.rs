//! Decisions a GeoIP record settles alone, remembered per (service,
//! record), so that a memo miss for a client network never seen before
//! costs a walk of the GeoIP tree and one small lookup.
//!
//! A flood of random client subnets misses the per-network memo on every
//! query, yet the networks fall into a database's few thousand records.
//! For a location-based policy (`nearest`, `geo`, `latency`) in a service
//! without in-zone splits, once no CIDR rule and no measured latency
//! prefix holds the client, everything up to the chosen endpoints rests on
//! the client's record (its location and country; the gap, or a record
//! without coordinates, ranks as unlocated): the endpoint order
//! (`routing::by_record`), then the first serving endpoint per zone under
//! this snapshot's health. Only the ECS scope depends on the client (the
//! uniform block its walk reports, narrowed around rules and prefixes
//! inside it), and it is computed per client as `routing::route` computes
//! it.
//!
//! Invariant: an entry is made only from a decision `routing::route_in`
//! computed for a client that `routing::rests_on_record` accepted, and is
//! read only for clients it accepts, of the same service and record, in
//! the same snapshot (the workspace forgets it with the snapshot).
//! Services whose zones hold several endpoints are never accepted: their
//! endpoint within a zone is hashed per client prefix (`routing::split`),
//! which a record does not settle.

use std::collections::HashMap;

use super::geo::RecordKey;

/// Endpoints an entry holds at most; longer choices (multi-value answers
/// over many zones, fail-open) are computed every time.
const INLINE: usize = 4;
/// Entries kept before starting over: one per (service, record) met.
const CAPACITY: usize = 1 << 16;

/// A settled choice: the endpoints to answer with and whether nothing
/// was serving.
#[derive(Debug, Clone, Copy)]
struct Settled {
    len: u8,
    ids: [u16; INLINE],
    is_all_down: bool,
}

/// Settled choices by (service, record); `None` stands for clients the
/// database places nowhere (or without a database).
#[derive(Debug, Default)]
pub struct SettledChoices {
    /// Keyed by [`key`]: one number hashes in one step.
    entries: HashMap<u128, Settled, foldhash::fast::RandomState>,
    /// Choices recalled, since the thread started.
    recalled: u64,
}

/// (service, record) as one number.
#[inline]
fn key((service, record): (u32, Option<RecordKey>)) -> u128 {
    u128::from(service) << 64 | u128::from(record.map_or(0, RecordKey::packed))
}

impl SettledChoices {
    /// Puts the choice settled for `at` in `chosen`; `Some(is_all_down)`
    /// if there was one.
    #[inline]
    pub fn recall(
        &mut self,
        at: (u32, Option<RecordKey>),
        chosen: &mut Vec<usize>,
    ) -> Option<bool> {
        let settled = self.entries.get(&key(at))?;
        chosen.clear();
        chosen.extend(
            settled.ids[..usize::from(settled.len)]
                .iter()
                .map(|e| usize::from(*e)),
        );
        self.recalled += 1;
        Some(settled.is_all_down)
    }

    /// Choices recalled rather than computed, since the thread started.
    pub fn recalled(&self) -> u64 {
        self.recalled
    }

    /// Remembers `chosen` as what `at` settles, if short enough.
    pub fn remember(&mut self, at: (u32, Option<RecordKey>), chosen: &[usize], is_all_down: bool) {
        if chosen.len() > INLINE || chosen.iter().any(|e| *e > usize::from(u16::MAX)) {
            return;
        }
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        let mut ids = [0u16; INLINE];
        for (slot, e) in ids.iter_mut().zip(chosen) {
            *slot = *e as u16;
        }
        self.entries.insert(
            key(at),
            Settled {
                len: chosen.len() as u8,
                ids,
                is_all_down,
            },
        );
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use crate::routing::geo::testing::city_record;
    use mmdb_writer::Writer;

    use super::super::memo::DecisionMemo;
    use super::super::tests::{config, decides_as_route, health, router, service, zones};
    use super::super::{Client, Router, route};
    use crate::config::Config;
    use crate::routing::geo::GeoDb;
    use crate::test_rng::Rng;

    /// 10.0.0.0/8 in New York (nearest zone a), 11.0.0.0/8 in Amsterdam
    /// (b), 2001:db8::/32 in Singapore (c): networks far wider than the
    /// rules and measured prefixes the tests put inside them.
    fn wide_networks() -> Arc<GeoDb> {
        let mut writer = Writer::new("Meridian-Test-City");
        for (network, country, latitude, longitude) in [
            ("10.0.0.0/8", "US", 40.7, -74.0),
            ("11.0.0.0/8", "NL", 52.4, 4.9),
            ("2001:db8::/32", "SG", 1.3, 103.8),
        ] {
            let record = city_record(country, latitude, longitude);
            writer
                .insert_value(network.parse::<ipnet::IpNet>().unwrap(), record)
                .unwrap();
        }
        let bytes = writer.to_bytes().unwrap();
        Arc::new(GeoDb::open_bytes(vec![("wide.mmdb".into(), bytes)]).unwrap())
    }

    fn geo_router(c: &Config, db: &Arc<GeoDb>) -> Router {
        let mut r = router(c);
        r.geo = Some(db.clone());
        r.uniform = crate::routing::uniform::for_router(c, r.geo.as_ref());
        r
    }

    fn v4(bits: u32, source_prefix: u8) -> Client {
        Client {
            addr: IpAddr::V4(Ipv4Addr::from(bits)),
            source_prefix,
        }
    }

    /// Asks `memo` for `client` and checks the answer is `route`'s;
    /// returns the zone names chosen.
    fn decide_as_route(
        memo: &mut DecisionMemo,
        snapshot: u64,
        (c, h, r): (&Config, &crate::health::HealthView, &Router),
        client: Client,
    ) -> Vec<String> {
        let what = format!("{client:?}");
        zones(
            c,
            &decides_as_route(memo, snapshot, (c, h, r), client, &what),
        )
    }

    #[test]
    fn rules_and_measured_prefixes_inside_a_settled_network_still_decide() {
        // A client of 10.0.0.0/8 settles the record's choice (a); rules
        // and a measured prefix inside the network must still win for
        // their clients, and scopes around them must still narrow.
        let db = wide_networks();
        let rules = "[[cidr_rules]]\nnetworks = [\"10.1.1.0/26\"]\nzones = [\"c\"]\n\
                     [[cidr_rules]]\nnetworks = [\"10.1.2.0/24\"]\nzones = [\"b\"]\n";
        for policy in ["nearest", "latency", "geo"] {
            let mut text = service(policy, rules, [1, 1, 1]);
            if policy == "geo" {
                let map = "[services.geo]\ndefault = [\"b\"]\ncountries = { SG = [\"a\"] }\n";
                text = text.replace("[services.check]", &format!("{map}[services.check]"));
            }
            let c = config(&text);
            let mut r = geo_router(&c, &db);
            let mut table = crate::routing::latency::LatencyTable::default();
            let measured = "10.2.0.0/24".parse().unwrap();
            table.push(measured, 2, 5.0, std::time::Instant::now());
            r.latency = Arc::new(table.view(0.2, 5.0));
            let h = health(&c, &[]);
            let mut memo = DecisionMemo::new();
            let at = (&c, &h, &r);
            let first = if policy == "geo" { "b" } else { "a" };
            assert_eq!(
                decide_as_route(&mut memo, 1, at, v4(0x0a09_0000, 24)),
                [first]
            );
            // In another /16, which the memo's wide networks do not share.
            assert_eq!(
                decide_as_route(&mut memo, 1, at, v4(0x0a0a_0100, 24)),
                [first]
            );
            let settled = memo.settled();
            assert_eq!(
                settled, 1,
                "{policy}: the second /24 recalls the first's choice"
            );
            // A host inside the /26 rule; a /24 client there cannot claim
            // it, but its scope must stop short of the rule.
            assert_eq!(
                decide_as_route(&mut memo, 1, at, v4(0x0a01_0105, 32)),
                ["c"]
            );
            assert_eq!(
                decide_as_route(&mut memo, 1, at, v4(0x0a01_0100, 24)),
                [first]
            );
            assert_eq!(
                decide_as_route(&mut memo, 1, at, v4(0x0a01_0200, 24)),
                ["b"]
            );
            let in_measured = decide_as_route(&mut memo, 1, at, v4(0x0a02_0000, 24));
            let want = if policy == "latency" { "c" } else { first };
            assert_eq!(in_measured, [want], "{policy}");
            // Random clients all over the network, IPv6 and IPv4-mapped
            // ones too: every answer is route's, most of them recalled.
            let mut rng = Rng(0x5e77_1ed0 + policy.len() as u64);
            for _ in 0..3000 {
                let bits = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff);
                let near_rules = 0x0a01_0000 | (rng.next() as u32 & 0x0003_ffff);
                let v6 = 0x2001_0db8u128 << 96 | u128::from(rng.next()) << 40;
                let mapped = Ipv4Addr::from(bits & !0xff).to_ipv6_mapped();
                for client in [
                    v4(bits & !0xff, 24),
                    v4(bits, 32),
                    v4(near_rules, 32),
                    v4(near_rules & !0xff, 24),
                    Client {
                        addr: IpAddr::V6(Ipv6Addr::from(v6)),
                        source_prefix: 56,
                    },
                    Client {
                        addr: IpAddr::V6(mapped),
                        source_prefix: 120,
                    },
                ] {
                    decide_as_route(&mut memo, 1, at, client);
                }
            }
            let (_, misses) = memo.counts();
            assert!(
                memo.settled() > misses / 2,
                "{policy}: {} of {misses} misses recalled",
                memo.settled()
            );
        }
    }

    #[test]
    fn weighted_and_split_services_are_never_settled() {
        // Both hash the client's /24 (weighted across zones, blue/green
        // within one): /24s of one GeoIP network get different endpoints,
        // so a record settles nothing for them.
        let db = wide_networks();
        let split = service("nearest", "", [1, 1, 1])
            .replace("zone = \"a\"\n", "zone = \"a\"\nname = \"blue\"\n")
            .replace(
                "[[services.endpoints]]\nzone = \"b\"",
                "[[services.endpoints]]\nzone = \"a\"\nname = \"green\"\n\
                 addresses = [\"192.0.2.9\"]\nweight = 1\n[[services.endpoints]]\nzone = \"b\"",
            );
        for text in [service("weighted", "", [5, 3, 2]), split] {
            let c = config(&text);
            assert!(
                matches!(c.services[0].policy, crate::config::Policy::Weighted)
                    || c.services[0].has_splits(),
                "fixture"
            );
            let r = geo_router(&c, &db);
            let h = health(&c, &[]);
            let mut memo = DecisionMemo::new();
            let mut seen = std::collections::HashSet::new();
            for i in 0..500u32 {
                let client = v4(0x0a00_0000 | i << 8, 24);
                let fresh = route(&c, &h, &r, 0, client);
                let got = memo.decide(1, &c, &h, &r, 0, client);
                assert_eq!(&*got.endpoints, fresh.endpoints.as_slice(), "{client:?}");
                assert_eq!(got.scope, fresh.scope, "{client:?}");
                seen.insert(fresh.endpoints);
            }
            assert!(seen.len() > 1, "the /24s hash to different endpoints");
            assert_eq!(memo.settled(), 0, "nothing recalled across /24s");
        }
    }

    #[test]
    fn a_new_snapshot_forgets_settled_choices() {
        let db = wide_networks();
        let c = config(&service("nearest", "", [1, 1, 1]));
        let r = geo_router(&c, &db);
        let (up, drained) = (health(&c, &[]), health(&c, &["a"]));
        let mut memo = DecisionMemo::new();
        assert_eq!(
            decide_as_route(&mut memo, 1, (&c, &up, &r), v4(0x0a09_0000, 24)),
            ["a"]
        );
        // Zone a drained in the next snapshot: another /24 of the same
        // record must not be given the choice settled in the first.
        let second = decide_as_route(&mut memo, 2, (&c, &drained, &r), v4(0x0a09_0100, 24));
        assert_eq!(second, ["b"]);
        assert_eq!(memo.settled(), 0);
        // In another /16: the memo's wide network would answer for 10.9/16.
        decide_as_route(&mut memo, 2, (&c, &drained, &r), v4(0x0a0a_0200, 24));
        assert_eq!(memo.settled(), 1, "settled again within the new snapshot");
    }
}
