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
    pub fn rrset(&self, record_type: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.record_type == record_type)
    }

    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty()
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

/// How a service answers in this snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAnswer {
    /// Zones whose endpoints the answer names, by index into the config.
    pub zones: Vec<usize>,
    /// No endpoint is serving, so the all-down rule decided the answer.
    pub is_all_down: bool,
}

#[derive(Debug)]
pub struct DomainTable {
    /// Per service, in config order.
    pub services: Vec<ServiceAnswer>,
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
            let serving: Vec<usize> = (0..service.endpoints.len())
                .filter(|e| views.get(*e).is_none_or(|v| v.is_serving()))
                .collect();
            let (addresses, zones): (Vec<IpAddr>, Vec<usize>) = if !serving.is_empty() {
                // Until routing exists a service answers with every serving
                // endpoint, and of each only the addresses probes have not
                // found down.
                let mut addrs = Vec::new();
                for &e in &serving {
                    let endpoint = &service.endpoints[e];
                    for (a, addr) in endpoint.addresses.iter().enumerate() {
                        let usable = views
                            .get(e)
                            .and_then(|v| v.addresses.get(a))
                            .is_none_or(|o| o.is_usable());
                        if usable {
                            addrs.push(*addr);
                        }
                    }
                }
                (
                    addrs,
                    serving.iter().map(|e| service.endpoints[*e].zone).collect(),
                )
            } else {
                match &service.all_down {
                    AllDown::FailOpen => (
                        service
                            .endpoints
                            .iter()
                            .flat_map(|e| e.addresses.iter().copied())
                            .collect(),
                        service.endpoints.iter().map(|e| e.zone).collect(),
                    ),
                    AllDown::Fallback(addrs) => (addrs.clone(), Vec::new()),
                }
            };
            for addr in addresses {
                table.insert(address_record(service.name.clone(), service.ttl, addr));
            }
            table.services.push(ServiceAnswer {
                zones,
                is_all_down: serving.is_empty(),
            });
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
