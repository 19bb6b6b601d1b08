//! Operator drains: forced-out zones and endpoints.
//!
//! Kept apart from observed health so a drain never hides what the probes
//! see, and both are shown. Persisted as a small JSON file, written to a
//! temporary file and renamed over the old one, so a crash mid-write never
//! leaves half a file and a restart keeps every drain.
//!
//! Every change to a target (a zone, one service's endpoints in a zone, or
//! one named endpoint of a zone that holds several) is kept as a [`DrainRecord`] stamped with a [`Version`]: when it was made
//! and on which node. Nodes exchange their records and each keeps, per
//! target, the record with the highest version (a last-writer-wins
//! register), so concurrent drains and undrains made on different nodes end
//! the same on every node, whatever order they arrive in. An undrain is a
//! record too, so it spreads like a drain.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{LowerName, Name};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drains {
    /// Zones drained for every service.
    #[serde(default)]
    pub zones: BTreeSet<String>,
    /// Single endpoints drained: one service in one zone (all of its
    /// endpoints there), or one named endpoint of it.
    #[serde(default)]
    pub endpoints: BTreeSet<DrainedEndpoint>,
    /// The latest change per target (see [`target_key`]), drains and
    /// undrains alike; `zones` and `endpoints` follow from these. Files
    /// written before versions existed have none: their drains count as
    /// made at time 0.
    #[serde(default)]
    pub records: BTreeMap<String, DrainRecord>,
}

/// When and where a drain change was made; ordered by time, then node
/// name, so any two versions compare the same way on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub node: String,
}

/// One change to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRecord {
    pub drained: bool,
    pub version: Version,
    /// Who asked (the requester's address, or the API's caller as given).
    #[serde(default)]
    pub who: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a drain applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainKey {
    Zone(String),
    /// A service (by [`service_key`]) in a zone: with `endpoint`, only
    /// its endpoint of that name there; without, all of them.
    Endpoint {
        service: String,
        zone: String,
        endpoint: Option<String>,
    },
}

/// The key a target's record is kept under: `zone/<zone>`,
/// `endpoint/<service>/<zone>` or `endpoint/<service>/<zone>/<name>`.
/// Service names hold no `/` (DNS names as Meridian accepts them), nor do
/// zone and endpoint names (letters, digits, `-`, `_`).
pub fn target_key(key: &DrainKey) -> String {
    match key {
        DrainKey::Zone(zone) => format!("zone/{zone}"),
        DrainKey::Endpoint {
            service,
            zone,
            endpoint: None,
        } => format!("endpoint/{service}/{zone}"),
        DrainKey::Endpoint {
            service,
            zone,
            endpoint: Some(name),
        } => format!("endpoint/{service}/{zone}/{name}"),
    }
}

