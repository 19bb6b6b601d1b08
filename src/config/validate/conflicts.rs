//! Conflicts between records, services and delegations at the same name,
//! checked once every record and service has been read.

use std::collections::HashMap;
use std::ops::Range;

use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::Checker;
use crate::config::{Domain, Service, StaticRecord};

impl Checker<'_, '_> {
    /// Conflicts between records, services and delegations at the same name.
    pub(super) fn conflicts(
        &mut self,
        records: &[(StaticRecord, Range<usize>)],
        services: &[(std::sync::Arc<Service>, Range<usize>)],
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
        // Only a CNAME asks which names exist: without one, 10,000
        // services' names are not lowercased a second time for nothing.
        let has_cname = records
            .iter()
            .any(|(r, _)| matches!(r.data, RData::CNAME(_)));
        let services_by_name: Vec<LowerName> = if has_cname {
            services
                .iter()
                .map(|(s, _)| LowerName::new(&s.name))
                .collect()
        } else {
            Vec::new()
        };
        // A name exists if it or any name below it has data (an empty
        // non-terminal exists too, and stops a wildcard above it).
        let exists = |n: &LowerName| {
            by_name
                .keys()
                .chain(&services_by_name)
                .any(|known| n.zone_of(known))
        };
        for (r, span) in records {
            let RData::CNAME(CNAME(target)) = &r.data else {
                continue;
            };
            if let Some(why) = cname_loop(&r.name, target, &exists) {
                self.problems.warn(
                    span.clone(),
                    format!("the CNAME `{}` -> `{target}` {why}", r.name),
                    "point the CNAME at a name outside what it covers, or add a record at the target",
                );
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

/// Why a CNAME at `owner` pointing at `target` answers itself, if it
/// does: a resolver chasing it would loop until it gives up. Either the
/// target is the owner, or the owner is a wildcard and the target a name
/// it synthesizes (no name exists from the target up to the wildcard's
/// parent, so the target's closest encloser is that parent, RFC 4592).
fn cname_loop(
    owner: &Name,
    target: &Name,
    exists: &impl Fn(&LowerName) -> bool,
) -> Option<&'static str> {
    let target_lower = LowerName::new(target);
    if LowerName::new(owner) == target_lower {
        return Some("points at itself");
    }
    if !owner.is_wildcard() {
        return None;
    }
    let parent = LowerName::new(&owner.base_name());
    if !parent.zone_of(&target_lower) || parent == target_lower {
        return None;
    }
    let mut name = target.clone();
    while LowerName::new(&name) != parent {
        if exists(&LowerName::new(&name)) {
            return None;
        }
        name = name.base_name();
    }
    Some("is covered by the wildcard itself, so it answers with itself")
}
