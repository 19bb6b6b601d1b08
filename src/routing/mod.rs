//! Which zone a client should use: the decision at the heart of Meridian.
//!
//! Routing reads; it never probes. Everything it needs is frozen into the
//! snapshot: the GeoIP database, CIDR rules, the latency rankings and the
//! health view. [`route`] is pure and allocation-light, so the answer path
//! calls it per query, and [`explain`] calls the very same function and
//! then describes every candidate, so what the explain endpoint says is
//! what DNS does.
//!
//! The order of evidence, most specific first: a CIDR rule for the client's
//! network; for the latency policy, measured RTTs for the client's prefix
//! (or this node's own probe RTTs for clients in its country); the client's
//! GeoIP location. Every policy then skips zones that are down or drained
//! and takes the next; with none left, the service's all-down rule answers.
//!
//! ECS scope: the reply says how wide a network the decision holds for,
//! so resolvers can cache one answer for the whole network; the wider, the
//! fewer entries and queries, but it must never cover an address that
//! would be answered otherwise. It is the prefix of the evidence used (CIDR
//! rule, latency prefix, hashed prefix), or for GeoIP the widest block
//! around the client whose every address ranks the zones alike (merged
//! across database networks and gaps, [`uniform`]), narrowed so no more
//! specific rule or measured prefix hides inside it, and never wider than
//! the query's source prefix; 0 when the answer does not depend on the
//! client. Invariant: any address inside the scope gets the same full
//! ranking, so the same answer whatever the health view, and the memo may
//! reuse a decision across the scope.

pub mod explain;
pub mod geo;
pub mod latency;
pub mod locate;
pub mod memo;
mod order;
pub mod prefix;
pub mod settled;
pub mod split;
pub mod uniform;
pub mod weighted;
pub mod workspace;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::{AllDown, Config, Policy};
use crate::health::HealthView;
use geo::{GeoDb, Location};
use latency::{LatencyView, Ranking};
use order::{complete, complete_by_distance, endpoints_in, location_order};
use prefix::{PrefixMap, narrow};
pub use workspace::Workspace;

/// Who is asking: the ECS subnet when the query carries one, else the
/// packet's source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub addr: IpAddr,
    /// Bits of `addr` that are meaningful (32/128 for a packet source).
    pub source_prefix: u8,
}

impl Client {
    pub fn from_source(addr: IpAddr) -> Client {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        Client {
            addr,
            source_prefix: full_len(addr),
        }
    }
}

fn full_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The routing data of one snapshot.
#[derive(Debug, Default)]
pub struct Router {
    pub geo: Option<Arc<GeoDb>>,
    /// CIDR rule index by network.
    pub cidr: PrefixMap<usize>,
    /// Latency rankings by client prefix.
    /// Shared between snapshots until measurements change.
    pub latency: Arc<LatencyView>,
    /// This node's probe RTTs ranked, for clients in its own country.
    pub local_latency: Option<Ranking>,
    /// Each fresh peer's probe RTTs ranked, by the zone the peer runs in:
    /// for clients in that zone's country, the nearest vantage point's
    /// measurement.
    pub peer_latency: Vec<(usize, Ranking)>,
    /// Per service, which GeoIP tree nodes cover blocks that all rank
    /// alike: what widens a GeoIP-based scope beyond one database
    /// network. Built with the database and config, shared between
    /// snapshots until either changes.
    pub uniform: Option<Arc<uniform::UniformScopes>>,
}

impl Router {
    /// The probe-RTT ranking measured nearest a client in `country`: this
    /// node's when it runs in that country, else a peer's that does.
    pub fn node_ranking(&self, config: &Config, country: Option<&str>) -> Option<&Ranking> {
        let country = country?;
        let in_country = |zone: usize| config.zones[zone].country.as_deref() == Some(country);
        if config.routing.this_zone.is_some_and(in_country) {
            return self.local_latency.as_ref();
        }
        self.peer_latency
            .iter()
            .find(|(zone, _)| in_country(*zone))
            .map(|(_, ranking)| ranking)
    }
}

