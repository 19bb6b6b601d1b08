//! `[[records]]`: static records, their data in zone-file form.

use std::collections::HashSet;
use std::ops::Range;

use hickory_proto::rr::rdata::{CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{LowerName, RData, RecordType};

use super::Checker;
use super::names::Names;
use crate::config::raw::RawRecord;
use crate::config::{Domain, StaticRecord, defaults};

/// The types Meridian serves from config. SOA and the apex NS set are
/// built from `[domain]`; the rest need features it does not have.
const RECORD_TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::MX,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::NS,
    RecordType::PTR,
];

impl Checker<'_, '_> {
    /// The records that are right, each with the span of its owner name
    /// (for the conflict checks); the wrong ones are reported and left out.
    pub(super) fn records(
        &mut self,
        raw: Vec<RawRecord>,
        names: &Names,
        domain: Option<&Domain>,
    ) -> Vec<(StaticRecord, Range<usize>)> {
        let default_ttl = domain.map_or(defaults::TTL, |d| d.ttl);
        let mut out: Vec<(StaticRecord, Range<usize>)> = Vec::new();
        let mut seen_records: HashSet<(LowerName, String)> = HashSet::new();
        for rec in raw {
            let name = match names.owner(rec.name.get_ref()) {
                Ok(n) => n,
                Err((m, h)) => {
                    self.err(rec.name.span(), m, h);
                    continue;
                }
            };
            let type_text = rec.record_type.get_ref().trim().to_ascii_uppercase();
            let record_type = match type_text.parse::<RecordType>() {
                Ok(t) if RECORD_TYPES.contains(&t) => t,
                Ok(RecordType::SOA) => {
                    self.err(
                        rec.record_type.span(),
                        "the SOA record is built from [domain.soa]",
                        "remove this record and set the fields in [domain.soa]",
                    );
                    continue;
                }
                _ => {
                    let supported: Vec<String> =
                        RECORD_TYPES.iter().map(|t| t.to_string()).collect();
                    self.err(
                        rec.record_type.span(),
                        format!(
                            "record type `{}` is not supported",
                            rec.record_type.get_ref()
                        ),
                        format!("use one of {}", supported.join(", ")),
                    );
                    continue;
                }
            };
            if record_type == RecordType::NS && name == names.apex {
                self.err(
                    rec.name.span(),
                    "NS records at the apex come from [[domain.nameservers]]",
                    "list the node under [[domain.nameservers]] instead",
                );
                continue;
            }
            if record_type == RecordType::NS && name.is_wildcard() {
                // RFC 4592 section 4.2: a wildcard delegation makes every
                // name below it a cut that no child zone answers for.
                self.err(
                    rec.name.span(),
                    format!("`{name}` is a wildcard and cannot hold NS records"),
                    "delegate each child zone under its own name",
                );
                continue;
            }
            let data_span = rec.data.span();
            let texts: Vec<String> = match rec.data.into_inner() {
                toml::Value::String(s) => vec![s],
                toml::Value::Array(items) if !items.is_empty() => {
                    let strings: Option<Vec<String>> = items
                        .into_iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect();
                    match strings {
                        Some(s) => s,
                        None => {
                            self.err(
                                data_span,
                                "record data must be strings",
                                "quote each value, e.g. `data = [\"10 mail\"]`",
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.err(
                        data_span,
                        "record data must be a string or a non-empty list of strings",
                        "write it in zone-file form, e.g. `data = \"10 mail.gslb.example.\"` for MX",
                    );
                    continue;
                }
            };
            for text in texts {
                let data = match parse_rdata(record_type, &text, names) {
                    Ok(d) => d,
                    Err(e) => {
                        self.err(
                            data_span.clone(),
                            format!("`{text}` is not valid {record_type} data: {e}"),
                            rdata_hint(record_type),
                        );
                        continue;
                    }
                };
                let record = StaticRecord {
                    name: name.clone(),
                    ttl: rec.ttl.unwrap_or(default_ttl),
                    data,
                };
                let identity = (LowerName::new(&record.name), record.data.to_string());
                if !seen_records.insert(identity) {
                    self.err(
                        data_span.clone(),
                        format!("{record_type} record `{name} {text}` is defined twice"),
                        "remove the duplicate",
                    );
                    continue;
                }
                out.push((record, rec.name.span()));
            }
        }
        out
    }
}

fn parse_rdata(record_type: RecordType, text: &str, names: &Names) -> Result<RData, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".to_string());
    }
    if record_type == RecordType::TXT && !text.starts_with('"') {
        // Unquoted TXT is taken literally, split into 255-byte strings.
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        return Ok(RData::TXT(TXT::from_bytes(chunks)));
    }
    let data = RData::try_from_str(record_type, text).map_err(|e| e.to_string())?;
    Ok(match data {
        RData::CNAME(CNAME(n)) => RData::CNAME(CNAME(names.absolutize(n))),
        RData::NS(NS(n)) => RData::NS(NS(names.absolutize(n))),
        RData::PTR(PTR(n)) => RData::PTR(PTR(names.absolutize(n))),
        RData::MX(mx) => RData::MX(MX::new(mx.preference, names.absolutize(mx.exchange))),
        RData::SRV(srv) => RData::SRV(SRV::new(
            srv.priority,
            srv.weight,
            srv.port,
            names.absolutize(srv.target),
        )),
        other => other,
    })
}

fn rdata_hint(record_type: RecordType) -> String {
    match record_type {
        RecordType::A => "write an IPv4 address, e.g. `192.0.2.10`",
        RecordType::AAAA => "write an IPv6 address, e.g. `2001:db8::10`",
        RecordType::CNAME | RecordType::NS | RecordType::PTR => {
            "write a name, relative to the domain or ending in a dot"
        }
        RecordType::MX => "write `preference exchange`, e.g. `10 mail`",
        RecordType::SRV => "write `priority weight port target`, e.g. `10 5 5060 sip`",
        RecordType::CAA => "write `flags tag \"value\"`, e.g. `0 issue \"letsencrypt.org\"`",
        RecordType::TXT => "write the text; quote it to give several strings",
        _ => "write it as in a zone file",
    }
    .to_string()
}
