//! `[[cidr_rules]]`: client networks whose zone order is fixed.

use std::collections::HashSet;
use std::ops::Range;

use hickory_proto::rr::Name;

use super::Checker;
use crate::config::raw::RawCidrRule;
use crate::config::{CidrRule, Zone};

impl Checker<'_, '_> {
    /// Each network in one rule only, so which rule applies never depends
    /// on their order.
    pub(super) fn cidr_rules(
        &mut self,
        raw: Vec<RawCidrRule>,
        zones: &[(Zone, Range<usize>)],
    ) -> Option<Vec<CidrRule>> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen = HashSet::new();
        for rule in raw {
            let mut networks = Vec::new();
            for net in rule.networks.get_ref() {
                match net.get_ref().trim().parse::<ipnet::IpNet>() {
                    Ok(n) if n.trunc() != n => {
                        self.err(
                            net.span(),
                            format!("`{n}` has host bits set"),
                            format!("write the network address: `{}`", n.trunc()),
                        );
                        ok = false;
                    }
                    Ok(n) if !seen.insert(n) => {
                        self.err(
                            net.span(),
                            format!("network `{n}` is in two rules"),
                            "keep it in one rule",
                        );
                        ok = false;
                    }
                    Ok(n) => networks.push(n),
                    Err(_) => {
                        self.err(
                            net.span(),
                            format!("`{}` is not a network", net.get_ref()),
                            "write it as `10.0.0.0/8` or `2001:db8::/32`",
                        );
                        ok = false;
                    }
                }
            }
            let zones_span = rule.zones.span();
            let list = self.zone_list(rule.zones.get_ref(), zones, &[], &Name::root());
            match list {
                Some(l) if l.is_empty() => {
                    self.err(
                        zones_span,
                        "a CIDR rule needs at least one zone",
                        "name the zones, most preferred first",
                    );
                    ok = false;
                }
                Some(l) => out.push(CidrRule { networks, zones: l }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}
