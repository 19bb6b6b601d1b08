//! The domain's names and record sets, laid out for lookup.
//!
//! Built once per snapshot from the config, never changed afterwards, so
//! the answer path can read it without a lock. Every ancestor of a name that
//! holds data is present (possibly empty) so "exists but has no data" (an
//! empty non-terminal, NODATA) and "does not exist" (NXDOMAIN) are told
//! apart with one hash lookup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, NS, NULL, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::config::{AllDown, Config, Service};
use crate::health::{EndpointView, HealthView};

/// All records at one name.
#[derive(Debug, Default, Clone)]
pub struct Node {
    /// Record sets by type, in the order they were configured.
    rrsets: Vec<RrSet>,
    /// NS records here (not at the apex): a delegation to a child zone.
    is_delegation: bool,
    /// A service lives here; its A/AAAA sets are the endpoints' addresses.
    service: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct RrSet {
    pub record_type: RecordType,
    pub records: Vec<Record>,
}

impl Node {
    /// Every record set here, in configured order.
    pub fn rrsets(&self) -> &[RrSet] {
        &self.rrsets
    }

    pub fn rrset(&self, record_type: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.record_type == record_type)
    }

    /// No data here at all: an empty non-terminal.
    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty() && self.service.is_none()
    }

    pub fn is_delegation(&self) -> bool {
        self.is_delegation
    }

    pub fn cname(&self) -> Option<&Name> {
        match self.rrset(RecordType::CNAME)?.records.first()?.data {
            RData::CNAME(ref c) => Some(&c.0),
            _ => None,
        }
    }

    /// Index into the config's services, when this name is a service.
    pub fn service(&self) -> Option<usize> {
        self.service
    }

    fn push(&mut self, record: Record) {
        let record_type = record.record_type();
        match self
            .rrsets
            .iter_mut()
            .find(|s| s.record_type == record_type)
        {
            Some(set) => {
                if !set.records.iter().any(|r| r.data == record.data) {
                    set.records.push(record);
                }
            }
            None => self.rrsets.push(RrSet {
                record_type,
                records: vec![record],
            }),
        }
    }
}

