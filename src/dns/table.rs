//! The domain's names and record sets, laid out for lookup.
//!
//! Built once per snapshot from the config, never changed afterwards, so
//! the answer path can read it without a lock. Every ancestor of a name that
//! holds data is present (possibly empty) so "exists but has no data" (an
//! empty non-terminal, NODATA) and "does not exist" (NXDOMAIN) are told
//! apart with one hash lookup.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::config::{AllDown, Config};
use crate::health::HealthView;

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
    /// The name does not exist.
    NxDomain,
}

/// A service's address records, ready for any routing decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceRecords {
    /// Per endpoint, the A records of its usable addresses.
    pub a: Vec<Vec<Record>>,
    /// Per endpoint, the AAAA records of its usable addresses.
    pub aaaa: Vec<Vec<Record>>,
    /// Per endpoint, every address regardless of health (for fail-open).
    pub all_a: Vec<Vec<Record>>,
    pub all_aaaa: Vec<Vec<Record>>,
    /// The all-down fallback addresses, when configured.
    pub fallback_a: Vec<Record>,
    pub fallback_aaaa: Vec<Record>,
    /// No endpoint is serving at all in this snapshot.
    pub is_all_down: bool,
}

impl ServiceRecords {
    /// The records for `endpoints` of one address type; `healthy` selects
    /// the usable addresses, else every address (fail-open).
    pub fn records(&self, record_type: RecordType, endpoint: usize, healthy: bool) -> &[Record] {
        let sets = match (record_type, healthy) {
            (RecordType::A, true) => &self.a,
            (RecordType::A, false) => &self.all_a,
            (RecordType::AAAA, true) => &self.aaaa,
            (_, _) => &self.all_aaaa,
        };
        sets.get(endpoint).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn fallback(&self, record_type: RecordType) -> &[Record] {
        match record_type {
            RecordType::A => &self.fallback_a,
            _ => &self.fallback_aaaa,
        }
    }
}

#[derive(Debug)]
pub struct DomainTable {
    /// Per service, in config order.
    pub services: Vec<ServiceRecords>,
    apex: LowerName,
    apex_labels: u8,
    soa: Record,
    negative_ttl: u32,
    nodes: HashMap<LowerName, Node>,
}

impl DomainTable {
    pub fn build(config: &Config, health: &HealthView) -> DomainTable {
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
        let mut table = DomainTable {
            services: Vec::with_capacity(config.services.len()),
            apex_labels: apex_name.num_labels(),
            apex,
            soa: soa_record.clone(),
            negative_ttl: soa.negative_ttl(),
            nodes: HashMap::new(),
        };
        table.insert(soa_record);
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
        for (index, service) in config.services.iter().enumerate() {
            table.node_mut(&service.name).service = Some(index);
            let views = health
                .endpoints
                .get(index)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let mut records = ServiceRecords::default();
            for (e, endpoint) in service.endpoints.iter().enumerate() {
                let (mut a, mut aaaa, mut all_a, mut all_aaaa) = (vec![], vec![], vec![], vec![]);
                for (i, addr) in endpoint.addresses.iter().enumerate() {
                    let record = address_record(service.name.clone(), service.ttl, *addr);
                    let usable = views
                        .get(e)
                        .and_then(|v| v.addresses.get(i))
                        .is_none_or(|o| o.is_usable());
                    let (healthy, all) = if addr.is_ipv4() {
                        (&mut a, &mut all_a)
                    } else {
                        (&mut aaaa, &mut all_aaaa)
                    };
                    if usable {
                        healthy.push(record.clone());
                    }
                    all.push(record);
                }
                records.a.push(a);
                records.aaaa.push(aaaa);
                records.all_a.push(all_a);
                records.all_aaaa.push(all_aaaa);
            }
            if let AllDown::Fallback(addrs) = &service.all_down {
                for addr in addrs {
                    let record = address_record(service.name.clone(), service.ttl, *addr);
                    if addr.is_ipv4() {
                        records.fallback_a.push(record);
                    } else {
                        records.fallback_aaaa.push(record);
                    }
                }
            }
            records.is_all_down =
                (0..service.endpoints.len()).all(|e| views.get(e).is_some_and(|v| !v.is_serving()));
            table.services.push(records);
        }
        table
    }

    fn node_mut(&mut self, name: &Name) -> &mut Node {
        // Ancestors up to the apex exist as (possibly empty) nodes.
        let mut ancestor = name.base_name();
        while ancestor.num_labels() > self.apex_labels {
            self.nodes.entry(LowerName::new(&ancestor)).or_default();
            ancestor = ancestor.base_name();
        }
        self.nodes.entry(LowerName::new(name)).or_default()
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
                    None => return Lookup::NxDomain,
                }
            }
        }
        match self.nodes.get(name) {
            Some(node) if node.is_delegation => Lookup::Delegated { cut: node },
            Some(node) => Lookup::Found(node),
            None => Lookup::NxDomain,
        }
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

fn address_record(name: Name, ttl: u32, addr: IpAddr) -> Record {
    let data = match addr {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, data)
}
