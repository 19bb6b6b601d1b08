//! Blue/green inside one zone: when a zone holds several of a service's
//! endpoints, the zone is chosen first (by the service's policy, as if it
//! held one), then one of its endpoints by weight, stably per client
//! prefix.
//!
//! The in-zone choice is rendezvous hashing of the same prefix the
//! weighted policy hashes (the client's /24 or /56, or its source prefix
//! when shorter), so a prefix keeps its endpoint while it serves, and a
//! drained or down endpoint's prefixes go to their next sibling in the
//! zone and come back when it returns. Because the choice depends on that
//! prefix, a decision that used it carries an ECS scope no wider than it.
//!
//! Nothing here allocates once the workspace's buffers have grown: the
//! answer path's memo calls it on every miss.

use std::net::IpAddr;

use ipnet::IpNet;

use super::weighted::{endpoint_score, prefix_hash};
use super::{Client, Workspace};
use crate::config::Config;
use crate::health::HealthView;

/// The prefix a client is hashed by: its /24 (IPv6 /56), or its source
/// prefix when that is shorter.
pub fn hashed_network(client: Client) -> IpNet {
    let len = client.source_prefix.min(match client.addr {
        IpAddr::V4(_) => 24,
        IpAddr::V6(_) => 56,
    });
    IpNet::new(client.addr, len).expect("length fits").trunc()
}

/// Reorders `workspace.order` (every endpoint, zones in preference order)
/// so each zone's endpoints sit together where the zone first appears,
/// in the order the client's prefix hashes them to: the first serving one
/// is the zone's answer. Services without a shared zone are left alone.
pub fn split_zones(config: &Config, service: usize, client: Client, workspace: &mut Workspace) {
    let svc = &config.services[service];
    if !svc.has_splits() {
        return;
    }
    let prefix = prefix_hash(hashed_network(client));
    let Workspace { order, split, .. } = workspace;
    split.clear();
    for (i, &e) in order.iter().enumerate() {
        let ep = &svc.endpoints[e];
        let zone_rank = order[..i]
            .iter()
            .position(|o| svc.endpoints[*o].zone == ep.zone)
            .unwrap_or(i);
        let score = if svc.is_split(ep.zone) {
            endpoint_score(ep, prefix)
        } else {
            0.0
        };
        split.push((zone_rank, score, e));
    }
    // Endpoint indices are distinct: the order is total, so the unstable
    // sort (which never allocates) gives the stable sort's order.
    split.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    order.clear();
    order.extend(split.iter().map(|(_, _, e)| *e));
}