/// What a name resolves to inside the domain.
#[derive(Debug)]
pub enum Lookup<'t> {
    /// The name is not inside the domain.
    OutOfDomain,
    /// The name is at or below a delegation; the node holds the cut's NS set.
    Delegated { cut: &'t Node },
    /// The name exists; it may still have no data (an empty non-terminal).
    Found(&'t Node),
    /// The name does not exist, but a wildcard at its closest encloser
    /// covers it (RFC 4592 section 3.3.1): answer from the wildcard's node,
    /// with the query's name as owner.
    Wildcard(&'t Node),
    /// The name does not exist.
    NxDomain,
}

/// A service's addresses, ready for any routing decision: per endpoint
/// its usable addresses and all of them, by family, as slices of one
/// buffer. The records are written when answered (the general path
/// writes the owner as the client spelled it anyway): kept as records
/// (272 bytes each, in a vector of their own per set), the records of
/// 10,000 services were most of a snapshot build's memory and time.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecords {
    /// The owner of the records: the service's name.
    pub name: Name,
    pub ttl: u32,
    /// Every set's addresses, one set after another.
    addresses: Box<[IpAddr]>,
    /// Per endpoint, where its sets lie in `addresses`: A usable, A all,
    /// AAAA usable, AAAA all.
    endpoints: Box<[[(u32, u32); 4]]>,
    /// The all-down fallback's A and AAAA addresses, when configured.
    fallback: [(u32, u32); 2],
    /// No endpoint is serving at all in this snapshot.
    pub is_all_down: bool,
}

impl ServiceRecords {
    fn build(service: &Service, views: &[EndpointView]) -> ServiceRecords {
        let fallback = match &service.all_down {
            AllDown::Fallback(addrs) => addrs.as_slice(),
            AllDown::FailOpen => &[],
        };
        // Sized for the usual case, every address usable (each set of
        // usable addresses then is the set of all), so that the boxed
        // slice below is not copied again to shrink it.
        let per_endpoint: usize = service.endpoints.iter().map(|e| e.addresses.len()).sum();
        let mut addresses = Vec::with_capacity(per_endpoint + fallback.len());
        fn set(addresses: &mut Vec<IpAddr>, chosen: impl Iterator<Item = IpAddr>) -> (u32, u32) {
            let start = addresses.len() as u32;
            addresses.extend(chosen);
            (start, addresses.len() as u32)
        }
        let endpoints = service
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, endpoint)| {
                let usable = |i: usize| {
                    views
                        .get(e)
                        .and_then(|v| v.addresses.get(i))
                        .is_none_or(|o| o.is_usable())
                };
                let family = |v6: bool, healthy: bool| {
                    endpoint
                        .addresses
                        .iter()
                        .enumerate()
                        .filter(move |(i, a)| a.is_ipv6() == v6 && (!healthy || usable(*i)))
                        .map(|(_, a)| *a)
                };
                // Usually every address is usable: then the two sets are
                // one.
                let mut usable_and_all = |v6| {
                    let usable = set(&mut addresses, family(v6, true));
                    let all = if family(v6, false).count() == family(v6, true).count() {
                        usable
                    } else {
                        set(&mut addresses, family(v6, false))
                    };
                    [usable, all]
                };
                let [a, all_a] = usable_and_all(false);
                let [aaaa, all_aaaa] = usable_and_all(true);
                [a, all_a, aaaa, all_aaaa]
            })
            .collect();
        let fallback = [
            set(
                &mut addresses,
                fallback.iter().copied().filter(IpAddr::is_ipv4),
            ),
            set(
                &mut addresses,
                fallback.iter().copied().filter(IpAddr::is_ipv6),
            ),
        ];
        ServiceRecords {
            name: service.name.clone(),
            ttl: service.ttl,
            addresses: addresses.into_boxed_slice(),
            endpoints,
            fallback,
            is_all_down: (0..service.endpoints.len())
                .all(|e| views.get(e).is_some_and(|v| !v.is_serving())),
        }
    }

    /// How many endpoints the service has.
    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }

    /// One endpoint's addresses of one type; `healthy` selects the usable
    /// ones, else every one (fail-open). None for another type.
    pub fn addresses(&self, record_type: RecordType, endpoint: usize, healthy: bool) -> &[IpAddr] {
        let set = match record_type {
            RecordType::A => 0,
            RecordType::AAAA => 2,
            _ => return &[],
        } + usize::from(!healthy);
        self.endpoints
            .get(endpoint)
            .map_or(&[], |sets| self.slice(sets[set]))
    }

    /// The all-down fallback's addresses of one type.
    pub fn fallback(&self, record_type: RecordType) -> &[IpAddr] {
        match record_type {
            RecordType::A => self.slice(self.fallback[0]),
            RecordType::AAAA => self.slice(self.fallback[1]),
            _ => &[],
        }
    }

    /// The record answering with `addr`, owned by the service's name.
    pub fn record(&self, addr: IpAddr) -> Record {
        address_record(self.name.clone(), self.ttl, addr)
    }

    fn slice(&self, (start, end): (u32, u32)) -> &[IpAddr] {
        &self.addresses[start as usize..end as usize]
    }
}

#[derive(Debug)]
pub struct DomainTable {
    /// Per service, in config order; shared with the snapshots before
    /// and after for as long as the service and its health stay the
    /// same (see [`Unchanged`]).
    pub services: Vec<Arc<ServiceRecords>>,
    apex: LowerName,
    apex_labels: u8,
    soa: Record,
    negative_ttl: u32,
    /// Hashed with foldhash: every name is hashed once per snapshot build
    /// and once per general-path lookup. SipHash over each name's labels
    /// was about a quarter of `node_mut`'s cost at 10,000 services (10 M
    /// instructions a reload). Only the config adds keys, so a fast hash
    /// is no flooding risk.
    /// Shared with the previous snapshot's table when the names are the
    /// same (see [`Unchanged::names`]).
    nodes: Arc<NodeMap>,
    /// Some name is `*.something`: a missing name may be covered by it.
    has_wildcards: bool,
    /// The services' names alone, which `nodes` was made from by adding
    /// the domain's records: shared with the next build while the
    /// services keep their names (see [`Unchanged::service_names`]), so
    /// a reload that changes records starts from a copy of it rather than
    /// from 10,000 insertions.
    service_names: Arc<ServiceNames>,
}