fn parse_target_key(key: &str) -> Option<DrainKey> {
    if let Some(zone) = key.strip_prefix("zone/") {
        return Some(DrainKey::Zone(zone.to_string()));
    }
    let mut parts = key.strip_prefix("endpoint/")?.split('/');
    let (service, zone) = (parts.next()?, parts.next()?);
    let endpoint = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some(DrainKey::Endpoint {
        service: service.to_string(),
        zone: zone.to_string(),
        endpoint,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainedEndpoint {
    /// The service's fully qualified name, lowercase.
    pub service: String,
    pub zone: String,
    /// One named endpoint of the zone; `None`: all of the service's
    /// endpoints there (and how files written before names read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Why the state file could not be read or written. The message includes
/// the underlying error (`cause`), so it is not also the error's `source()`:
/// printed with its chain, the cause would appear twice.
#[derive(Debug, thiserror::Error)]
pub enum DrainsError {
    #[error("cannot read state file {}: {cause}; check its permissions, or remove it to start with no drains", path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("state file {} is not valid: {cause}; fix it or remove it to start with no drains", path.display())]
    Parse {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("cannot write state file {}: {cause}; drains still apply but will not survive a restart", path.display())]
    Write { path: PathBuf, cause: io::Error },
}

/// The key drains use for a service: its name, lowercase, fully qualified.
pub fn service_key(name: &Name) -> String {
    LowerName::new(name).to_string()
}

impl Drains {
    /// Reads the state file; a missing file means no drains.
    pub fn load(path: &Path) -> Result<Drains, DrainsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut drains: Drains =
                    serde_json::from_str(&text).map_err(|cause| DrainsError::Parse {
                        path: path.to_path_buf(),
                        cause,
                    })?;
                drains.fill_missing_records();
                Ok(drains)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Drains::default()),
            Err(cause) => Err(DrainsError::Read {
                path: path.to_path_buf(),
                cause,
            }),
        }
    }

    /// Writes the state file atomically and durably: a temporary file,
    /// flushed to disk, renamed over the old one, then the directory
    /// flushed. Without the first flush a power loss after the rename can
    /// leave an empty file (the rename reached the disk, the data did not),
    /// which stops the node at its next start; without the second the
    /// rename itself may be lost.
    pub fn save(&self, path: &Path) -> Result<(), DrainsError> {
        use std::io::Write;
        let err = |cause| DrainsError::Write {
            path: path.to_path_buf(),
            cause,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string_pretty(self).expect("drains serialize");
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.write_all(b"\n").map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(err)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }

    /// Zones this state drains (whole, or for one service) that `config`
    /// does not have: left over from a renamed or removed zone, or a typo
    /// in a hand-edited file. They do no harm but drain nothing.
    pub fn unknown_zones(&self, config: &crate::config::Config) -> Vec<String> {
        let known = |zone: &str| config.zones.iter().any(|z| z.name == zone);
        let mut unknown: Vec<String> = self
            .zones
            .iter()
            .chain(self.endpoints.iter().map(|e| &e.zone))
            .filter(|zone| !known(zone))
            .cloned()
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    }

    /// Named endpoints this state drains that `config` does not have (a
    /// renamed or removed blue/green endpoint), as `service zone/name`,
    /// for zones it has (an unknown zone is reported by
    /// [`Drains::unknown_zones`]). They drain nothing.
    pub fn unknown_endpoints(&self, config: &crate::config::Config) -> Vec<String> {
        self.endpoints
            .iter()
            .filter_map(|d| {
                let name = d.endpoint.as_deref()?;
                let zone = config.zone_index(&d.zone)?;
                let known = config.services.iter().any(|s| {
                    service_key(&s.name) == d.service
                        && s.endpoint_index(zone, Some(name)).is_some()
                });
                (!known).then(|| format!("{} {}/{name}", d.service, d.zone))
            })
            .collect()
    }

    pub fn is_zone_drained(&self, zone: &str) -> bool {
        self.zones.contains(zone)
    }

    /// This service is drained in `zone` (all its endpoints there), or,
    /// with `endpoint`, its endpoint of that name is.
    pub fn is_endpoint_drained(&self, service: &Name, zone: &str, endpoint: Option<&str>) -> bool {
        // Usually none: then no key is made (every endpoint of every
        // service is asked at each snapshot build).
        if self.endpoints.is_empty() {
            return false;
        }
        let mut drained = DrainedEndpoint {
            service: service_key(service),
            zone: zone.to_string(),
            endpoint: None,
        };
        if self.endpoints.contains(&drained) {
            return true;
        }
        drained.endpoint = endpoint.map(str::to_string);
        endpoint.is_some() && self.endpoints.contains(&drained)
    }

    /// Drained any way: the whole zone, this service in it, or this
    /// endpoint by name.
    pub fn is_drained(&self, service: &Name, zone: &str, endpoint: Option<&str>) -> bool {
        self.is_zone_drained(zone) || self.is_endpoint_drained(service, zone, endpoint)
    }

    /// Sets a zone's drain as an anonymous local change; returns whether
    /// anything changed.
    pub fn set_zone(&mut self, zone: &str, drained: bool) -> bool {
        let version = self.next_version(&DrainKey::Zone(zone.to_string()), 0, "");
        self.set(
            DrainKey::Zone(zone.to_string()),
            DrainRecord {
                drained,
                version,
                who: String::new(),
                reason: None,
            },
        )
    }

    /// Sets one endpoint's drain as an anonymous local change; returns
    /// whether anything changed.
    pub fn set_endpoint(&mut self, service: &Name, zone: &str, drained: bool) -> bool {
        self.set_named_endpoint(service, zone, None, drained)
    }

    /// Sets the drain of one named endpoint (`None`: all the service's
    /// endpoints in the zone) as an anonymous local change; returns whether
    /// anything changed.
    pub fn set_named_endpoint(
        &mut self,
        service: &Name,
        zone: &str,
        endpoint: Option<&str>,
        drained: bool,
    ) -> bool {
        let key = DrainKey::Endpoint {
            service: service_key(service),
            zone: zone.to_string(),
            endpoint: endpoint.map(str::to_string),
        };
        let version = self.next_version(&key, 0, "");
        self.set(
            key,
            DrainRecord {
                drained,
                version,
                who: String::new(),
                reason: None,
            },
        )
    }

    /// A version for a new local change to `key` made at `now_ms` on
    /// `node`: later than any the target has, even if this node's clock is
    /// behind the one that made the current record, so a local change
    /// always takes effect.
    pub fn next_version(&self, key: &DrainKey, now_ms: u64, node: &str) -> Version {
        let floor = self
            .records
            .get(&target_key(key))
            .map_or(0, |r| r.version.at_ms + 1);
        Version {
            at_ms: now_ms.max(floor),
            node: node.to_string(),
        }
    }

    /// Takes `record` for `key` if it is newer than the one kept; returns
    /// whether the target's drained state changed.
    pub fn set(&mut self, key: DrainKey, record: DrainRecord) -> bool {
        let before = self.is_target_drained(&key);
        let _ = self.record(key.clone(), record);
        before != self.is_target_drained(&key)
    }

    fn is_target_drained(&self, key: &DrainKey) -> bool {
        match key {
            DrainKey::Zone(zone) => self.zones.contains(zone),
            DrainKey::Endpoint {
                service,
                zone,
                endpoint,
            } => self.endpoints.contains(&DrainedEndpoint {
                service: service.clone(),
                zone: zone.clone(),
                endpoint: endpoint.clone(),
            }),
        }
    }

    /// Takes `record` for `key` if its version is newer than the one kept
    /// (an equal version is the same change). Returns whether it was taken.
    pub fn record(&mut self, key: DrainKey, record: DrainRecord) -> bool {
        let id = target_key(&key);
        if let Some(kept) = self.records.get(&id)
            && kept.version >= record.version
        {
            return false;
        }
        let drained = record.drained;
        self.records.insert(id, record);
        match key {
            DrainKey::Zone(zone) if drained => self.zones.insert(zone),
            DrainKey::Zone(zone) => self.zones.remove(&zone),
            DrainKey::Endpoint {
                service,
                zone,
                endpoint,
            } => {
                let endpoint = DrainedEndpoint {
                    service,
                    zone,
                    endpoint,
                };
                if drained {
                    self.endpoints.insert(endpoint)
                } else {
                    self.endpoints.remove(&endpoint)
                }
            }
        };
        true
    }

    /// Folds in another node's records; returns whether any was taken.
    /// Applying the same records in any order, any number of times, gives
    /// the same drains.
    pub fn merge(&mut self, records: &BTreeMap<String, DrainRecord>) -> bool {
        let mut taken = false;
        for (id, record) in records {
            if let Some(key) = parse_target_key(id) {
                taken |= self.record(key, record.clone());
            }
        }
        taken
    }

    /// Records for drains restored from a file written before versions
    /// existed, so they spread to peers (at version 0, the oldest).
    pub fn fill_missing_records(&mut self) {
        let zones: Vec<DrainKey> = self.zones.iter().cloned().map(DrainKey::Zone).collect();
        let endpoints = self.endpoints.iter().map(|e| DrainKey::Endpoint {
            service: e.service.clone(),
            zone: e.zone.clone(),
            endpoint: e.endpoint.clone(),
        });
        for key in zones.into_iter().chain(endpoints.collect::<Vec<_>>()) {
            self.records
                .entry(target_key(&key))
                .or_insert_with(|| DrainRecord {
                    drained: true,
                    version: Version::default(),
                    who: "state file".into(),
                    reason: None,
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_round_trip_through_the_state_file() {
        let dir = std::env::temp_dir().join(format!("meridian-drains-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        assert_eq!(Drains::load(&path).unwrap(), Drains::default());

        let www = Name::from_ascii("WWW.gslb.example.").unwrap();
        let mut drains = Drains::default();
        assert!(drains.set_zone("eu-west", true));
        assert!(!drains.set_zone("eu-west", true));
        assert!(drains.set_endpoint(&www, "us-east", true));
        drains.save(&path).unwrap();

        let loaded = Drains::load(&path).unwrap();
        assert_eq!(loaded, drains);
        assert!(loaded.is_drained(&www, "eu-west", None));
        assert!(loaded.is_drained(
            &Name::from_ascii("www.gslb.example.").unwrap(),
            "us-east",
            Some("blue")
        ));
        assert!(!loaded.is_drained(&www, "ap-south", None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn change(drained: bool, at_ms: u64, node: &str) -> DrainRecord {
        DrainRecord {
            drained,
            version: Version {
                at_ms,
                node: node.into(),
            },
            who: format!("operator on {node}"),
            reason: None,
        }
    }

    #[test]
    fn the_newest_change_wins_in_any_order() {
        let zone = || DrainKey::Zone("eu-west".into());
        let changes = [
            (zone(), change(true, 10, "a")),
            (zone(), change(false, 12, "c")),
            (zone(), change(true, 12, "b")),
        ];
        // Every order of arrival ends the same: (12, "c") is the newest.
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
            let mut drains = Drains::default();
            for i in order {
                let (key, record) = changes[i].clone();
                let _ = drains.record(key, record);
            }
            assert!(!drains.is_zone_drained("eu-west"), "{order:?}");
            assert_eq!(drains.records["zone/eu-west"].version.node, "c");
        }
    }

    #[test]
    fn merging_records_is_idempotent_and_converges() {
        let mut a = Drains::default();
        let mut b = Drains::default();
        let www = Name::from_ascii("www.gslb.example.").unwrap();
        let key = DrainKey::Endpoint {
            service: service_key(&www),
            zone: "us-east".into(),
            endpoint: None,
        };
        assert!(a.set(key.clone(), change(true, 5, "a")));
        assert!(b.set(DrainKey::Zone("ap-south".into()), change(true, 6, "b")));
        let a_records = a.records.clone();
        assert!(a.merge(&b.records));
        assert!(b.merge(&a_records));
        assert!(!a.merge(&b.records), "nothing new the second time");
        assert_eq!(a, b);
        assert!(a.is_drained(&www, "us-east", None) && a.is_zone_drained("ap-south"));
    }

    #[test]
    fn a_named_endpoint_drains_alone_and_its_record_travels() {
        let www = Name::from_ascii("www.gslb.example.").unwrap();
        let mut a = Drains::default();
        assert!(a.set_named_endpoint(&www, "us-east", Some("blue"), true));
        assert!(a.is_drained(&www, "us-east", Some("blue")));
        assert!(!a.is_drained(&www, "us-east", Some("green")));
        assert!(
            !a.is_drained(&www, "us-east", None),
            "the zone's other endpoints serve"
        );
        assert!(
            a.records
                .contains_key("endpoint/www.gslb.example./us-east/blue")
        );
        // Another node takes it from the records alone.
        let mut b = Drains::default();
        assert!(b.merge(&a.records));
        assert!(b.is_drained(&www, "us-east", Some("blue")));
        assert!(!b.is_drained(&www, "us-east", Some("green")));
        // Draining the service in the zone covers every named endpoint.
        assert!(b.set_endpoint(&www, "us-east", true));
        assert!(b.is_drained(&www, "us-east", Some("green")));
        // Undrained by name, and the undrain travels too.
        let version = a.next_version(
            &DrainKey::Endpoint {
                service: service_key(&www),
                zone: "us-east".into(),
                endpoint: Some("blue".into()),
            },
            0,
            "a",
        );
        assert!(version.at_ms > 0);
        assert!(a.set_named_endpoint(&www, "us-east", Some("blue"), false));
        let mut c = Drains::default();
        let _ = c.merge(&b.records);
        let _ = c.merge(&a.records);
        assert!(!c.endpoints.iter().any(|e| e.endpoint.is_some()), "{c:?}");
    }

    #[test]
    fn target_keys_parse_back() {
        for key in [
            DrainKey::Zone("eu-west".into()),
            DrainKey::Endpoint {
                service: "www.gslb.example.".into(),
                zone: "eu-west".into(),
                endpoint: None,
            },
            DrainKey::Endpoint {
                service: "www.gslb.example.".into(),
                zone: "eu-west".into(),
                endpoint: Some("green".into()),
            },
        ] {
            assert_eq!(parse_target_key(&target_key(&key)), Some(key));
        }
        assert_eq!(parse_target_key("endpoint/a/b/c/d"), None);
    }

    #[test]
    fn a_local_change_outranks_a_record_from_a_clock_ahead() {
        let mut drains = Drains::default();
        let zone = DrainKey::Zone("eu-west".into());
        let _ = drains.record(zone.clone(), change(true, 1_000_000, "fast-clock"));
        let version = drains.next_version(&zone, 5, "here");
        assert_eq!(version.at_ms, 1_000_001);
        assert!(drains.set(zone, change(false, version.at_ms, "here")));
        assert!(!drains.is_zone_drained("eu-west"));
    }

    #[test]
    fn a_state_file_without_versions_still_loads() {
        let path = std::env::temp_dir().join(format!("meridian-old-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"zones": ["eu-west"], "endpoints": []}"#).unwrap();
        let drains = Drains::load(&path).unwrap();
        assert!(drains.is_zone_drained("eu-west"));
        assert_eq!(drains.records["zone/eu-west"].version, Version::default());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn saving_leaves_no_temporary_file_and_needs_the_directory() {
        let dir = std::env::temp_dir().join(format!("meridian-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut drains = Drains::default();
        drains.set_zone("eu-west", true);
        drains.save(&path).unwrap();
        assert_eq!(Drains::load(&path).unwrap(), drains);
        assert!(!dir.join("state.json.tmp").exists());
        let missing = dir.join("no-such-dir").join("state.json");
        let err = drains.save(&missing).unwrap_err();
        assert!(err.to_string().contains("cannot write state file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn drains_of_zones_the_config_lacks_are_named() {
        let config = crate::config::Config::parse(
            r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
[[zones]]
name = "eu-west"
latitude = 0.0
longitude = 0.0
"#,
            "test.toml".as_ref(),
        )
        .unwrap();
        let mut drains = Drains::default();
        drains.set_zone("eu-west", true);
        drains.set_zone("eu-wset", true);
        let www = Name::from_ascii("www.gslb.test.").unwrap();
        drains.set_endpoint(&www, "ap-gone", true);
        assert_eq!(drains.unknown_zones(&config), ["ap-gone", "eu-wset"]);
        drains.set_named_endpoint(&www, "eu-west", Some("blue"), true);
        drains.set_named_endpoint(&www, "ap-gone", Some("blue"), true);
        assert_eq!(
            drains.unknown_endpoints(&config),
            ["www.gslb.test. eu-west/blue"]
        );
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_set() {
        let path = std::env::temp_dir().join(format!("meridian-bad-{}.json", std::process::id()));
        std::fs::write(&path, "{ not json").unwrap();
        let err = Drains::load(&path).unwrap_err();
        assert!(err.to_string().contains("is not valid"), "{err}");
        // The JSON error is in the message, so not also the source: a
        // reporter printing the chain would name it twice.
        assert!(std::error::Error::source(&err).is_none());
        std::fs::remove_file(&path).unwrap();
    }
}