/// CIDR rules by network, for longest-prefix match: each network maps to
/// the index of its rule in `config.cidr_rules`.
pub fn cidr_map(config: &Config) -> PrefixMap<usize> {
    config
        .cidr_rules
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| rule.networks.iter().map(move |net| (*net, i)))
        .collect()
}

/// What the evidence was.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Basis {
    /// The policy does not depend on the client.
    Fixed,
    /// A CIDR rule matched.
    CidrRule { network: IpNet, rule: usize },
    /// Pushed latency measurements for the client's prefix.
    Latency { network: IpNet },
    /// This node's probe RTTs, the client being in this node's country.
    LocalLatency,
    /// GeoIP located the client.
    Geo {
        network: IpNet,
        location: Arc<Location>,
    },
    /// GeoIP had no location (or there is no database).
    Unlocated { network: Option<IpNet> },
    /// Weighted split keyed by the client's prefix.
    Hash { network: IpNet },
}

/// A routing decision for one service and one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Endpoint indices to answer with, preferred first.
    pub endpoints: Vec<usize>,
    /// Every endpoint in preference order, serving or not (for explain).
    pub ranked: Vec<usize>,
    /// No endpoint was serving: the all-down rule applies.
    pub is_all_down: bool,
    /// ECS scope prefix length for the reply.
    pub scope: u8,
    pub basis: Basis,
}

/// Decides which of `service`'s endpoints to answer `client` with.
pub fn route(
    config: &Config,
    health: &HealthView,
    router: &Router,
    service: usize,
    client: Client,
) -> Decision {
    let mut workspace = Workspace::default();
    let (scope, basis) = rank(config, router, service, client, &mut workspace);
    split::split_zones(config, service, client, &mut workspace);
    let ranked = std::mem::take(&mut workspace.order);
    let mut endpoints = Vec::new();
    let is_all_down = select(config, health, service, &ranked, &mut endpoints);
    let scope = split::scope(
        config,
        health,
        (service, client),
        scope,
        &endpoints,
        is_all_down,
    );
    Decision {
        endpoints,
        ranked,
        is_all_down,
        scope: scope.min(client.source_prefix),
        basis,
    }
}

/// The same decision as [`route`] without the full ranking and basis,
/// built in `workspace`'s buffers: what the answer path's memo calls on a
/// miss, where it must not allocate. The chosen endpoints are left in
/// [`Workspace::chosen`]; returns whether nothing was serving and the
/// scope.
pub fn route_in(
    config: &Config,
    health: &HealthView,
    router: &Router,
    service: usize,
    client: Client,
    workspace: &mut Workspace,
) -> (bool, u8) {
    // Where the client's record settles the choice, a remembering
    // workspace may already know it: only the scope is the client's own.
    let mut settles = None;
    if workspace.remembers_places() && rests_on_record(config, router, service, client) {
        let uniform = router.uniform.as_ref().and_then(|u| u.for_service(service));
        let placed = router
            .geo
            .as_ref()
            .map(|g| g.place_record(client.addr, uniform));
        let key = (service as u32, placed.and_then(|(record, _)| record));
        if let Some(is_all_down) = workspace.settled.recall(key, &mut workspace.chosen) {
            let scope = scope_around(placed.map(|(_, len)| len), client.addr, router);
            return (is_all_down, scope.min(client.source_prefix));
        }
        settles = Some(key);
    }
    let (scope, _basis) = rank(config, router, service, client, workspace);
    split::split_zones(config, service, client, workspace);
    let Workspace { order, chosen, .. } = workspace;
    let is_all_down = select(config, health, service, order, chosen);
    let scope = split::scope(
        config,
        health,
        (service, client),
        scope,
        chosen,
        is_all_down,
    );
    if let Some(key) = settles {
        workspace
            .settled
            .remember(key, &workspace.chosen, is_all_down);
    }
    (is_all_down, scope.min(client.source_prefix))
}