type NodeMap = HashMap<LowerName, Node, foldhash::fast::RandomState>;

/// Each service's name as a node naming it, with its ancestors.
#[derive(Debug, Default)]
struct ServiceNames {
    nodes: NodeMap,
    has_wildcards: bool,
}

impl ServiceNames {
    fn build(config: &Config, apex_labels: u8) -> ServiceNames {
        let mut names = ServiceNames::default();
        names.nodes.reserve(config.services.len());
        for (index, service) in config.services.iter().enumerate() {
            names.has_wildcards |= service.name.is_wildcard();
            node_mut(&mut names.nodes, apex_labels, &service.name).service = Some(index);
        }
        names
    }
}

/// The node at `name` in `nodes`, made (with every ancestor below the
/// apex, which has `apex_labels` labels) if missing.
fn node_mut<'m>(nodes: &'m mut NodeMap, apex_labels: u8, name: &Name) -> &'m mut Node {
    // Ancestors up to the apex exist as (possibly empty) nodes.
    let mut ancestor = name.base_name();
    while ancestor.num_labels() > apex_labels {
        nodes.entry(LowerName::new(&ancestor)).or_default();
        ancestor = ancestor.base_name();
    }
    nodes.entry(LowerName::new(name)).or_default()
}

/// The previous table, and per service of the config being built the
/// index of the same service in it when that service's records come out
/// the same: its config entry is the very one the previous table was
/// built from and its health view is equal. Those records are shared,
/// not built again: at 10,000 services a reload or a health change
/// otherwise rebuilt some 60,000 records to change a handful.
#[derive(Debug, Clone, Copy)]
pub struct Unchanged<'p> {
    pub table: &'p DomainTable,
    pub services: &'p [Option<usize>],
    /// Every name is the same as in `table`, with the same data and the
    /// same service at the same index: the config outside the services
    /// was read from the same text, the services have the same names in
    /// the same order, and the domain is unsigned (its keys are read from
    /// files). The names' nodes are then shared too.
    pub names: bool,
    /// The services have the same names, as spelled, in the same order
    /// as in `table`: the build starts from `table`'s map of them.
    pub service_names: bool,
}

impl<'p> Unchanged<'p> {
    /// The index in the previous table of `service`, if unchanged.
    pub fn previous(&self, service: usize) -> Option<usize> {
        *self.services.get(service)?
    }

    fn records(&self, service: usize) -> Option<&'p Arc<ServiceRecords>> {
        self.table.services.get(self.previous(service)?)
    }
}

impl DomainTable {
    pub fn build(config: &Config, health: &HealthView) -> DomainTable {
        DomainTable::build_after(config, health, None)
    }

