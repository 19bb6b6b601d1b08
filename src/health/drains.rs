//! Operator drains: forced-out zones and endpoints.
//!
//! Kept apart from observed health so a drain never hides what the probes
//! see, and both are shown. Persisted as a small JSON file, written to a
//! temporary file and renamed over the old one, so a crash mid-write never
//! leaves half a file and a restart keeps every drain.

use std::collections::BTreeSet;
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
    /// Single endpoints drained: one service in one zone.
    #[serde(default)]
    pub endpoints: BTreeSet<DrainedEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainedEndpoint {
    /// The service's fully qualified name, lowercase.
    pub service: String,
    pub zone: String,
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
            Ok(text) => serde_json::from_str(&text).map_err(|cause| DrainsError::Parse {
                path: path.to_path_buf(),
                cause,
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Drains::default()),
            Err(cause) => Err(DrainsError::Read {
                path: path.to_path_buf(),
                cause,
            }),
        }
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), DrainsError> {
        let err = |cause| DrainsError::Write {
            path: path.to_path_buf(),
            cause,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string_pretty(self).expect("drains serialize");
        std::fs::write(&tmp, text + "\n").map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    pub fn is_zone_drained(&self, zone: &str) -> bool {
        self.zones.contains(zone)
    }

    pub fn is_endpoint_drained(&self, service: &Name, zone: &str) -> bool {
        self.endpoints.contains(&DrainedEndpoint {
            service: service_key(service),
            zone: zone.to_string(),
        })
    }

    /// Drained either way: the whole zone, or this service in it.
    pub fn is_drained(&self, service: &Name, zone: &str) -> bool {
        self.is_zone_drained(zone) || self.is_endpoint_drained(service, zone)
    }

    /// Sets a zone's drain; returns whether anything changed.
    pub fn set_zone(&mut self, zone: &str, drained: bool) -> bool {
        if drained {
            self.zones.insert(zone.to_string())
        } else {
            self.zones.remove(zone)
        }
    }

    /// Sets one endpoint's drain; returns whether anything changed.
    pub fn set_endpoint(&mut self, service: &Name, zone: &str, drained: bool) -> bool {
        let key = DrainedEndpoint {
            service: service_key(service),
            zone: zone.to_string(),
        };
        if drained {
            self.endpoints.insert(key)
        } else {
            self.endpoints.remove(&key)
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
        assert!(loaded.is_drained(&www, "eu-west"));
        assert!(loaded.is_drained(&Name::from_ascii("www.gslb.example.").unwrap(), "us-east"));
        assert!(!loaded.is_drained(&www, "ap-south"));
        std::fs::remove_dir_all(&dir).unwrap();
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