/// Whether `client`'s decision for `service` rests on its GeoIP record
/// alone (see the `settled` module doc): the same checks, in the same
/// order of evidence, as `rank` makes before it orders by record.
pub fn rests_on_record(config: &Config, router: &Router, service: usize, client: Client) -> bool {
    let svc = &config.services[service];
    let measured = match svc.policy {
        Policy::Nearest | Policy::Geo(_) => false,
        Policy::Latency => router
            .latency
            .lookup(client.addr, client.source_prefix)
            .is_some(),
        Policy::All | Policy::Failover(_) | Policy::Weighted => return false,
    };
    !measured
        && !svc.has_splits()
        && router
            .cidr
            .lookup(client.addr, client.source_prefix)
            .is_none()
}

/// Fills `chosen` with the endpoints to answer with, from every endpoint
/// in preference order: the first serving endpoint of each of the first
/// `answers` zones that have one, else what the all-down rule says. A zone
/// serves while any of its endpoints does; its endpoints are ranked by the
/// in-zone split, so a drained or down endpoint's clients go to the next
/// sibling. Returns whether nothing was serving.
fn select(
    config: &Config,
    health: &HealthView,
    service: usize,
    ranked: &[usize],
    chosen: &mut Vec<usize>,
) -> bool {
    let svc = &config.services[service];
    let views = &health.endpoints[service];
    let serving = |e: usize| views.get(e).is_none_or(|v| v.is_serving());
    let limit = if matches!(svc.policy, Policy::All) {
        usize::MAX
    } else {
        svc.answers
    };
    chosen.clear();
    for &e in ranked {
        if chosen.len() >= limit {
            break;
        }
        let zone = svc.endpoints[e].zone;
        if serving(e) && !chosen.iter().any(|c| svc.endpoints[*c].zone == zone) {
            chosen.push(e);
        }
    }
    let is_all_down = chosen.is_empty();
    if is_all_down && svc.all_down == AllDown::FailOpen {
        chosen.extend(0..svc.endpoints.len());
    }
    is_all_down
}

/// Orders every endpoint of a service for a client into
/// `workspace.order`, and gives the scope over which that order holds and
/// the evidence it rests on.
///
/// Evidence is tried most specific first (see the module doc); each kind
/// has its own function below, which answers `None` (leaving the order
/// alone) when it has nothing to say about this client.
fn rank(
    config: &Config,
    router: &Router,
    service: usize,
    client: Client,
    workspace: &mut Workspace,
) -> (u8, Basis) {
    let svc = &config.services[service];
    workspace.order.clear();
    match &svc.policy {
        Policy::All => {
            workspace.order.extend(0..svc.endpoints.len());
            (0, Basis::Fixed)
        }
        Policy::Failover(order) => {
            endpoints_in(svc, order.iter().copied(), &mut workspace.order);
            complete(&mut workspace.order, svc.endpoints.len());
            (0, Basis::Fixed)
        }
        Policy::Weighted => by_hash(config, service, client, workspace),
        Policy::Nearest | Policy::Geo(_) | Policy::Latency => {
            if let Some(ranked) = by_cidr_rule(config, router, service, client, workspace) {
                return ranked;
            }
            let uniform = router.uniform.as_ref().and_then(|u| u.for_service(service));
            let located = router
                .geo
                .as_ref()
                .map(|g| locate::locate(g, uniform, client.addr));
            if matches!(svc.policy, Policy::Latency) {
                if let Some(ranked) = by_measured_latency(
                    config,
                    router,
                    service,
                    client,
                    located.as_ref(),
                    workspace,
                ) {
                    return ranked;
                }
                if let Some(ranked) =
                    by_local_latency(config, router, service, client, located.as_ref(), workspace)
                {
                    return ranked;
                }
            }
            by_record(config, router, service, client, located, workspace)
        }
    }
}