    /// [`DomainTable::build`], taking from `unchanged` the records of
    /// services it names.
    pub fn build_after(
        config: &Config,
        health: &HealthView,
        unchanged: Option<Unchanged<'_>>,
    ) -> DomainTable {
        let domain = &config.domain;
        let apex_name = domain.name.clone();
        let apex = LowerName::new(&apex_name);
        let soa = &domain.soa;
        let soa_record = Record::from_rdata(
            apex_name.clone(),
            soa.ttl,
            RData::SOA(SOA::new(
                soa.mname.clone(),
                soa.rname.clone(),
                soa.serial,
                soa.refresh as i32,
                soa.retry as i32,
                soa.expire as i32,
                soa.minimum,
            )),
        );
        let services = config
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| DomainTable::service_records(index, service, health, unchanged))
            .collect();
        if let Some(unchanged) = unchanged.filter(|u| u.names) {
            return DomainTable {
                services,
                apex_labels: apex_name.num_labels(),
                apex,
                soa: soa_record,
                negative_ttl: soa.negative_ttl(),
                nodes: unchanged.table.nodes.clone(),
                has_wildcards: unchanged.table.has_wildcards,
                service_names: unchanged.table.service_names.clone(),
            };
        }
        // The apex too: which ancestors a service's name has depends on it.
        let service_names = match unchanged.filter(|u| u.service_names && u.table.apex == apex) {
            Some(unchanged) => unchanged.table.service_names.clone(),
            None => Arc::new(ServiceNames::build(config, apex_name.num_labels())),
        };
        let mut table = DomainTable {
            services,
            apex_labels: apex_name.num_labels(),
            apex,
            soa: soa_record.clone(),
            negative_ttl: soa.negative_ttl(),
            nodes: Arc::new(service_names.nodes.clone()),
            has_wildcards: service_names.has_wildcards,
            service_names,
        };
        table.insert(soa_record);
        if let Some(dnssec) = &config.dnssec {
            // The signing key first, then the published ones.
            for key in std::iter::once(dnssec.key.dnskey()).chain(&dnssec.published) {
                table.insert(Record::from_rdata(
                    apex_name.clone(),
                    dnssec.dnskey_ttl,
                    RData::Unknown {
                        code: RecordType::DNSKEY,
                        rdata: NULL::with(key.rdata()),
                    },
                ));
            }
        }
        for ns in &domain.nameservers {
            table.insert(Record::from_rdata(
                apex_name.clone(),
                domain.ttl,
                RData::NS(NS(ns.name.clone())),
            ));
            if apex_name.zone_of(&ns.name) {
                for addr in &ns.addresses {
                    table.insert(address_record(ns.name.clone(), domain.ttl, *addr));
                }
            }
        }
        for record in &config.records {
            let owner = LowerName::new(&record.name);
            if record.data.record_type() == RecordType::NS && owner != table.apex {
                table.node_mut(&record.name).is_delegation = true;
            }
            table.insert(Record::from_rdata(
                record.name.clone(),
                record.ttl,
                record.data.clone(),
            ));
        }
        table
    }

    /// A service's records: `unchanged`'s if it names the service, else
    /// built.
    fn service_records(
        index: usize,
        service: &Service,
        health: &HealthView,
        unchanged: Option<Unchanged<'_>>,
    ) -> Arc<ServiceRecords> {
        if let Some(records) = unchanged.and_then(|u| u.records(index)) {
            return records.clone();
        }
        let views = health
            .endpoints
            .get(index)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Arc::new(ServiceRecords::build(service, views))
    }

    /// Whether the two tables share their names (see [`Unchanged::names`]).
    pub fn shares_names_with(&self, other: &DomainTable) -> bool {
        Arc::ptr_eq(&self.nodes, &other.nodes)
    }

    fn node_mut(&mut self, name: &Name) -> &mut Node {
        self.has_wildcards |= name.is_wildcard();
        let nodes = Arc::get_mut(&mut self.nodes).expect("names are added only while building");
        node_mut(nodes, self.apex_labels, name)
    }

    fn insert(&mut self, record: Record) {
        let name = record.name.clone();
        self.node_mut(&name).push(record);
    }

    pub fn apex(&self) -> &LowerName {
        &self.apex
    }

    /// The SOA record, for the authority section of negative answers.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// TTL to give the SOA in negative answers (RFC 2308 section 3).
    pub fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }

    /// Finds `name`, stopping at the first delegation on the way down.
    ///
    /// A name that does not exist is matched against the wildcard at its
    /// closest encloser, the deepest existing ancestor (RFC 4592 section
    /// 3.3.1). Every ancestor of a name with data is a node, empty
    /// non-terminals included, so a wildcard never covers a name below
    /// an existing one; and a cut on the way down answers before any
    /// wildcard is looked at, so none matches at or below a delegation.
    pub fn lookup(&self, name: &LowerName) -> Lookup<'_> {
        if !self.apex.zone_of(name) {
            return Lookup::OutOfDomain;
        }
        let labels = name.num_labels();
        // Walk from just below the apex towards the name, looking for a cut.
        // Names are short; this is a handful of hash lookups at most.
        if labels > self.apex_labels + 1 {
            let name_full: Name = name.into();
            for depth in (self.apex_labels + 1)..labels {
                let ancestor = name_full.trim_to(depth as usize);
                match self.nodes.get(&LowerName::new(&ancestor)) {
                    Some(node) if node.is_delegation => return Lookup::Delegated { cut: node },
                    Some(_) => {}
                    None => return self.wildcard_at(&ancestor.base_name()),
                }
            }
        }
        match self.nodes.get(name) {
            Some(node) if node.is_delegation => Lookup::Delegated { cut: node },
            Some(node) => Lookup::Found(node),
            None => self.wildcard_at(&Name::from(name).base_name()),
        }
    }

    /// The answer for a missing name whose closest encloser is `encloser`:
    /// the wildcard `*.encloser` if there is one, else NXDOMAIN.
    fn wildcard_at(&self, encloser: &Name) -> Lookup<'_> {
        if !self.has_wildcards {
            return Lookup::NxDomain;
        }
        let Ok(source) = Name::from_ascii("*").and_then(|star| star.append_domain(encloser)) else {
            return Lookup::NxDomain;
        };
        match self.nodes.get(&LowerName::new(&source)) {
            Some(node) => Lookup::Wildcard(node),
            None => Lookup::NxDomain,
        }
    }

    /// Whether any name in the domain is a wildcard (`*.name`).
    pub fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }

    /// Every name in the domain with its records, ancestors included.
    pub fn nodes(&self) -> impl Iterator<Item = (&LowerName, &Node)> {
        self.nodes.iter()
    }

    /// Addresses of in-domain NS, MX and SRV targets of `records`, each
    /// once, so the resolver need not ask for them.
    pub fn additional_for(&self, records: &[Record]) -> Vec<&Record> {
        let mut glue: Vec<&Record> = Vec::new();
        for record in records {
            let target = match &record.data {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            for address in self.addresses(target) {
                if !glue.contains(&address) {
                    glue.push(address);
                }
            }
        }
        glue
    }

    /// A and AAAA records held at `name`, for glue and additional data.
    pub fn addresses(&self, name: &Name) -> impl Iterator<Item = &Record> {
        let node = self.nodes.get(&LowerName::new(name));
        node.into_iter().flat_map(|n| {
            [RecordType::A, RecordType::AAAA]
                .into_iter()
                .filter_map(|t| n.rrset(t))
                .flat_map(|s| s.records.iter())
        })
    }
}

