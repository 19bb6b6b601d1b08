//! Placeholder until the GeoIP module lands (same API).
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeoMatch {
    pub location: Option<Location>,
    pub network: ipnet::IpNet,
}

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("geoip not built")]
    Missing,
}

#[derive(Debug)]
pub struct GeoDb;

impl GeoDb {
    pub fn open(_paths: &[PathBuf]) -> Result<GeoDb, GeoError> {
        Err(GeoError::Missing)
    }
    pub fn open_bytes(_files: Vec<(PathBuf, Vec<u8>)>) -> Result<GeoDb, GeoError> {
        Err(GeoError::Missing)
    }
    pub fn lookup(&self, ip: IpAddr) -> GeoMatch {
        GeoMatch {
            location: None,
            network: ipnet::IpNet::new(ip, 0).unwrap(),
        }
    }
    pub fn description(&self) -> String {
        String::new()
    }
    pub fn attribution(&self) -> Option<&str> {
        None
    }
}