/// The tail of [`rank`] for location-based policies, once no CIDR rule and
/// no measured prefix applies: from here the order depends only on the
/// client's GeoIP record (location and country), so a remembering
/// workspace keeps it per (service, record); the scope is per client.
fn by_record(
    config: &Config,
    router: &Router,
    service: usize,
    client: Client,
    located: Option<locate::Located>,
    workspace: &mut Workspace,
) -> (u8, Basis) {
    let key = located
        .as_ref()
        .filter(|m| m.location.is_some())
        .and_then(|m| Some((service as u32, m.record?)));
    if let Some(is_local_latency) = key.and_then(|key| workspace.recall_order(key)) {
        let scope = geo_scope(located.as_ref(), client, router);
        let basis = match located {
            _ if is_local_latency => Basis::LocalLatency,
            Some(locate::Located {
                network,
                location: Some(location),
                ..
            }) => Basis::Geo { network, location },
            _ => unreachable!("only located clients are remembered"),
        };
        return (scope, basis);
    }
    let ranked = match config.services[service].policy {
        Policy::Latency => {
            by_local_latency(config, router, service, client, located.as_ref(), workspace)
        }
        _ => None,
    }
    .unwrap_or_else(|| by_location(config, router, service, client, located, workspace));
    if let Some(key) = key {
        workspace.remember_order(key, ranked.1 == Basis::LocalLatency);
    }
    ranked
}

/// Weighted policy: rendezvous hashing of the client's /24 (IPv6 /56), or
/// of its source prefix when that is shorter.
fn by_hash(
    config: &Config,
    service: usize,
    client: Client,
    workspace: &mut Workspace,
) -> (u8, Basis) {
    let network = split::hashed_network(client);
    let len = network.prefix_len();
    let Workspace {
        service_name,
        scored,
        order,
        ..
    } = workspace;
    weighted::weighted_order(config, service, network, (service_name, scored, order));
    (len, Basis::Hash { network })
}

/// The longest CIDR rule holding the client, which outranks everything
/// else: its zones first, then the rest in config order.
fn by_cidr_rule(
    config: &Config,
    router: &Router,
    service: usize,
    client: Client,
    workspace: &mut Workspace,
) -> Option<(u8, Basis)> {
    let svc = &config.services[service];
    let (network, rule) = router.cidr.lookup(client.addr, client.source_prefix)?;
    let order = &mut workspace.order;
    endpoints_in(svc, config.cidr_rules[*rule].zones.iter().copied(), order);
    complete(order, svc.endpoints.len());
    let scope = narrow(network.prefix_len(), client.addr, &router.cidr);
    Some((
        scope,
        Basis::CidrRule {
            network,
            rule: *rule,
        },
    ))
}

/// Latency policy: RTTs pushed for the client's prefix, fastest zone
/// first, then the rest nearest first.
fn by_measured_latency(
    config: &Config,
    router: &Router,
    service: usize,
    client: Client,
    located: Option<&locate::Located>,
    workspace: &mut Workspace,
) -> Option<(u8, Basis)> {
    let (network, ranking) = router.latency.lookup(client.addr, client.source_prefix)?;
    let svc = &config.services[service];
    endpoints_in(svc, ranking.order(), &mut workspace.order);
    complete_by_distance(config, service, place_of(located), workspace);
    // Zones left unmeasured follow by distance, so the GeoIP block that
    // ranks alike bounds the scope too.
    let scope = narrow(network.prefix_len(), client.addr, router.latency.prefixes())
        .max(located.map_or(0, |m| m.uniform_len));
    Some((scope, Basis::Latency { network }))
}

/// Latency policy: a node's own probe RTTs, which stand for the latency of
/// clients GeoIP places in that node's zone's country (this node's, else a
/// peer's).
fn by_local_latency(
    config: &Config,
    router: &Router,
    service: usize,
    client: Client,
    located: Option<&locate::Located>,
    workspace: &mut Workspace,
) -> Option<(u8, Basis)> {
    let location = located?.location.as_deref()?;
    let ranking = router.node_ranking(config, location.country.as_deref())?;
    let svc = &config.services[service];
    endpoints_in(svc, ranking.zones.iter().map(|z| z.0), &mut workspace.order);
    complete_by_distance(config, service, place_of(located), workspace);
    let scope = geo_scope(located, client, router);
    Some((scope, Basis::LocalLatency))
}