/// The ECS scope of a decision whose zone-level scope is `scope`: no wider
/// than the hashed prefix when a chosen endpoint was picked by the hash,
/// that is when its zone has at least two serving endpoints of positive
/// weight (another prefix inside a wider scope may hash to the other).
/// With one left serving (the rest drained, down or weight-0 standbys)
/// every prefix gets it, and the zone-level scope stands. Fail-open and
/// fallback answers do not depend on it.
pub fn scope(
    config: &Config,
    health: &HealthView,
    (service, client): (usize, Client),
    scope: u8,
    chosen: &[usize],
    is_all_down: bool,
) -> u8 {
    let svc = &config.services[service];
    let views = &health.endpoints[service];
    let hashed = |zone: usize| {
        (0..svc.endpoints.len())
            .filter(|e| {
                let ep = &svc.endpoints[*e];
                ep.zone == zone && ep.weight > 0 && views.get(*e).is_none_or(|v| v.is_serving())
            })
            .nth(1)
            .is_some()
    };
    if is_all_down || !chosen.iter().any(|e| hashed(svc.endpoints[*e].zone)) {
        return scope;
    }
    scope.max(hashed_network(client).prefix_len())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{client, config, health, router};
    use super::super::{Client, route};
    use crate::health::HealthView;
    use crate::health::drains::Drains;
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Zone a holds blue (weight `blue`) and green (weight `green`); zone
    /// b holds one unnamed endpoint.
    fn blue_green(policy: &str, blue: u32, green: u32) -> String {
        format!(
            r#"
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
[[services]]
name = "www"
policy = "{policy}"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "a"
name = "blue"
addresses = ["192.0.2.1"]
weight = {blue}
[[services.endpoints]]
zone = "b"
addresses = ["192.0.2.2"]
[[services.endpoints]]
zone = "a"
name = "green"
addresses = ["192.0.2.3"]
weight = {green}
"#
        )
    }

    fn v4(i: u32) -> Client {
        Client::from_source(IpAddr::V4(Ipv4Addr::from(0x0A00_0000u32 + (i << 8))))
    }

    fn drained_endpoint(c: &crate::config::Config, name: &str) -> HealthView {
        let mut drains = Drains::default();
        drains.set_named_endpoint(&c.services[0].name, "a", Some(name), true);
        HealthView::build(c, &HashMap::new(), &drains)
    }

    #[test]
    fn a_zone_splits_by_weight_stably_per_prefix_under_every_policy() {
        for policy in ["failover", "all", "nearest", "latency", "weighted"] {
            let text = blue_green(policy, 90, 10).replace(
                "policy = \"failover\"",
                "policy = \"failover\"\norder = [\"a\", \"b\"]",
            );
            let c = config(&text);
            let (r, h) = (router(&c), health(&c, &[]));
            let mut counts = [0usize; 3];
            let mut in_a = 0;
            let n = 20_000;
            for i in 0..n {
                let d = route(&c, &h, &r, 0, v4(i));
                let first = d.endpoints[0];
                if c.services[0].endpoints[first].zone != 0 {
                    continue;
                }
                in_a += 1;
                counts[first] += 1;
                assert_eq!(
                    d.scope, 24,
                    "{policy}: a split answer is scoped to the hashed /24"
                );
                // Another address of the same /24: the same endpoint.
                let same = Client::from_source(IpAddr::V4(Ipv4Addr::from(
                    0x0A00_0000u32 + (i << 8) + 200,
                )));
                assert_eq!(
                    route(&c, &h, &r, 0, same).endpoints,
                    d.endpoints,
                    "{policy}"
                );
            }
            assert!(
                in_a > n as usize / 3,
                "{policy}: zone a is chosen for many prefixes"
            );
            let blue = counts[0] as f64 / in_a as f64;
            // 90/10 over thousands of prefixes: a standard error under 0.005.
            assert!((blue - 0.9).abs() < 0.02, "{policy}: blue's share {blue}");
            assert_eq!(counts[0] + counts[2], in_a, "{policy}: one answer per zone");
        }
    }

    #[test]
    fn ipv6_clients_are_split_by_their_56() {
        let c = config(&blue_green("failover", 1, 1).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\norder = [\"a\", \"b\"]",
        ));
        let (r, h) = (router(&c), health(&c, &[]));
        let mut seen = [false; 3];
        for i in 0..64u128 {
            let base = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + (i << 72);
            let d = route(
                &c,
                &h,
                &r,
                0,
                Client::from_source(IpAddr::V6(Ipv6Addr::from(base))),
            );
            let other = Ipv6Addr::from(base + (0xffu128 << 64) + 1);
            let again = route(&c, &h, &r, 0, Client::from_source(IpAddr::V6(other)));
            assert_eq!(d.endpoints, again.endpoints, "the same /56");
            assert_eq!(d.scope, 56);
            seen[d.endpoints[0]] = true;
        }
        assert!(seen[0] && seen[2], "both endpoints take some /56s");
    }

    #[test]
    fn a_shorter_source_prefix_is_hashed_whole_and_bounds_the_scope() {
        let c = config(&blue_green("failover", 1, 1).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\norder = [\"a\", \"b\"]",
        ));
        let (r, h) = (router(&c), health(&c, &[]));
        let d = route(&c, &h, &r, 0, client("10.20.0.0/16"));
        assert_eq!(d.scope, 16);
        let whole = route(&c, &h, &r, 0, client("10.20.0.0/16"));
        assert_eq!(d.endpoints, whole.endpoints);
    }

    #[test]
    fn a_drained_or_down_endpoints_share_goes_to_its_sibling_and_comes_back() {
        let c = config(&blue_green("failover", 50, 50).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\norder = [\"a\", \"b\"]",
        ));
        let (r, h) = (router(&c), health(&c, &[]));
        let drained = drained_endpoint(&c, "blue");
        let mut down = health(&c, &[]);
        down.endpoints[0][0].is_up = false;
        let mut moved = 0;
        for i in 0..2000 {
            let before = route(&c, &h, &r, 0, v4(i)).endpoints;
            for view in [&drained, &down] {
                let after = route(&c, view, &r, 0, v4(i));
                assert_eq!(
                    after.endpoints,
                    [2],
                    "green takes all of zone a, never zone b"
                );
                assert_eq!(
                    after.scope, 0,
                    "no split left: the answer holds for everyone"
                );
            }
            if before == [0] {
                moved += 1;
            } else {
                assert_eq!(before, [2]);
            }
        }
        assert!(moved > 800, "about half the prefixes were blue's: {moved}");
        // Both siblings out: the zone is down and the next zone answers.
        let mut both = drained_endpoint(&c, "blue");
        both.endpoints[0][2].is_drained = true;
        let d = route(&c, &both, &r, 0, v4(1));
        assert_eq!(d.endpoints, [1]);
        assert!(!d.is_all_down);
    }

    #[test]
    fn a_prefix_not_on_a_drained_endpoint_keeps_its_endpoint() {
        let text = blue_green("failover", 1, 1)
            .replace(
                "policy = \"failover\"",
                "policy = \"failover\"\norder = [\"a\", \"b\"]",
            )
            .replace(
                "[[services.endpoints]]\nzone = \"b\"",
                "[[services.endpoints]]\nzone = \"a\"\nname = \"teal\"\naddresses = [\"192.0.2.4\"]\n\
                 [[services.endpoints]]\nzone = \"b\"",
            );
        let c = config(&text);
        let (r, h) = (router(&c), health(&c, &[]));
        let drained = drained_endpoint(&c, "blue");
        let mut counts = [0usize; 4];
        for i in 0..3000 {
            let before = route(&c, &h, &r, 0, v4(i)).endpoints[0];
            let after = route(&c, &drained, &r, 0, v4(i)).endpoints[0];
            counts[before] += 1;
            if before != 0 {
                assert_eq!(before, after, "only blue's prefixes move");
            } else {
                assert_ne!(after, 0);
            }
        }
        assert!(
            counts.iter().filter(|n| **n > 800).count() == 3,
            "{counts:?}"
        );
    }

    #[test]
    fn the_weighted_policy_weighs_a_zone_by_its_endpoints_sum() {
        // a: 30 + 30 = 60; b: 1 (the default weight) ... make b 40.
        let c = config(&blue_green("weighted", 30, 30).replace(
            "addresses = [\"192.0.2.2\"]",
            "addresses = [\"192.0.2.2\"]\nweight = 40",
        ));
        let (r, h) = (router(&c), health(&c, &[]));
        let n = 20_000;
        let in_a = (0..n)
            .filter(|i| {
                c.services[0].endpoints[route(&c, &h, &r, 0, v4(*i)).endpoints[0]].zone == 0
            })
            .count();
        let share = in_a as f64 / n as f64;
        assert!((share - 0.6).abs() < 0.02, "zone a's share {share}");
    }

    #[test]
    fn a_weight_0_standby_takes_over_only_when_its_sibling_goes() {
        let c = config(&blue_green("failover", 10, 0).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\norder = [\"a\", \"b\"]",
        ));
        let (r, h) = (router(&c), health(&c, &[]));
        let drained = drained_endpoint(&c, "blue");
        for i in 0..500 {
            let d = route(&c, &h, &r, 0, v4(i));
            assert_eq!(d.endpoints, [0], "green is a standby");
            assert_eq!(d.scope, 0, "blue for everyone: the answer holds for all");
            assert_eq!(route(&c, &drained, &r, 0, v4(i)).endpoints, [2]);
        }
    }

    #[test]
    fn a_zone_with_one_endpoint_keeps_its_wide_scope() {
        let c = config(&blue_green("failover", 1, 1).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\norder = [\"b\", \"a\"]",
        ));
        let d = route(&c, &health(&c, &[]), &router(&c), 0, v4(3));
        assert_eq!(d.endpoints, [1]);
        assert_eq!(
            d.scope, 0,
            "zone b is not split: the answer is the same for all"
        );
    }
}
