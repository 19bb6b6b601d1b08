//! Conflicts between records, services and delegations at the same name,
//! checked once every record and service has been read.

use std::collections::HashMap;
use std::ops::Range;

use hickory_proto::rr::{LowerName, RecordType};

use super::Checker;
use crate::config::{Domain, Service, StaticRecord};

impl Checker<'_, '_> {
    /// Conflicts between records, services and delegations at the same name.
    pub(super) fn conflicts(
        &mut self,
        records: &[(StaticRecord, Range<usize>)],
        services: &[(Service, Range<usize>)],
        domain: Option<&Domain>,
    ) {
        let mut by_name: HashMap<LowerName, Vec<(RecordType, Range<usize>)>> = HashMap::new();
        for (r, span) in records {
            by_name
                .entry(LowerName::new(&r.name))
                .or_default()
                .push((r.data.record_type(), span.clone()));
        }
        let cuts: Vec<LowerName> = by_name
            .iter()
            .filter(|(_, types)| types.iter().any(|(t, _)| *t == RecordType::NS))
            .map(|(n, _)| n.clone())
            .collect();
        for (name, types) in &by_name {
            let has_cname = types.iter().any(|(t, _)| *t == RecordType::CNAME);
            if has_cname && types.len() > 1 {
                let span = types[0].1.clone();
                self.err(
                    span,
                    format!("`{name}` has a CNAME and other records"),
                    "a CNAME must be the only record at its name (RFC 1034); remove one of them",
                );
            }
            if let Some(d) = domain
                && has_cname
                && LowerName::new(&d.name) == *name
            {
                self.err(
                    types[0].1.clone(),
                    "the domain apex cannot have a CNAME",
                    "put the CNAME on a name below the apex",
                );
            }
            for cut in &cuts {
                if cut != name && cut.zone_of(name) {
                    for (t, span) in types {
                        if !matches!(t, RecordType::A | RecordType::AAAA) {
                            self.err(
                                span.clone(),
                                format!("`{name}` is below the delegation `{cut}`"),
                                "only glue (A/AAAA) may sit below a delegation; move the record into the child zone",
                            );
                        }
                    }
                }
            }
            if cuts.contains(name) {
                for (t, span) in types {
                    if !matches!(t, RecordType::NS) {
                        self.err(
                            span.clone(),
                            format!("`{name}` is a delegation and cannot also hold {t} records"),
                            "move the record into the child zone or remove the NS records",
                        );
                    }
                }
            }
        }
        for (s, span) in services {
            let lower = LowerName::new(&s.name);
            if let Some(types) = by_name.get(&lower) {
                for (t, _) in types {
                    if matches!(t, RecordType::A | RecordType::AAAA | RecordType::CNAME) {
                        self.err(
                            span.clone(),
                            format!("service `{}` clashes with a static {t} record at the same name", s.name),
                            "remove the static record; the service answers A and AAAA for this name",
                        );
                    }
                }
            }
            for cut in &cuts {
                if cut.zone_of(&lower) {
                    self.err(
                        span.clone(),
                        format!("service `{}` is at or below the delegation `{cut}`", s.name),
                        "move the service out of the delegated subtree",
                    );
                }
            }
        }
    }
}