/// GeoIP: the geo policy's map list for the client's location first, then
/// every other endpoint nearest first. Without a location, the configured
/// order (the geo map's default list first).
fn by_location(
    config: &Config,
    router: &Router,
    service: usize,
    client: Client,
    located: Option<locate::Located>,
    workspace: &mut Workspace,
) -> (u8, Basis) {
    let scope = geo_scope(located.as_ref(), client, router);
    location_order(config, service, place_of(located.as_ref()), workspace);
    let basis = match located {
        Some(locate::Located {
            network,
            location: Some(location),
            ..
        }) => Basis::Geo { network, location },
        unlocated => Basis::Unlocated {
            network: unlocated.map(|m| m.network),
        },
    };
    (scope, basis)
}

/// A located client's location and record, for ordering by distance.
fn place_of(located: Option<&locate::Located>) -> Option<(&Location, Option<geo::RecordKey>)> {
    located.and_then(|m| Some((m.location.as_deref()?, m.record)))
}

/// The scope of a GeoIP-based decision: the widest block around the
/// client that ranks alike (the database network when no block was
/// marked), narrowed around any CIDR rule or latency prefix inside it.
fn geo_scope(located: Option<&locate::Located>, client: Client, router: &Router) -> u8 {
    scope_around(located.map(|m| m.uniform_len), client.addr, router)
}

/// [`geo_scope`] from the uniform block's length alone (`None` without a
/// database).
fn scope_around(uniform_len: Option<u8>, addr: IpAddr, router: &Router) -> u8 {
    // No database: the decision does not depend on the client, unless
    // rules or measurements exist that could.
    let base = uniform_len.unwrap_or(0);
    narrow(base, addr, &router.cidr).max(narrow(base, addr, router.latency.prefixes()))
}

/// Great-circle distance from a client's location to a zone.
pub fn distance_km(loc: &Location, zone: &crate::config::Zone) -> f64 {
    loc.distance_km(zone.latitude, zone.longitude)
}

/// Where a service answer's addresses come from, given a decision: the
/// one rule the fast path, the general path and [`explain`] all follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerAddresses<'d> {
    /// Nothing is serving and the service's all-down rule is `fallback`:
    /// its fallback addresses.
    Fallback,
    /// These endpoints' addresses, in decision order: only the usable ones
    /// (`usable_only`), or every one under fail-open, where nothing is
    /// serving and any address is as good as another.
    Endpoints {
        endpoints: &'d [usize],
        usable_only: bool,
    },
}

