//! `[dnssec]`: the signing key file, published keys, and the validity and
//! refresh of signatures. Key files are read here, when the config is
//! loaded, so a missing or wrong key is reported at the line naming it and
//! a reload with a bad key changes nothing.

use std::sync::Arc;

use toml::Spanned;

use super::{Checker, parse_duration};
use crate::config::raw::RawDnssec;
use crate::config::{DnssecSettings, Domain, defaults};
use crate::dnssec::key::{Algorithm, Dnskey, SigningKey};

impl Checker<'_, '_> {
    /// `Some(None)`: no `[dnssec]`, the domain is unsigned.
    pub(super) fn dnssec(
        &mut self,
        raw: Option<Spanned<RawDnssec>>,
        domain: Option<&Domain>,
    ) -> Option<Option<DnssecSettings>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let table_span = raw.span();
        let raw = raw.into_inner();
        // Unset, the key's own algorithm is taken; set, the key must match.
        let algorithm = self.setting(raw.algorithm.as_ref(), None, |text| {
            Algorithm::parse(text).map(Some).ok_or_else(|| {
                (
                    format!("dnssec.algorithm `{text}` is not offered"),
                    "use \"ecdsap256sha256\" (13) or \"ed25519\" (15)".to_string(),
                )
            })
        });
        let key = match &raw.key_file {
            None => {
                self.err(
                    table_span.start..table_span.start,
                    "[dnssec] has no key_file",
                    "name the private key: key_file = \"keys/gslb.example.pem\"; make one with `meridian dnssec keygen --domain NAME`",
                );
                None
            }
            Some(file) => self.signing_key(file, algorithm.flatten()),
        };
        let mut published = Some(Vec::new());
        for file in &raw.publish {
            match self.published_key(file, domain) {
                Some(key) => {
                    if let Some(list) = published.as_mut() {
                        list.push(key);
                    }
                }
                None => published = None,
            }
        }
        let validity = self.duration_of(raw.validity.as_ref(), defaults::DNSSEC_VALIDITY);
        let refresh = match (raw.refresh.as_ref(), validity) {
            (None, Some(validity)) => Some(validity / 2),
            (Some(refresh), Some(validity)) => {
                match self.duration_of(Some(refresh), validity / 2) {
                    Some(r) if r <= validity / 2 => Some(r),
                    Some(_) => {
                        self.err(
                            refresh.span(),
                            "dnssec.refresh is more than half of dnssec.validity",
                            "signatures would come close to expiring before they are renewed; use at most half the validity",
                        );
                        None
                    }
                    None => None,
                }
            }
            (_, None) => None,
        };
        let dnskey_ttl = raw
            .dnskey_ttl
            .map(Spanned::into_inner)
            .or(domain.map(|d| d.ttl));
        Some(Some(DnssecSettings {
            key: Arc::new(key?),
            published: published?,
            validity: validity?,
            refresh: refresh?,
            dnskey_ttl: dnskey_ttl?,
        }))
    }

    fn duration_of(
        &mut self,
        raw: Option<&Spanned<String>>,
        default: std::time::Duration,
    ) -> Option<std::time::Duration> {
        self.setting(raw, default, |text| {
            parse_duration(text)
                .filter(|d| d.as_secs() >= 3600)
                .ok_or_else(|| {
                    (
                        format!("`{text}` is not a duration of an hour or more"),
                        "write a number with a unit: `14d`, `168h`".to_string(),
                    )
                })
        })
    }

    fn signing_key(
        &mut self,
        file: &Spanned<String>,
        algorithm: Option<Algorithm>,
    ) -> Option<SigningKey> {
        let path = self.config_dir.join(file.get_ref());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                self.err(
                    file.span(),
                    format!("cannot read dnssec.key_file {}: {err}", path.display()),
                    "check the path (relative paths are relative to this file) and that the user Meridian runs as may read it",
                );
                return None;
            }
        };
        match SigningKey::from_pem(&text) {
            Ok(key) if algorithm.is_some_and(|a| a != key.algorithm()) => {
                self.err(
                    file.span(),
                    format!(
                        "{} is an algorithm {} key, but dnssec.algorithm is {}",
                        path.display(),
                        key.algorithm(),
                        algorithm.expect("checked")
                    ),
                    "set dnssec.algorithm to the key's algorithm, or name a key of the configured one",
                );
                None
            }
            Ok(key) => Some(key),
            Err(err) => {
                self.err(
                    file.span(),
                    format!("dnssec.key_file {}: {err}", path.display()),
                    "make a key with `meridian dnssec keygen --domain NAME`",
                );
                None
            }
        }
    }

    fn published_key(&mut self, file: &Spanned<String>, domain: Option<&Domain>) -> Option<Dnskey> {
        let path = self.config_dir.join(file.get_ref());
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| Dnskey::parse(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok((owner, key)) => {
                let apex = domain.map(|d| d.name.to_ascii().to_ascii_lowercase());
                let owner = owner.to_ascii_lowercase();
                if apex.is_some_and(|apex| apex != owner && format!("{owner}.") != apex) {
                    self.err(
                        file.span(),
                        format!(
                            "{} is a DNSKEY of `{owner}`, not of this domain",
                            path.display()
                        ),
                        "publish keys made for this domain's apex",
                    );
                    return None;
                }
                Some(key)
            }
            Err(err) => {
                self.err(
                    file.span(),
                    format!("dnssec.publish {}: {err}", path.display()),
                    "name a DNSKEY file as `meridian dnssec keygen` writes it (the .key file)",
                );
                None
            }
        }
    }
}
