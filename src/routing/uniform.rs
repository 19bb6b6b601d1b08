//! Which blocks of addresses every rank alike, so an ECS scope can cover
//! all of them: resolvers then cache one answer for the whole block
//! instead of one per database network.
//!
//! For the location-based policies (`nearest`, `geo`, `latency`), once no
//! CIDR rule and no measured prefix applies, the ranking of a service's
//! endpoints depends on the client's GeoIP record alone: the geo map's
//! list for its place, the rest by distance, and for `latency` the probe
//! RTTs of a node in its country. Records (and gaps, which rank as
//! unlocated) that give the same ranking form a class; a tree node whose
//! whole block is in one class is marked (see `geo::tree`), and the answer
//! path's lookup returns the first marked node on the client's path: the
//! widest block around the client that ranks alike. Rules and measured
//! prefixes inside it narrow it as before (`routing::geo_scope`).
//!
//! The ranking is the full order, not the chosen endpoints, so health
//! changes do not touch this: it is built when the config or the database
//! changes and shared by every snapshot in between. Services whose
//! rankings are computed alike (same policy, same geo map, same zones in
//! the same order) share one marking, and at most [`MAX_GROUPS`] markings
//! are kept (each costs one bit per tree node); services beyond that keep
//! the database network as their scope.
//!
//! Invariant: a class stands for one exact ranking, computed by the very
//! function `routing::by_location` uses (`routing::order`); for `latency` it also carries the
//! country when some zone is in it, since the probe RTTs of a node in that
//! country, whatever they are, then come first.

use std::collections::HashMap;
use std::sync::Arc;

use super::geo::{GeoDb, Location, UniformNodes};
use super::order::location_order;
use super::workspace::Workspace;
use crate::config::{Config, Policy};

/// Markings kept at most; each holds one bit per GeoIP tree node.
pub const MAX_GROUPS: usize = 8;

/// Per service, the marking of tree nodes its ranking is uniform under.
#[derive(Debug, Default)]
pub struct UniformScopes {
    /// `groups` index per service; `None` for services whose ranking
    /// does not come from GeoIP, or beyond [`MAX_GROUPS`].
    service_group: Vec<Option<u16>>,
    /// Shared with the next build when its ranking is the same (see
    /// [`UniformScopes::build`]).
    groups: Vec<Arc<UniformNodes>>,
    /// What each group's ranking is: its policy and endpoints' zones.
    keys: Vec<(Policy, Vec<usize>)>,
    /// The zones every ranking was computed over (coordinates, country).
    zones: Vec<(f64, f64, Option<String>)>,
    /// The database marked ([`GeoDb::load_id`]).
    load_id: u64,
}

/// What a service's ranking depends on besides the GeoIP record.
fn ranking_key(config: &Config, service: usize) -> (Policy, Vec<usize>) {
    let svc = &config.services[service];
    (
        svc.policy.clone(),
        svc.endpoints.iter().map(|e| e.zone).collect(),
    )
}

fn zone_key(config: &Config) -> Vec<(f64, f64, Option<String>)> {
    config
        .zones
        .iter()
        .map(|z| (z.latitude, z.longitude, z.country.clone()))
        .collect()
}

