//! The weighted policy's rendezvous hashing: stable across processes,
//! versions and nodes, so every node sends a client prefix to the same
//! zone, and a prefix moves only when its zone goes. The same hashing
//! splits a zone's traffic between the endpoints it holds (blue/green),
//! under every policy.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Config, Endpoint};

/// Weighted rendezvous hashing over zones: each zone scores
/// `-ln(u) / weight` with `u` a hash of (prefix, service, zone) and
/// `weight` the sum of its endpoints' weights, lowest first. A prefix keeps
/// its zone when other zones come and go, and over many prefixes the first
/// choices split by weight.
/// Appends every endpoint to `order`, zone by zone (a zone's endpoints in
/// config order; [`endpoint_score`] orders them later); `name` and
/// `scored` are buffers, reused so that no call allocates once they have
/// grown.
pub fn weighted_order(
    config: &Config,
    service: usize,
    network: IpNet,
    (name, scored, order): (&mut String, &mut Vec<(f64, usize)>, &mut Vec<usize>),
) {
    use std::fmt::Write;
    let svc = &config.services[service];
    name.clear();
    write!(name, "{}", svc.name).expect("writing to a string");
    scored.clear();
    let endpoints = &svc.endpoints;
    // One score per zone, under the index of its first endpoint.
    scored.extend(
        endpoints
            .iter()
            .enumerate()
            .filter(|(e, ep)| !endpoints[..*e].iter().any(|o| o.zone == ep.zone))
            .map(|(e, ep)| {
                let weight: u64 = endpoints
                    .iter()
                    .filter(|o| o.zone == ep.zone)
                    .map(|o| u64::from(o.weight))
                    .sum();
                let h = stable_hash(network, &[name, &config.zones[ep.zone].name]);
                (score(h, weight as f64), e)
            }),
    );
    // Indices are distinct: the order is total, so unstable sorting (no
    // allocation) orders as a stable sort would.
    scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, first) in scored.iter() {
        let zone = endpoints[*first].zone;
        order.extend((*first..endpoints.len()).filter(|e| endpoints[*e].zone == zone));
    }
}

/// The hash of a client prefix that [`endpoint_score`] mixes with each
/// endpoint's key: computed once per decision.
pub fn prefix_hash(network: IpNet) -> u64 {
    stable_hash(network, &[])
}

/// The rendezvous score of `endpoint` among its zone's endpoints for the
/// client prefix hashed to `prefix` ([`prefix_hash`]): the lowest score
/// takes the prefix, so a prefix moves only when its endpoint goes, and the
/// first choices split by weight. The endpoint's side is its `split_key`
/// (a digest of service, zone and endpoint names), so reordering the config
/// moves nobody, and a decision hashes no names.
pub fn endpoint_score(endpoint: &Endpoint, prefix: u64) -> f64 {
    score(
        finalize(prefix ^ endpoint.split_key),
        f64::from(endpoint.weight),
    )
}

/// `-ln(u) / weight` for a hash mapped to `u` in (0, 1]; weight 0 scores
/// infinity (last, a standby).
fn score(h: u64, weight: f64) -> f64 {
    // Map to (0, 1]; never 0 so ln is finite.
    let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    if weight == 0.0 {
        f64::INFINITY
    } else {
        -u.ln() / weight
    }
}

/// FNV-1a then a 64-bit finalizer: stable across processes and versions,
/// so every node of the domain sends a prefix to the same zone.
/// `parts` are fed with a 0 byte between them (service, zone: the bytes
/// the weighted policy has always hashed, so upgrades move no prefix).
fn stable_hash(network: IpNet, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match network.network() {
        IpAddr::V4(a) => feed(&a.octets()),
        IpAddr::V6(a) => feed(&a.octets()),
    }
    feed(&[network.prefix_len(), 0]);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            feed(&[0]);
        }
        feed(part.as_bytes());
    }
    finalize(h)
}

/// A 64-bit finalizer: every input bit moves every output bit.
fn finalize(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
