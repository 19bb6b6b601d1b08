//! `[domain]`: the apex, its TTLs, the SOA and the apex NS set.

use std::collections::HashSet;
use std::ops::Range;

use hickory_proto::rr::{LowerName, Name};
use toml::Spanned;

use super::Checker;
use super::names::Names;
use crate::config::raw::{RawDomain, RawNameserver, RawSoa};
use crate::config::{Domain, Nameserver, Soa, defaults};

impl Checker<'_, '_> {
    /// The apex from `[domain] name`: fully qualified, and not the root.
    /// Nothing else can be checked without it.
    pub(super) fn apex(&mut self, name: &Spanned<String>) -> Option<Name> {
        match Name::from_ascii(name.get_ref().trim()) {
            Ok(apex) if apex.is_fqdn() && !apex.is_root() => Some(apex),
            Ok(apex) if !apex.is_fqdn() => {
                self.err(
                    name.span(),
                    format!("domain name `{}` is not fully qualified", name.get_ref()),
                    format!("end it with a dot: `{}.`", name.get_ref()),
                );
                None
            }
            Ok(_) => {
                self.err(
                    name.span(),
                    "the domain cannot be the root",
                    "name the subdomain delegated to Meridian, e.g. `gslb.example.com.`",
                );
                None
            }
            Err(e) => {
                self.err(
                    name.span(),
                    format!("domain name `{}` is not valid: {e}", name.get_ref()),
                    "use dot-separated labels ending in a dot, e.g. `gslb.example.com.`",
                );
                None
            }
        }
    }

    /// The rest of `[domain]`; `span` is the table's, for a missing NS set.
    pub(super) fn domain(
        &mut self,
        raw: RawDomain,
        span: Range<usize>,
        names: &Names,
    ) -> Option<Domain> {
        let nameservers = match self.nameservers(raw.nameservers, names) {
            Some(list) if list.is_empty() => {
                self.err(
                    span,
                    "the domain has no nameservers",
                    "add a [[domain.nameservers]] entry with `name` and `addresses` for each node",
                );
                None
            }
            list => list,
        };
        let first_nameserver = nameservers
            .as_ref()
            .and_then(|list| list.first())
            .map(|ns| ns.name.clone());
        let soa = self.soa(raw.soa, first_nameserver, names);
        Some(Domain {
            name: names.apex.clone(),
            ttl: raw.ttl.map_or(defaults::TTL, Spanned::into_inner),
            service_ttl: raw
                .service_ttl
                .map_or(defaults::SERVICE_TTL, Spanned::into_inner),
            soa: soa?,
            nameservers: nameservers?,
        })
    }

    /// `[[domain.nameservers]]`: each name once, with glue when it is
    /// inside the domain.
    fn nameservers(&mut self, raw: Vec<RawNameserver>, names: &Names) -> Option<Vec<Nameserver>> {
        let mut ok = true;
        let mut nameservers = Vec::new();
        let mut seen = HashSet::new();
        for ns in raw {
            let name = match names.any(ns.name.get_ref()) {
                Ok(n) => n,
                Err((m, h)) => {
                    self.err(ns.name.span(), m, h);
                    ok = false;
                    continue;
                }
            };
            if !seen.insert(LowerName::new(&name)) {
                self.err(
                    ns.name.span(),
                    format!("nameserver `{name}` is listed twice"),
                    "remove the duplicate",
                );
                ok = false;
                continue;
            }
            let addresses = self.addresses(&ns.addresses);
            ok &= addresses.is_some();
            let addresses = addresses.unwrap_or_default();
            // Only once everything so far is right: a wrong address is
            // already reported, and would leave this list empty.
            if names.apex.zone_of(&name) && addresses.is_empty() && ok {
                self.err(
                    ns.name.span(),
                    format!("nameserver `{name}` is inside the domain but has no addresses"),
                    "add `addresses = [...]` (glue), or resolvers cannot reach it",
                );
                ok = false;
            }
            nameservers.push(Nameserver { name, addresses });
        }
        ok.then_some(nameservers)
    }

    /// `[domain.soa]`; MNAME defaults to the first nameserver.
    fn soa(&mut self, raw: RawSoa, first_nameserver: Option<Name>, names: &Names) -> Option<Soa> {
        let mname = match &raw.mname {
            Some(m) => match names.any(m.get_ref()) {
                Ok(n) => Some(n),
                Err((msg, h)) => {
                    self.err(m.span(), msg, h);
                    None
                }
            },
            None => first_nameserver,
        };
        let rname = match &raw.rname {
            Some(r) => match names.any(&mailbox_name(r.get_ref())) {
                Ok(n) => Some(n),
                Err((msg, h)) => {
                    self.err(r.span(), msg, h);
                    None
                }
            },
            None => names.any(defaults::SOA_RNAME).ok(),
        };
        Some(Soa {
            mname: mname?,
            rname: rname?,
            serial: raw.serial.unwrap_or(defaults::SOA_SERIAL),
            refresh: raw.refresh.unwrap_or(defaults::SOA_REFRESH),
            retry: raw.retry.unwrap_or(defaults::SOA_RETRY),
            expire: raw.expire.unwrap_or(defaults::SOA_EXPIRE),
            minimum: raw.minimum.unwrap_or(defaults::SOA_MINIMUM),
            ttl: raw.ttl.unwrap_or(defaults::SOA_TTL),
        })
    }
}

/// `user@host` as the domain name of that mailbox (RFC 1035 section 8):
/// `user.host.`, absolute (a mail address is never relative to the domain),
/// with dots in `user` escaped so they stay inside its label. Anything
/// without `@` is a name as written.
fn mailbox_name(text: &str) -> String {
    let text = text.trim();
    match text.split_once('@') {
        Some((user, host)) => {
            let host = host.trim_end_matches('.');
            format!("{}.{host}.", user.replace('.', "\\."))
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod mailbox_tests {
    use super::mailbox_name;

    #[test]
    fn a_mail_address_becomes_an_absolute_name() {
        assert_eq!(mailbox_name("dns-team@corp.test"), "dns-team.corp.test.");
        assert_eq!(
            mailbox_name("first.last@corp.test."),
            "first\\.last.corp.test."
        );
        assert_eq!(mailbox_name("hostmaster"), "hostmaster");
    }
}