impl UniformScopes {
    /// Classifies every record of `geo` for every distinct ranking among
    /// `config`'s services and marks the uniform tree nodes. Costs a pass
    /// over the database's records and nodes per distinct ranking: it
    /// belongs to reloads, never to the answer path.
    ///
    /// Markings of `previous` are reused for the rankings it already
    /// marked over the same database and zones (a reload that leaves
    /// routing alone costs nothing here).
    pub fn build(config: &Config, geo: &GeoDb, previous: Option<&UniformScopes>) -> UniformScopes {
        let zones = zone_key(config);
        let previous = previous.filter(|p| p.load_id == geo.load_id() && p.zones == zones);
        let mut representatives: Vec<usize> = Vec::new();
        let service_group = config
            .services
            .iter()
            .enumerate()
            .map(|(s, svc)| {
                if !matches!(
                    svc.policy,
                    Policy::Nearest | Policy::Geo(_) | Policy::Latency
                ) {
                    return None;
                }
                let zones = || svc.endpoints.iter().map(|e| e.zone);
                let same = |r: &usize| {
                    let other = &config.services[*r];
                    other.policy == svc.policy && other.endpoints.iter().map(|e| e.zone).eq(zones())
                };
                if let Some(g) = representatives.iter().position(same) {
                    return Some(g as u16);
                }
                if representatives.len() == MAX_GROUPS {
                    return None;
                }
                representatives.push(s);
                Some(representatives.len() as u16 - 1)
            })
            .collect();
        let keys: Vec<_> = representatives
            .iter()
            .map(|&s| ranking_key(config, s))
            .collect();
        let reused = |key: &(Policy, Vec<usize>)| {
            let p = previous?;
            let at = p.keys.iter().position(|k| k == key)?;
            Some(p.groups[at].clone())
        };
        let records = if keys.iter().all(|k| reused(k).is_some()) {
            Vec::new()
        } else {
            geo.records()
        };
        let mut workspace = Workspace::default();
        let groups = representatives
            .iter()
            .zip(&keys)
            .map(|(&service, key)| {
                if let Some(nodes) = reused(key) {
                    return nodes;
                }
                let is_latency = matches!(config.services[service].policy, Policy::Latency);
                let mut ids: HashMap<(Vec<usize>, Option<String>), u32> = HashMap::new();
                let mut class = |location: Option<&Location>, record| {
                    workspace.order.clear();
                    location_order(
                        config,
                        service,
                        location.map(|l| (l, record)),
                        &mut workspace,
                    );
                    let country = location
                        .and_then(|l| l.country.as_deref())
                        .filter(|c| {
                            is_latency
                                && config.zones.iter().any(|z| z.country.as_deref() == Some(c))
                        })
                        .map(str::to_owned);
                    let next = ids.len() as u32;
                    *ids.entry((workspace.order.clone(), country))
                        .or_insert(next)
                };
                let empty = class(None, None);
                let classes: HashMap<_, _> = records
                    .iter()
                    .map(|(key, location)| (*key, class(location.as_ref(), Some(*key))))
                    .collect();
                Arc::new(geo.uniform_nodes(&classes, empty))
            })
            .collect();
        UniformScopes {
            service_group,
            groups,
            keys,
            zones,
            load_id: geo.load_id(),
        }
    }

    /// The marking for `service`'s ranking, if it has one.
    #[inline]
    pub fn for_service(&self, service: usize) -> Option<&UniformNodes> {
        let group = (*self.service_group.get(service)?)?;
        self.groups.get(usize::from(group)).map(|g| &**g)
    }

    /// Distinct rankings marked.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Heap bytes held by the markings.
    pub fn bytes(&self) -> usize {
        self.groups.iter().map(|g| g.bytes()).sum::<usize>() + self.service_group.len() * 4
    }
}

/// The markings of the latest config and database, for the publisher:
/// they depend on nothing else and take a pass over the database, so
/// snapshots built for health changes reuse them.
#[derive(Debug, Default)]
pub struct UniformCache {
    /// The markings and the (config epoch, database load id) they are for.
    built: Option<((u64, u64), Arc<UniformScopes>)>,
}

impl UniformCache {
    /// Keeps markings already built for `geo` and config epoch `epoch`.
    pub fn adopt(
        &mut self,
        geo: Option<&Arc<GeoDb>>,
        epoch: u64,
        built: Option<Arc<UniformScopes>>,
    ) {
        if let (Some(geo), Some(built)) = (geo, built) {
            self.built = Some(((epoch, geo.load_id()), built));
        }
    }

    /// The markings for `config` (of epoch `epoch`) over `geo`, built only
    /// when either changed, reusing the rankings that did not.
    pub fn get(
        &mut self,
        config: &Config,
        geo: Option<&Arc<GeoDb>>,
        epoch: u64,
    ) -> Option<Arc<UniformScopes>> {
        let geo = geo?;
        let key = (epoch, geo.load_id());
        if let Some((built_for, built)) = &self.built
            && *built_for == key
        {
            return Some(built.clone());
        }
        let started = std::time::Instant::now();
        let previous = self.built.as_ref().map(|(_, b)| &**b);
        let built = Arc::new(UniformScopes::build(config, geo, previous));
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            rankings = built.groups(),
            bytes = built.bytes(),
            "geoip scope markings built"
        );
        self.built = Some((key, built.clone()));
        Some(built)
    }
}