/// An A or AAAA record for `addr`.
pub(crate) fn address_record(name: Name, ttl: u32, addr: IpAddr) -> Record {
    let data = match addr {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, data)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::health::drains::Drains;
    use crate::health::state::Observed;
    use crate::health::{EndpointView, HealthView};

    const DOMAIN: &str = r#"
[domain]
name = "t.example."
ttl = 120
[domain.soa]
ttl = 30
minimum = 600
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
[[domain.nameservers]]
name = "ns.elsewhere.example."
[[zones]]
name = "a"
latitude = 0.0
longitude = 0.0
[[zones]]
name = "b"
latitude = 10.0
longitude = 10.0
[[services]]
name = "www"
ttl = 20
[services.check]
kind = "none"
[[services.endpoints]]
zone = "a"
addresses = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
[[services.endpoints]]
zone = "b"
addresses = ["198.51.100.1"]
[[services]]
name = "api"
all_down = "fallback"
fallback = ["192.0.2.99", "2001:db8::99"]
[services.check]
kind = "none"
[[services.endpoints]]
zone = "a"
addresses = ["192.0.2.9"]
[[records]]
name = "mail"
type = "A"
data = "192.0.2.25"
[[records]]
name = "mail"
type = "AAAA"
data = "2001:db8::25"
[[records]]
name = "@"
type = "MX"
data = "10 mail"
[[records]]
name = "_sip._udp"
type = "SRV"
data = "10 5 5060 mail"
[[records]]
name = "deep.empty.nt"
type = "TXT"
data = "deep"
[[records]]
name = "sub"
type = "NS"
data = "ns.sub"
[[records]]
name = "ns.sub"
type = "A"
data = "192.0.2.153"
"#;

    fn config() -> Config {
        Config::parse(DOMAIN, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn table(config: &Config, health: &HealthView) -> DomainTable {
        DomainTable::build(config, health)
    }

    fn all_unknown(config: &Config) -> HealthView {
        HealthView::build(config, &HashMap::new(), &Drains::default())
    }

    fn lower(name: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(name).unwrap())
    }

    fn ips(addresses: &[IpAddr]) -> Vec<String> {
        addresses.iter().map(ToString::to_string).collect()
    }

    fn addrs(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.data.ip_addr().expect("an address").to_string())
            .collect()
    }

    /// A build after another starts from its service names only when the
    /// services and the apex kept them: here the records change (a new
    /// TXT at the apex's child `t2`), then the apex moves up a label with
    /// the services' full names kept, so `t.example.` becomes an empty
    /// non-terminal the previous map of service names does not hold.
    #[test]
    fn a_build_after_another_starts_from_its_service_names_only_under_the_same_apex() {
        let before = config();
        let previous = table(&before, &all_unknown(&before));
        let unchanged = |previous| Unchanged {
            table: previous,
            services: &[],
            names: false,
            service_names: true,
        };
        let records = Config::parse(
            &format!("{DOMAIN}\n[[records]]\nname = \"t2\"\ntype = \"TXT\"\ndata = \"x\"\n"),
            Path::new("t.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let after =
            DomainTable::build_after(&records, &all_unknown(&records), Some(unchanged(&previous)));
        assert!(Arc::ptr_eq(&after.service_names, &previous.service_names));
        assert!(!after.shares_names_with(&previous));
        assert!(matches!(after.lookup(&lower("t2.t.example.")), Lookup::Found(n) if !n.is_empty()));
        assert_eq!(after.nodes().count(), previous.nodes().count() + 1);
        let Lookup::Found(www) = after.lookup(&lower("www.t.example.")) else {
            panic!("www");
        };
        assert_eq!(www.service(), Some(0));
        // The apex `example.`, every service named in full as before.
        let moved = DOMAIN
            .replace("name = \"t.example.\"", "name = \"example.\"")
            .replace("ns.elsewhere.example.", "ns.elsewhere.test.")
            .replace("name = \"www\"", "name = \"www.t\"")
            .replace("name = \"api\"", "name = \"api.t\"");
        let moved = Config::parse(&moved, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(moved.services[0].name, before.services[0].name);
        let after =
            DomainTable::build_after(&moved, &all_unknown(&moved), Some(unchanged(&previous)));
        assert!(!Arc::ptr_eq(&after.service_names, &previous.service_names));
        assert!(
            matches!(after.lookup(&lower("t.example.")), Lookup::Found(n) if n.is_empty()),
            "an empty non-terminal under the new apex"
        );
    }

    #[test]
    fn lookup_tells_every_kind_of_name_apart() {
        let config = config();
        let table = table(&config, &all_unknown(&config));
        let Lookup::Found(apex) = table.lookup(&lower("T.Example.")) else {
            panic!("the apex is found, in any case");
        };
        for t in [RecordType::SOA, RecordType::NS, RecordType::MX] {
            assert!(apex.rrset(t).is_some(), "{t} at the apex");
        }
        assert!(apex.service().is_none() && !apex.is_delegation());
        let Lookup::Found(www) = table.lookup(&lower("WWW.t.example.")) else {
            panic!("the service's name is found");
        };
        assert_eq!(www.service(), Some(0));
        // Ancestors of names with data exist, empty: NODATA, not NXDOMAIN.
        for name in ["empty.nt.t.example.", "nt.t.example."] {
            match table.lookup(&lower(name)) {
                Lookup::Found(node) => assert!(node.is_empty(), "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let Lookup::Found(deep) = table.lookup(&lower("deep.empty.nt.t.example.")) else {
            panic!("the name with data");
        };
        assert!(!deep.is_empty());
        for name in ["nope.t.example.", "x.nope.t.example.", "x.mail.t.example."] {
            assert!(
                matches!(table.lookup(&lower(name)), Lookup::NxDomain),
                "{name}"
            );
        }
        for name in ["example.", "other.example.", "xt.example.", "."] {
            assert!(
                matches!(table.lookup(&lower(name)), Lookup::OutOfDomain),
                "{name}"
            );
        }
        // At and below the cut, glue included, the cut answers.
        for name in ["sub.t.example.", "ns.sub.t.example.", "a.b.sub.t.example."] {
            let Lookup::Delegated { cut } = table.lookup(&lower(name)) else {
                panic!("{name} is delegated");
            };
            assert!(cut.is_delegation());
            let ns = cut.rrset(RecordType::NS).expect("the cut's NS set");
            assert_eq!(
                ns.records[0].name,
                Name::from_ascii("sub.t.example.").unwrap()
            );
        }
    }

    #[test]
    fn the_negative_ttl_is_the_smaller_of_the_soa_ttl_and_minimum() {
        let config = config();
        let table = table(&config, &all_unknown(&config));
        assert_eq!(table.negative_ttl(), 30, "SOA ttl 30 < minimum 600");
        assert_eq!(table.soa().ttl, 30);
        let swapped = DOMAIN.replace("ttl = 30\nminimum = 600", "ttl = 900\nminimum = 45");
        let config = Config::parse(&swapped, Path::new("t.toml")).unwrap();
        let table = DomainTable::build(&config, &all_unknown(&config));
        assert_eq!(table.negative_ttl(), 45);
        assert_eq!(table.soa().ttl, 900, "the SOA itself keeps its TTL");
    }

    #[test]
    fn static_records_take_their_ttl_and_glue_only_inside_the_domain() {
        let config = config();
        let table = table(&config, &all_unknown(&config));
        let Lookup::Found(mail) = table.lookup(&lower("mail.t.example.")) else {
            panic!("mail");
        };
        assert_eq!(mail.rrset(RecordType::A).unwrap().records[0].ttl, 120);
        let Lookup::Found(apex) = table.lookup(table.apex()) else {
            panic!("apex");
        };
        let ns = &apex.rrset(RecordType::NS).unwrap().records;
        assert_eq!(ns.len(), 2);
        assert_eq!(
            addrs(
                &table
                    .additional_for(ns)
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
            ),
            ["192.0.2.53"],
            "glue for ns1 only: the other NS is outside the domain"
        );
    }

    #[test]
    fn additional_data_names_each_target_address_once() {
        let config = config();
        let table = table(&config, &all_unknown(&config));
        let Lookup::Found(apex) = table.lookup(table.apex()) else {
            panic!("apex");
        };
        let Lookup::Found(sip) = table.lookup(&lower("_sip._udp.t.example.")) else {
            panic!("srv");
        };
        let mut records = apex.rrset(RecordType::MX).unwrap().records.clone();
        records.extend(sip.rrset(RecordType::SRV).unwrap().records.clone());
        let glue: Vec<Record> = table
            .additional_for(&records)
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(addrs(&glue), ["192.0.2.25", "2001:db8::25"]);
        // Records with no target name add nothing.
        let Lookup::Found(mail) = table.lookup(&lower("mail.t.example.")) else {
            panic!("mail");
        };
        assert!(
            table
                .additional_for(&mail.rrset(RecordType::A).unwrap().records)
                .is_empty()
        );
        assert_eq!(
            table
                .addresses(&Name::from_ascii("nope.t.example.").unwrap())
                .count(),
            0
        );
    }

    #[test]
    fn service_records_keep_usable_addresses_apart_from_all() {
        let config = config();
        let mut health = all_unknown(&config);
        // Endpoint a of www: one address up, one down, the IPv6 one unknown.
        health.endpoints[0][0] = EndpointView {
            addresses: vec![Observed::Up, Observed::Down, Observed::Unknown],
            is_up: true,
            is_drained: false,
        };
        let table = table(&config, &health);
        let www = &table.services[0];
        assert_eq!(ips(www.addresses(RecordType::A, 0, true)), ["192.0.2.1"]);
        assert_eq!(
            ips(www.addresses(RecordType::A, 0, false)),
            ["192.0.2.1", "192.0.2.2"]
        );
        assert_eq!(
            ips(www.addresses(RecordType::AAAA, 0, true)),
            ["2001:db8::1"]
        );
        assert_eq!(ips(www.addresses(RecordType::A, 1, true)), ["198.51.100.1"]);
        assert!(www.addresses(RecordType::AAAA, 1, false).is_empty());
        assert!(
            www.addresses(RecordType::A, 7, false).is_empty(),
            "no such endpoint"
        );
        assert!(
            www.addresses(RecordType::MX, 0, false).is_empty(),
            "no other type"
        );
        let record = www.record(www.addresses(RecordType::A, 0, true)[0]);
        assert_eq!(record.ttl, 20, "the service's TTL");
        assert_eq!(record.name, Name::from_ascii("www.t.example.").unwrap());
        assert!(!www.is_all_down);
        assert!(www.fallback(RecordType::A).is_empty(), "fail-open has none");
    }

    #[test]
    fn a_service_with_nothing_serving_is_all_down_with_its_fallback() {
        let config = config();
        let mut health = all_unknown(&config);
        for view in &mut health.endpoints[0] {
            view.is_drained = true;
        }
        health.endpoints[1][0].is_up = false;
        let table = table(&config, &health);
        assert!(table.services[0].is_all_down, "every endpoint drained");
        let api = &table.services[1];
        assert!(api.is_all_down, "its one endpoint down");
        assert_eq!(ips(api.fallback(RecordType::A)), ["192.0.2.99"]);
        assert_eq!(ips(api.fallback(RecordType::AAAA)), ["2001:db8::99"]);
        // One serving endpoint is enough.
        health.endpoints[0][1].is_drained = false;
        assert!(!DomainTable::build(&config, &health).services[0].is_all_down);
    }

    /// Wildcards beside `DOMAIN`'s names: a service at `*.apps` with a real
    /// name and an empty non-terminal below `apps`, a record wildcard at
    /// `*.w`, and one below the delegation's parent side.
    const WILDCARDS: &str = r#"
[[services]]
name = "*.apps"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "a"
addresses = ["192.0.2.80"]
[[records]]
name = "real.apps"
type = "TXT"
data = "real"
[[records]]
name = "deep.ent.apps"
type = "TXT"
data = "deep"
[[records]]
name = "*.w"
type = "MX"
data = "10 mail"
"#;

    #[test]
    fn a_wildcard_covers_missing_names_below_its_closest_encloser_only() {
        let config = Config::parse(&format!("{DOMAIN}{WILDCARDS}"), Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let table = table(&config, &all_unknown(&config));
        assert!(table.has_wildcards());
        // Missing names whose closest encloser is `apps`, at any depth.
        for name in [
            "x.apps.t.example.",
            "Y.APPS.t.example.",
            "a.b.c.apps.t.example.",
        ] {
            let Lookup::Wildcard(node) = table.lookup(&lower(name)) else {
                panic!("{name} is covered by *.apps");
            };
            assert_eq!(node.service(), Some(2), "{name}");
        }
        // The wildcard's own name is found as itself.
        assert!(matches!(
            table.lookup(&lower("*.apps.t.example.")),
            Lookup::Found(n) if n.service() == Some(2)
        ));
        // Existing names, empty non-terminals included, are never covered,
        // nor are names below them (their closest encloser is deeper).
        for name in [
            "real.apps.t.example.",
            "ent.apps.t.example.",
            "apps.t.example.",
        ] {
            assert!(
                matches!(table.lookup(&lower(name)), Lookup::Found(n) if n.service().is_none()),
                "{name}"
            );
        }
        for name in [
            "x.real.apps.t.example.",
            "x.ent.apps.t.example.",
            "x.*.apps.t.example.",
            "nope.t.example.",
            "x.nope.t.example.",
        ] {
            assert!(
                matches!(table.lookup(&lower(name)), Lookup::NxDomain),
                "{name}"
            );
        }
        // A record wildcard, for any type.
        let Lookup::Wildcard(node) = table.lookup(&lower("host.w.t.example.")) else {
            panic!("*.w covers host.w");
        };
        assert!(node.rrset(RecordType::MX).is_some() && node.rrset(RecordType::A).is_none());
        // Below the delegation the cut answers, wildcard or not.
        assert!(matches!(
            table.lookup(&lower("x.sub.t.example.")),
            Lookup::Delegated { .. }
        ));
        // Without wildcards, nothing is covered.
        assert!(!table_without_wildcards().has_wildcards());
    }

    fn table_without_wildcards() -> DomainTable {
        let config = config();
        table(&config, &all_unknown(&config))
    }
}
