//! Test fixtures for the answer paths: the shipped example domain with a
//! service for every policy and all-down rule, static records of several
//! types, wildcards (a service, records, a CNAME), a service whose zones
//! hold several endpoints (blue/green), and a CIDR rule, built into a
//! snapshot with chosen zones or endpoints drained.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::config::Config;
use crate::health::drains::Drains;
use crate::health::state::Observed;
use crate::health::{AddressKey, HealthView};
use crate::routing::geo::GeoDb;
use crate::snapshot::Snapshot;

/// Services beside the example's `www`, for every policy and all-down rule.
pub const EXTRA_SERVICES: &str = r#"
[[services]]
name = "api"
policy = "failover"
order = ["eu-west", "us-east", "ap-south"]
all_down = "fallback"
fallback = ["192.0.2.99", "2001:db8::99"]
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.20", "192.0.2.21"]
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.20"]
[[services.endpoints]]
zone = "ap-south"
addresses = ["2001:db8:3::20"]

[[services]]
name = "split.apps"
policy = "weighted"
answers = 2
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.30"]
weight = 5
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.30", "2001:db8:2::30"]
weight = 3
[[services.endpoints]]
zone = "ap-south"
addresses = ["203.0.113.30"]
weight = 2

[[services]]
name = "every"
policy = "all"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.40", "2001:db8:1::40"]
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.40"]

[[records]]
name = "static"
type = "A"
data = "192.0.2.50"
[[records]]
name = "static"
type = "TXT"
data = "a static name"
[[records]]
name = "deep.empty.nonterminal"
type = "AAAA"
data = "2001:db8::50"

[[services]]
name = "*.apps"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.60", "2001:db8:1::60"]
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.60"]

[[records]]
name = "*.wild"
type = "TXT"
data = "from the wildcard"
[[records]]
name = "*.wild"
type = "MX"
data = "10 mail"
[[records]]
name = "real.wild"
type = "A"
data = "192.0.2.61"
[[records]]
name = "*.wild-alias"
type = "CNAME"
data = "www"

[[services]]
name = "bg"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
name = "blue"
weight = 90
addresses = ["192.0.2.70", "2001:db8:1::70"]
[[services.endpoints]]
zone = "us-east"
name = "green"
weight = 10
addresses = ["192.0.2.71"]
[[services.endpoints]]
zone = "eu-west"
name = "blue"
addresses = ["198.51.100.70"]
[[services.endpoints]]
zone = "eu-west"
name = "green"
addresses = ["198.51.100.71", "2001:db8:2::71"]
[[services.endpoints]]
zone = "ap-south"
addresses = ["203.0.113.70"]

[[cidr_rules]]
networks = ["10.20.30.128/25"]
zones = ["ap-south"]
"#;

pub fn config(extra: &str) -> Arc<Config> {
    let config = Config::parse(&example_text(EXTRA_SERVICES, extra), Path::new(EXAMPLE));
    Arc::new(config.unwrap_or_else(|e| panic!("{e}")))
}

/// The example with `services` and `extra` after it, read as a reload
/// reads it after `previous` (unchanged services taken from it).
pub fn config_read_after(services: &str, extra: &str, previous: Option<&Config>) -> Arc<Config> {
    let config = Config::parse_after(&example_text(services, extra), Path::new(EXAMPLE), previous);
    Arc::new(config.unwrap_or_else(|e| panic!("{e}")))
}

const EXAMPLE: &str = "zones/example.toml";

fn example_text(services: &str, extra: &str) -> String {
    let text = std::fs::read_to_string(EXAMPLE).expect("example config");
    format!("{text}\n{services}\n{extra}")
}

pub fn snapshot(config: Arc<Config>, drained: &[&str]) -> Snapshot {
    snapshot_observed(config, &HashMap::new(), drained)
}

/// A snapshot with named endpoints drained: `(service, zone, endpoint)`.
pub fn snapshot_endpoints_drained(config: Arc<Config>, drained: &[(&str, &str, &str)]) -> Snapshot {
    let mut drains = Drains::default();
    for (service, zone, endpoint) in drained {
        let name = &config.services[config.service_index(service).expect("a service")].name;
        drains.set_named_endpoint(name, zone, Some(endpoint), true);
    }
    with_drains(config, &HashMap::new(), drains)
}

/// A snapshot with the probes' view of some addresses (the rest unknown,
/// which counts as usable) and some zones drained.
pub fn snapshot_observed(
    config: Arc<Config>,
    observed: &HashMap<AddressKey, Observed>,
    drained: &[&str],
) -> Snapshot {
    let mut drains = Drains::default();
    for zone in drained {
        drains.set_zone(zone, true);
    }
    with_drains(config, observed, drains)
}

fn with_drains(
    config: Arc<Config>,
    observed: &HashMap<AddressKey, Observed>,
    drains: Drains,
) -> Snapshot {
    crate::snapshot::build(inputs(config, observed, drains))
}

/// For `config` with these observations and no drains, a snapshot built
/// after `previous` (sharing what it can) and one built afresh.
pub fn built_after_and_afresh(
    previous: &Snapshot,
    config: Arc<Config>,
    observed: &HashMap<AddressKey, Observed>,
) -> (Snapshot, Snapshot) {
    let after = inputs(config.clone(), observed, Drains::default());
    let afresh = inputs(config, observed, Drains::default());
    (
        crate::snapshot::build_after(after, Some(previous)),
        crate::snapshot::build(afresh),
    )
}

fn inputs(
    config: Arc<Config>,
    observed: &HashMap<AddressKey, Observed>,
    drains: Drains,
) -> crate::snapshot::Inputs {
    let geo = config
        .geoip
        .as_ref()
        .map(|g| Arc::new(GeoDb::open(&g.files).expect("shipped GeoIP database")));
    let counters = crate::snapshot::detached_counters(&config);
    let initial = Snapshot::initial(config.clone(), drains.clone(), geo, counters);
    // Rebuild with these observations and the drains in the health view.
    crate::snapshot::Inputs {
        health: HealthView::build(&config, observed, &drains),
        config,
        drains,
        router: initial.router,
        cluster: Default::default(),
        answer_counters: initial.answer_counters,
        generation: 1,
        signature_cache: initial.signature_cache,
    }
}

/// A query for `name` and `qtype` with RD set, and with an OPT record of
/// payload 1232 when `edns` is true.
pub fn query(name: &str, qtype: RecordType, edns: bool) -> Message {
    let mut message = Message::query();
    message.metadata.id = 0x4d52;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        message.set_edns(opt);
    }
    message
}