/// The addresses a decision answers with, from its endpoints and whether
/// nothing was serving ([`Decision`], or a remembered one).
pub fn answer_addresses(endpoints: &[usize], is_all_down: bool) -> AnswerAddresses<'_> {
    if is_all_down && endpoints.is_empty() {
        AnswerAddresses::Fallback
    } else {
        AnswerAddresses::Endpoints {
            endpoints,
            usable_only: !is_all_down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::drains::Drains;
    use std::collections::HashMap;
    use std::path::Path;

    const BASE: &str = r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
[[zones]]
name = "a"
latitude = 40.0
longitude = -75.0
[[zones]]
name = "b"
latitude = 50.0
longitude = 5.0
[[zones]]
name = "c"
latitude = 1.3
longitude = 103.8
"#;

    pub(super) fn service(policy: &str, extra: &str, weights: [u32; 3]) -> String {
        format!(
            "{BASE}\n{extra}\n[[services]]\nname = \"www\"\npolicy = \"{policy}\"\n\
             [services.check]\nkind = \"none\"\n\
             [[services.endpoints]]\nzone = \"a\"\naddresses = [\"192.0.2.1\"]\nweight = {}\n\
             [[services.endpoints]]\nzone = \"b\"\naddresses = [\"192.0.2.2\"]\nweight = {}\n\
             [[services.endpoints]]\nzone = \"c\"\naddresses = [\"192.0.2.3\"]\nweight = {}\n",
            weights[0], weights[1], weights[2]
        )
    }

    pub(super) fn config(text: &str) -> Config {
        Config::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) fn router(config: &Config) -> Router {
        Router {
            geo: None,
            cidr: cidr_map(config),
            latency: Arc::new(LatencyView::default()),
            local_latency: None,
            peer_latency: Vec::new(),
            uniform: None,
        }
    }

    pub(super) fn health(config: &Config, drained: &[&str]) -> HealthView {
        let mut drains = Drains::default();
        for z in drained {
            drains.set_zone(z, true);
        }
        HealthView::build(config, &HashMap::new(), &drains)
    }

    pub(super) fn client(s: &str) -> Client {
        parse_client(s)
    }

    fn parse_client(s: &str) -> Client {
        match s.parse::<IpNet>() {
            Ok(n) => Client {
                addr: n.addr(),
                source_prefix: n.prefix_len(),
            },
            Err(_) => Client::from_source(s.parse().unwrap()),
        }
    }

    /// Asks `memo` for `who` (service 0, in `snapshot`), checks that it
    /// decides as [`route`] does (`what` names the case in a failure), and
    /// gives `route`'s decision.
    pub(super) fn decides_as_route(
        memo: &mut super::memo::DecisionMemo,
        snapshot: u64,
        (c, h, r): (&Config, &HealthView, &Router),
        who: Client,
        what: &str,
    ) -> Decision {
        let fresh = route(c, h, r, 0, who);
        let got = memo.decide(snapshot, c, h, r, 0, who);
        assert_eq!(&*got.endpoints, fresh.endpoints.as_slice(), "{what}");
        assert_eq!(got.scope, fresh.scope, "{what}");
        assert_eq!(got.is_all_down, fresh.is_all_down, "{what}");
        fresh
    }

    pub(super) fn zones(config: &Config, d: &Decision) -> Vec<String> {
        d.endpoints
            .iter()
            .map(|e| {
                config.zones[config.services[0].endpoints[*e].zone]
                    .name
                    .clone()
            })
            .collect()
    }

    #[test]
    fn failover_takes_the_first_serving_zone_in_order() {
        let c = config(&service("failover", "", [1, 1, 1]).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\norder = [\"b\", \"a\", \"c\"]",
        ));
        let r = router(&c);
        let d = route(&c, &health(&c, &[]), &r, 0, client("198.51.100.7"));
        assert_eq!(zones(&c, &d), ["b"]);
        assert_eq!(d.scope, 0, "failover does not depend on the client");
        let d = route(&c, &health(&c, &["b"]), &r, 0, client("198.51.100.7"));
        assert_eq!(zones(&c, &d), ["a"]);
    }

    #[test]
    fn every_zone_drained_means_all_down() {
        let c = config(&service("nearest", "", [1, 1, 1]));
        let d = route(
            &c,
            &health(&c, &["a", "b", "c"]),
            &router(&c),
            0,
            client("198.51.100.7"),
        );
        assert!(d.is_all_down);
        assert_eq!(
            d.endpoints,
            [0, 1, 2],
            "fail-open answers with every endpoint"
        );
    }

    #[test]
    fn cidr_rules_override_and_scope_to_their_network() {
        let rules = "[[cidr_rules]]\nnetworks = [\"10.0.0.0/8\"]\nzones = [\"c\"]\n\
                     [[cidr_rules]]\nnetworks = [\"10.1.0.0/16\"]\nzones = [\"b\"]\n";
        let c = config(&service("nearest", rules, [1, 1, 1]));
        let r = router(&c);
        let h = health(&c, &[]);
        let d = route(&c, &h, &r, 0, client("10.2.3.0/24"));
        assert_eq!(zones(&c, &d), ["c"]);
        // 10.0.0.0/8 holds the more specific 10.1.0.0/16: the widest prefix
        // around 10.2.3.0 that excludes it is 10.2.0.0/15.
        assert_eq!(d.scope, 15);
        let d = route(&c, &h, &r, 0, client("10.1.3.0/24"));
        assert_eq!(zones(&c, &d), ["b"]);
        assert_eq!(d.scope, 16);
        // A client known only to a /12 cannot claim the /16 rule.
        let d = route(&c, &h, &r, 0, client("10.0.0.0/12"));
        assert_eq!(zones(&c, &d), ["c"]);
        assert_eq!(d.scope, 12, "never wider than the source prefix");
        // Drained rule zone: next in the rule's list, then the rest.
        let d = route(&c, &health(&c, &["b"]), &r, 0, client("10.1.3.0/24"));
        assert_eq!(zones(&c, &d), ["a"]);
    }

    #[test]
    fn weighted_splits_by_weight_and_is_stable_per_prefix() {
        let c = config(&service("weighted", "", [70, 20, 10]));
        let r = router(&c);
        let h = health(&c, &[]);
        let mut counts = [0usize; 3];
        let n = 20_000;
        for i in 0..n {
            let addr = std::net::Ipv4Addr::from(0x0A00_0000u32 + (i << 8));
            let d = route(&c, &h, &r, 0, Client::from_source(IpAddr::V4(addr)));
            assert_eq!(d.scope, 24);
            counts[d.endpoints[0]] += 1;
            // Same /24, same answer.
            let again = route(
                &c,
                &h,
                &r,
                0,
                Client::from_source(IpAddr::V4(std::net::Ipv4Addr::from(u32::from(addr) + 77))),
            );
            assert_eq!(again.endpoints, d.endpoints);
        }
        let shares: Vec<f64> = counts.iter().map(|c| *c as f64 / n as f64).collect();
        for (share, want) in shares.iter().zip([0.7, 0.2, 0.1]) {
            // 20k samples: the standard error is under 0.004; allow 5 of them.
            assert!((share - want).abs() < 0.02, "{shares:?}");
        }
        // Draining the heavy zone moves only its prefixes.
        let drained = health(&c, &["a"]);
        for i in 0..2000u32 {
            let cl = Client::from_source(IpAddr::V4(std::net::Ipv4Addr::from(
                0x0A00_0000u32 + (i << 8),
            )));
            let before = route(&c, &h, &r, 0, cl).endpoints[0];
            let after = route(&c, &drained, &r, 0, cl).endpoints[0];
            if before != 0 {
                assert_eq!(
                    before, after,
                    "a prefix not on the drained zone kept its zone"
                );
            }
        }
    }

    #[test]
    fn latency_policy_follows_measurements_and_falls_back() {
        let c = config(&service("latency", "", [1, 1, 1]));
        let mut table = latency::LatencyTable::default();
        let now = std::time::Instant::now();
        let p: IpNet = "203.0.113.0/24".parse().unwrap();
        table.push(p, 2, 15.0, now);
        table.push(p, 0, 90.0, now);
        let mut r = router(&c);
        r.latency = Arc::new(table.view(0.2, 5.0));
        let h = health(&c, &[]);
        let d = route(&c, &h, &r, 0, client("203.0.113.9"));
        assert_eq!(zones(&c, &d), ["c"]);
        assert_eq!(d.scope, 24);
        assert!(matches!(d.basis, Basis::Latency { .. }));
        let d = route(&c, &h, &r, 0, client("198.51.100.1"));
        assert!(matches!(d.basis, Basis::Unlocated { .. }), "{:?}", d.basis);
        // The answer holds for 192.0.0.0/5, which excludes the measured
        // 203.0.113.0/24 (198 = 11000110, 203 = 11001011).
        assert_eq!(d.scope, 5);
        // The measured zone drained: the next measured one.
        let d = route(&c, &health(&c, &["c"]), &r, 0, client("203.0.113.9"));
        assert_eq!(zones(&c, &d), ["a"]);
    }

    #[test]
    fn latency_policy_uses_local_probes_for_clients_in_this_country() {
        let c = config(
            &service("latency", "[routing]\nthis_zone = \"b\"\n", [1, 1, 1]).replace(
                "name = \"b\"\nlatitude = 50.0",
                "name = \"b\"\ncountry = \"NL\"\nlatitude = 50.0",
            ),
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/default.mmdb");
        let mut r = router(&c);
        r.geo = Some(Arc::new(GeoDb::open(&[path]).unwrap()));
        r.local_latency = Some(latency::Ranking {
            zones: vec![(2, 3.0), (0, 9.0)],
        });
        let h = health(&c, &[]);
        // 193.0.0.1 is in the Netherlands, this node's country: its probe
        // RTTs rank c, then a; b, unmeasured, comes last.
        let d = route(&c, &h, &r, 0, client("193.0.0.1"));
        assert_eq!(d.basis, Basis::LocalLatency);
        assert_eq!(d.ranked, [2, 0, 1]);
        let geo = r.geo.as_ref().unwrap().lookup(client("193.0.0.1").addr);
        assert_eq!(d.scope, geo.network.prefix_len());
        // A client elsewhere is routed by distance.
        let d = route(&c, &h, &r, 0, client("8.8.8.8"));
        assert!(matches!(d.basis, Basis::Geo { .. }), "{:?}", d.basis);
        assert_eq!(zones(&c, &d), ["a"]);
        // Measurements pushed for the client's prefix come first.
        let mut table = latency::LatencyTable::default();
        table.push(
            "193.0.0.0/24".parse().unwrap(),
            1,
            4.0,
            std::time::Instant::now(),
        );
        r.latency = Arc::new(table.view(0.2, 5.0));
        let d = route(&c, &h, &r, 0, client("193.0.0.1"));
        assert!(matches!(d.basis, Basis::Latency { .. }), "{:?}", d.basis);
        assert_eq!(zones(&c, &d), ["b"]);
    }

    #[test]
    fn latency_policy_uses_a_peers_probes_for_clients_in_the_peers_country() {
        // This node runs in b (NL); a peer runs in a (US).
        let c = config(
            &service("latency", "[routing]\nthis_zone = \"b\"\n", [1, 1, 1])
                .replace(
                    "name = \"b\"\nlatitude = 50.0",
                    "name = \"b\"\ncountry = \"NL\"\nlatitude = 50.0",
                )
                .replace(
                    "name = \"a\"\nlatitude",
                    "name = \"a\"\ncountry = \"US\"\nlatitude",
                ),
        );
        assert_eq!(c.zones[0].country.as_deref(), Some("US"), "fixture");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/default.mmdb");
        let mut r = router(&c);
        r.geo = Some(Arc::new(GeoDb::open(&[path]).unwrap()));
        r.local_latency = Some(latency::Ranking {
            zones: vec![(2, 3.0), (0, 9.0)],
        });
        r.peer_latency = vec![(
            0,
            latency::Ranking {
                zones: vec![(1, 2.0), (2, 7.0)],
            },
        )];
        let h = health(&c, &[]);
        // 8.8.8.8 is in the US: the peer in a measured b, then c.
        let d = route(&c, &h, &r, 0, client("8.8.8.8"));
        assert_eq!(d.basis, Basis::LocalLatency);
        assert_eq!(d.ranked, [1, 2, 0]);
        // The Netherlands is this node's own country: its own RTTs.
        let d = route(&c, &h, &r, 0, client("193.0.0.1"));
        assert_eq!(d.ranked, [2, 0, 1]);
        // Without the peer's ranking, a US client is routed by distance.
        r.peer_latency.clear();
        let d = route(&c, &h, &r, 0, client("8.8.8.8"));
        assert!(matches!(d.basis, Basis::Geo { .. }), "{:?}", d.basis);
    }

    #[test]
    fn answers_limits_the_zone_count_and_all_ignores_it() {
        let c = config(&service("failover", "", [1, 1, 1]).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\nanswers = 2\norder = [\"c\", \"b\", \"a\"]",
        ));
        let d = route(&c, &health(&c, &[]), &router(&c), 0, client("198.51.100.7"));
        assert_eq!(zones(&c, &d), ["c", "b"]);
        let c = config(&service("all", "", [1, 1, 1]));
        let d = route(
            &c,
            &health(&c, &["b"]),
            &router(&c),
            0,
            client("198.51.100.7"),
        );
        assert_eq!(zones(&c, &d), ["a", "c"]);
    }

    #[test]
    fn distance_is_great_circle() {
        let loc = Location {
            latitude: 51.5,
            longitude: -0.1,
            country: None,
            continent: None,
            region: None,
            city: None,
        };
        let nyc = crate::config::Zone {
            name: "nyc".into(),
            latitude: 40.7,
            longitude: -74.0,
            continent: None,
            country: None,
            region: None,
        };
        let d = distance_km(&loc, &nyc);
        assert!(
            (5550.0..5600.0).contains(&d),
            "London-New York is about 5570 km, got {d}"
        );
    }
}