/// Builds the markings for a router, or none without a database.
pub fn for_router(config: &Config, geo: Option<&Arc<GeoDb>>) -> Option<Arc<UniformScopes>> {
    geo.map(|geo| Arc::new(UniformScopes::build(config, geo, None)))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use ipnet::IpNet;
    use mmdb_writer::{Value, Writer};

    use super::*;
    use crate::routing::tests::{config, health, router, service};
    use crate::routing::{Client, Decision, Router, route};
    use crate::test_rng::Rng;

    /// Places whose nearest-zone rankings repeat (New York, Chicago and Los
    /// Angeles all rank a, b, c), so neighbouring networks often merge;
    /// `None` coordinates write a country-only record, which ranks as
    /// unlocated.
    /// Country, continent, and coordinates if any.
    type Place = (&'static str, &'static str, Option<(f64, f64)>);

    const PLACES: &[Place] = &[
        ("US", "NA", Some((40.7, -74.0))),
        ("US", "NA", Some((41.9, -87.6))),
        ("US", "NA", Some((34.0, -118.2))),
        ("FR", "EU", Some((48.8, 2.3))),
        ("RU", "EU", Some((55.7, 37.6))),
        ("IN", "AS", Some((28.6, 77.2))),
        ("JP", "AS", Some((35.7, 139.7))),
        ("AU", "OC", Some((-33.9, 151.2))),
        ("BR", "SA", None),
    ];

    fn record(place: usize) -> Value {
        let (country, continent, coordinates) = PLACES[place];
        let mut fields = vec![
            ("country", Value::map([("iso_code", Value::from(country))])),
            ("continent", Value::map([("code", Value::from(continent))])),
        ];
        if let Some((latitude, longitude)) = coordinates {
            fields.push((
                "location",
                Value::map([
                    ("latitude", Value::from(latitude)),
                    ("longitude", Value::from(longitude)),
                ]),
            ));
        }
        Value::map(fields)
    }

    /// A generated database shaped like real ones: blocks (IPv4 /16s in
    /// 10.0.0.0/8, IPv6 /40s in 2001:db8::/32), each with a home place
    /// most of its many small networks are at, some elsewhere, and gaps.
    /// Returns the database, every network written (the boundaries the
    /// oracle needs) and the blocks (where clients are drawn).
    fn generated(rng: &mut Rng) -> (Arc<GeoDb>, Vec<IpNet>, Vec<IpNet>) {
        let mut writer = Writer::new("Meridian-Test-City");
        let (mut networks, mut blocks) = (Vec::new(), Vec::new());
        for b in 0..60 {
            let v4 = b % 3 != 2;
            let block = if v4 {
                let bits = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_0000);
                IpNet::new(IpAddr::V4(Ipv4Addr::from(bits)), 16).unwrap()
            } else {
                let bits = 0x2001_0db8u128 << 96 | u128::from(rng.next() as u8) << 88;
                IpNet::new(IpAddr::V6(Ipv6Addr::from(bits)), 40).unwrap()
            };
            blocks.push(block);
            let home = rng.below(PLACES.len() as u64) as usize;
            for _ in 0..30 {
                let (len, host) = if v4 {
                    let len = 16 + [4, 6, 8, 8, 8, 10, 12][rng.below(7) as usize];
                    (len, u128::from(rng.next() as u16))
                } else {
                    let len = 40 + [4, 8, 8, 16, 24][rng.below(5) as usize];
                    (len, u128::from(rng.next()) << 24)
                };
                let addr = address(v4, first(block) | host);
                let network = IpNet::new(addr, len).unwrap().trunc();
                let place = if rng.below(4) == 0 {
                    rng.below(PLACES.len() as u64) as usize
                } else {
                    home
                };
                writer.insert_value(network, record(place)).unwrap();
                networks.push(network);
            }
        }
        let bytes = writer.to_bytes().unwrap();
        let db = GeoDb::open_bytes(vec![("generated.mmdb".into(), bytes)]).unwrap();
        (Arc::new(db), networks, blocks)
    }

    fn first(net: IpNet) -> u128 {
        match net {
            IpNet::V4(n) => u128::from(u32::from(n.network())),
            IpNet::V6(n) => u128::from(n.network()),
        }
    }

    fn last(net: IpNet) -> u128 {
        match net {
            IpNet::V4(n) => u128::from(u32::from(n.broadcast())),
            IpNet::V6(n) => u128::from(n.broadcast()),
        }
    }

    fn address(v4: bool, bits: u128) -> IpAddr {
        if v4 {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }

    /// The brute-force oracle: the decision is constant between
    /// boundaries of the written networks and CIDR rules, so checking the
    /// first address of each piece inside `scope` around `client` checks
    /// every address there. Panics on any address with another ranking.
    fn check_scope(
        c: &Config,
        r: &Router,
        boundaries: &[IpNet],
        client: Client,
        decision: &Decision,
        what: &str,
    ) -> usize {
        let h = health(c, &[]);
        // A mapped client's scope is over ::ffff:0:0/96: check it as IPv4.
        let (addr, scope) = match client.addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && decision.scope >= 96 => (
                IpAddr::V4(v6.to_ipv4_mapped().unwrap()),
                decision.scope - 96,
            ),
            a => (a, decision.scope),
        };
        let block = IpNet::new(addr, scope).unwrap().trunc();
        let v4 = addr.is_ipv4();
        let mut starts = vec![first(block)];
        for net in boundaries.iter().filter(|n| n.addr().is_ipv4() == v4) {
            for start in [Some(first(*net)), last(*net).checked_add(1)]
                .into_iter()
                .flatten()
            {
                if start > first(block) && start <= last(block) {
                    starts.push(start);
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        for start in &starts {
            let probe = Client::from_source(address(v4, *start));
            let other = route(c, &h, r, 0, probe);
            assert_eq!(
                other.ranked, decision.ranked,
                "{what}: {client:?} got scope /{} but {probe:?} inside it ranks otherwise",
                decision.scope
            );
        }
        starts.len()
    }

    #[test]
    fn merged_scopes_never_cover_another_ranking_and_are_wider_than_networks() {
        let mut rng = Rng(0x0ec5_5c0e_u64 << 20 | 0x7);
        let (db, networks, blocks) = generated(&mut rng);
        let rules = "[[cidr_rules]]\nnetworks = [\"10.77.1.0/24\", \"2001:db8:77::/48\"]\n\
                     zones = [\"c\"]\n";
        let geo_map = "[services.geo]\ndefault = [\"b\"]\n\
                       continents = { AS = [\"c\", \"a\"] }\ncountries = { JP = [\"a\"] }\n";
        let mut boundaries = networks.clone();
        boundaries
            .extend(["10.77.1.0/24", "2001:db8:77::/48"].map(|n| n.parse::<IpNet>().unwrap()));
        for policy in ["nearest", "geo", "latency"] {
            let mut text = service(policy, rules, [1, 1, 1]);
            if policy == "geo" {
                text = text.replace("[services.check]", &format!("{geo_map}[services.check]"));
            }
            if policy == "latency" {
                // A zone in France: French records rank apart from other
                // records with the same distances (probe RTTs may lead).
                text = text.replace(
                    "name = \"b\"\nlatitude = 50.0",
                    "name = \"b\"\ncountry = \"FR\"\nlatitude = 50.0",
                );
            }
            let c = config(&text);
            let mut r = router(&c);
            r.geo = Some(db.clone());
            let narrow_router = Router {
                geo: Some(db.clone()),
                ..router(&c)
            };
            r.uniform = for_router(&c, r.geo.as_ref());
            let h = health(&c, &[]);
            let (mut wider, mut clients, mut probes) = (0, 0, 0);
            for i in 0..600u32 {
                let block = *rng.pick(&blocks);
                let random = u128::from(rng.next()) << 64 | u128::from(rng.next());
                let inside = address(
                    block.addr().is_ipv4(),
                    first(block) | random & (last(block) - first(block)),
                );
                let (addr, source) = match (inside, i % 5) {
                    (IpAddr::V4(_), 0) => (IpAddr::V4(Ipv4Addr::from(random as u32)), 32),
                    (IpAddr::V4(v4), 1) => (IpAddr::V4(Ipv4Addr::from(u32::from(v4) & !0xff)), 24),
                    (IpAddr::V4(v4), 2) => (IpAddr::V6(v4.to_ipv6_mapped()), 128),
                    (a, _) => (a, full(a)),
                };
                let client = Client {
                    addr,
                    source_prefix: source,
                };
                let decision = route(&c, &h, &r, 0, client);
                let before = route(&c, &h, &narrow_router, 0, client);
                let what = format!("{policy} client {i}");
                assert_eq!(decision.ranked, before.ranked, "{what}: the ranking moved");
                assert!(
                    decision.scope <= before.scope,
                    "{what}: narrower than before"
                );
                assert!(
                    decision.scope <= source,
                    "{what}: wider than the source prefix"
                );
                if source < full(addr) {
                    // The client told only its /24: it stands for it.
                    continue;
                }
                probes += check_scope(&c, &r, &boundaries, client, &decision, &what);
                clients += 1;
                wider += usize::from(decision.scope < before.scope);
            }
            // Neighbouring networks with one ranking merge: many scopes
            // are wider than the database network that matched.
            assert!(
                wider * 3 > clients,
                "{policy}: only {wider} of {clients} scopes wider than the network"
            );
            assert!(
                probes > clients * 2,
                "{policy}: the oracle checked {probes} pieces"
            );
        }
    }

    fn full(addr: IpAddr) -> u8 {
        if addr.is_ipv4() { 32 } else { 128 }
    }

    #[test]
    fn a_rebuild_reuses_markings_only_for_the_same_ranking() {
        let mut rng = Rng(0x2026_1205);
        let (db, _, _) = generated(&mut rng);
        let c = config(&service("nearest", "", [1, 1, 1]));
        let first = UniformScopes::build(&c, &db, None);
        let again = UniformScopes::build(&c, &db, Some(&first));
        assert!(Arc::ptr_eq(&first.groups[0], &again.groups[0]));
        // A zone moved: every ranking may change.
        let moved =
            config(&service("nearest", "", [1, 1, 1]).replace("latitude = 1.3", "latitude = 35.7"));
        let rebuilt = UniformScopes::build(&moved, &db, Some(&first));
        assert!(!Arc::ptr_eq(&first.groups[0], &rebuilt.groups[0]));
        // Another policy: its own marking; the first ranking kept.
        let both = config(&format!(
            "{}\n[[services]]\nname = \"api\"\npolicy = \"latency\"\n\
             [services.check]\nkind = \"none\"\n\
             [[services.endpoints]]\nzone = \"b\"\naddresses = [\"192.0.2.9\"]\n",
            service("nearest", "", [1, 1, 1])
        ));
        let grown = UniformScopes::build(&both, &db, Some(&first));
        assert_eq!(grown.groups(), 2);
        assert!(Arc::ptr_eq(&first.groups[0], &grown.groups[0]));
        assert!(grown.for_service(1).is_some() && grown.for_service(2).is_none());
    }

    #[test]
    fn markings_are_capped_and_services_beyond_keep_the_network() {
        let mut rng = Rng(0x2026_1206);
        let (db, _, _) = generated(&mut rng);
        // Ten services with ten distinct rankings (zone orders x policies).
        let mut text = service("nearest", "", [1, 1, 1]);
        let orders = [
            ["a", "b", "c"],
            ["a", "c", "b"],
            ["b", "a", "c"],
            ["b", "c", "a"],
            ["c", "a", "b"],
        ];
        for (i, order) in orders.iter().enumerate() {
            for policy in ["nearest", "latency"] {
                text.push_str(&format!(
                    "\n[[services]]\nname = \"s{i}{policy}\"\npolicy = \"{policy}\"\n\
                     [services.check]\nkind = \"none\"\n"
                ));
                for zone in order {
                    text.push_str(&format!(
                        "[[services.endpoints]]\nzone = \"{zone}\"\naddresses = [\"192.0.2.9\"]\n"
                    ));
                }
            }
        }
        let c = config(&text);
        let scopes = UniformScopes::build(&c, &db, None);
        assert_eq!(scopes.groups(), MAX_GROUPS);
        // www and s0nearest rank alike (a, b, c): one marking.
        assert!(std::ptr::eq(
            scopes.for_service(0).unwrap(),
            scopes.for_service(1).unwrap()
        ));
        let marked = (0..c.services.len())
            .filter(|s| scopes.for_service(*s).is_some())
            .count();
        assert_eq!(marked, MAX_GROUPS + 1);
        assert!(scopes.for_service(c.services.len() - 1).is_none());
        // A bit per node, and per walk (IPv4, IPv6) a byte per 16-bit
        // prefix: the depth of the first marked node.
        let per_group = db.node_counts().sum::<usize>() / 8 + 8 + 2 * (1 << 16);
        assert!(scopes.bytes() <= MAX_GROUPS * per_group + 44);
    }
}
