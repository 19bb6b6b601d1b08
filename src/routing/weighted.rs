//! The weighted policy's rendezvous hashing: stable across processes,
//! versions and nodes, so every node sends a client prefix to the same
//! zone, and a prefix moves only when its zone goes.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;

/// Weighted rendezvous hashing: each endpoint scores
/// `-ln(u) / weight` with `u` a hash of (prefix, service, zone), lowest
/// first. A prefix keeps its zone when other zones come and go, and over
/// many prefixes the first choices split by weight.
/// Appends the order to `order`; `name` and `scored` are buffers, reused
/// so that no call allocates once they have grown.
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
    scored.extend(svc.endpoints.iter().enumerate().map(|(e, ep)| {
        let h = stable_hash(network, name, &config.zones[ep.zone].name);
        // Map to (0, 1]; never 0 so ln is finite.
        let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let score = if ep.weight == 0 {
            f64::INFINITY
        } else {
            -u.ln() / f64::from(ep.weight)
        };
        (score, e)
    }));
    // Indices are distinct: the order is total, so unstable sorting (no
    // allocation) orders as a stable sort would.
    scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    order.extend(scored.iter().map(|(_, e)| *e));
}

/// FNV-1a then a 64-bit finalizer: stable across processes and versions,
/// so every node of the domain sends a prefix to the same zone.
fn stable_hash(network: IpNet, service: &str, zone: &str) -> u64 {
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
    feed(service.as_bytes());
    feed(&[0]);
    feed(zone.as_bytes());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
