//! Reading what lives on disk: the config file on reload, the GeoIP files
//! when they are replaced, the drains state file at start; and carrying
//! health over from one config to the next.
//!
//! Reads run on the blocking pool so the publisher's task never stalls on
//! a slow disk; a file that fails its checks is rejected whole and the
//! previous state keeps serving.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{CheckKind, Config};
use crate::health::drains::{Drains, DrainsError, service_key};
use crate::health::state::AddressHealth;
use crate::health::{AddressKey, initial_health};
use crate::routing::geo::{GeoDb, GeoError};

/// Why a reload was rejected; the previous config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error(transparent)]
    Node(#[from] crate::config::NodeError),
    #[error(transparent)]
    Env(#[from] crate::config::EnvError),
}

/// Loads the persisted drains named by the config (none without a file).
pub fn load_drains(config: &Config) -> Result<Drains, DrainsError> {
    match &config.server.state_file {
        Some(path) => Drains::load(path),
        None => Ok(Drains::default()),
    }
}

/// Reads and checks the config file `current` came from, keeping the
/// addresses being served (sockets are bound once; they may have come from
/// flags), and opens its GeoIP files if `[geoip]` changed.
pub async fn read_config(
    current: &Arc<Config>,
    current_geo: Option<Arc<GeoDb>>,
) -> Result<(Config, Option<Arc<GeoDb>>), ReloadError> {
    let previous = current.clone();
    let node = current.cluster.this_name().map(str::to_string);
    let mut next =
        tokio::task::spawn_blocking(move || Config::load_after(&previous.source, Some(&previous)))
            .await
            .expect("config loading does not panic")?
            .for_node(node.as_deref())?
            .with_env(|name| std::env::var(name).ok())?;
    // Compared with what the file said before, not with what is served: the
    // served addresses may come from flags, and differ from the file on
    // every reload without anything having changed.
    if next.server.file_listen != current.server.file_listen {
        let message = format!(
            "listen addresses in {} changed (dns {}, admin {}); they apply at the next restart",
            next.source.display(),
            listing(&next.server.file_listen.0),
            next.server
                .file_listen
                .1
                .map_or("off".to_string(), |a| a.to_string()),
        );
        tracing::warn!("{message}");
        next.warnings.push(message);
    }
    next.server.dns = current.server.dns.clone();
    next.server.admin = current.server.admin;
    let geo = if next.geoip == current.geoip {
        current_geo
    } else {
        match next.geoip.clone() {
            None => None,
            Some(settings) => {
                let db = tokio::task::spawn_blocking(move || GeoDb::open(&settings.files))
                    .await
                    .expect("GeoIP loading does not panic")?;
                Some(Arc::new(db))
            }
        }
    };
    Ok((next, geo))
}

fn listing(addrs: &[std::net::SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    list.join(" ")
}

/// The health record of every address of `next`, in config order: an
/// address that stays (same service, zone and address) and has been
/// probed keeps its record; a new or changed one starts afresh, as does
/// any whose check is now `none` (always up). `board` may hold only the
/// probed records: the others are not kept anyway.
pub fn carry_over(
    current: &Config,
    board: impl IntoIterator<Item = (AddressKey, AddressHealth)>,
    next: &Config,
    now: SystemTime,
) -> Vec<(AddressKey, AddressHealth)> {
    // By service key, then zone and address: the service's key (a
    // lowercased string) is made once per service, not per address.
    let mut old: HashMap<String, HashMap<(&str, IpAddr), AddressHealth>> = HashMap::new();
    for (key, health) in board {
        if health.probes == 0 {
            continue;
        }
        let service = &current.services[key.service];
        let endpoint = &service.endpoints[key.endpoint];
        old.entry(service_key(&service.name)).or_default().insert(
            (
                current.zones[endpoint.zone].name.as_str(),
                endpoint.addresses[key.address],
            ),
            health,
        );
    }
    let mut out = Vec::with_capacity(crate::health::address_keys(next).count());
    for (s, service) in next.services.iter().enumerate() {
        let mut kept = if old.is_empty() {
            None
        } else {
            old.get_mut(&service_key(&service.name))
        };
        for (e, endpoint) in service.endpoints.iter().enumerate() {
            let zone = next.zones[endpoint.zone].name.as_str();
            for (a, address) in endpoint.addresses.iter().enumerate() {
                let key = AddressKey {
                    service: s,
                    endpoint: e,
                    address: a,
                };
                // An address now checked `none` starts afresh, always up.
                let carried = (endpoint.check.kind != CheckKind::None)
                    .then(|| kept.as_mut()?.remove(&(zone, *address)))
                    .flatten();
                let health = carried.unwrap_or_else(|| initial_health(endpoint.check.kind, now));
                out.push((key, health));
            }
        }
    }
    out
}

/// Size, modification time and inode of a file, to notice a replacement.
pub type FileStamp = Option<(u64, SystemTime, u64)>;

/// The stamps of the config's GeoIP files.
pub fn geo_stamps(config: &Config) -> Vec<FileStamp> {
    geo_files(config).iter().map(|f| file_stamp(f)).collect()
}

/// Whether the config's GeoIP files still have `stamps`, which
/// [`geo_stamps`] returned: compared file by file, with nothing built (the
/// check runs every few seconds, and an idle node should not allocate).
pub fn geo_stamps_unchanged(config: &Config, stamps: &[FileStamp]) -> bool {
    let files = geo_files(config);
    files.len() == stamps.len() && files.iter().zip(stamps).all(|(f, s)| file_stamp(f) == *s)
}

fn geo_files(config: &Config) -> &[PathBuf] {
    config.geoip.as_ref().map_or(&[], |g| &g.files)
}

fn file_stamp(file: &Path) -> FileStamp {
    // The inode too: a replace by rename (geoipupdate's way) changes it
    // even when size and coarse mtime do not.
    std::fs::metadata(file)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?, m.ino())))
}

/// Opens the GeoIP database a config names, if any (at start-up, and by
/// `meridian check`).
pub fn open_geoip(config: &Config) -> Result<Option<Arc<GeoDb>>, GeoError> {
    config
        .geoip
        .as_ref()
        .map(|settings| GeoDb::open(&settings.files).map(Arc::new))
        .transpose()
}

/// Opens the GeoIP files again off the publisher's task.
pub async fn reopen_geoip(config: &Config) -> Option<Result<GeoDb, GeoError>> {
    let files = config.geoip.as_ref()?.files.clone();
    match tokio::task::spawn_blocking(move || GeoDb::open(&files)).await {
        Ok(result) => Some(result),
        Err(err) => {
            tracing::error!(%err, "GeoIP reload task failed; keeping the previous database");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::Observed;

    fn config_text() -> String {
        crate::test_config::www("", &["192.0.2.1"], "192.0.2.2")
    }

    use crate::test_config::parse;

    fn probed_down(now: SystemTime) -> AddressHealth {
        let mut health = AddressHealth::new(now);
        for _ in 0..3 {
            let _ = health.record(Err("refused".into()), None, 2, 2, now);
        }
        assert_eq!(health.observed, Observed::Down);
        health
    }

    fn key(service: usize, endpoint: usize) -> AddressKey {
        AddressKey {
            service,
            endpoint,
            address: 0,
        }
    }

    #[test]
    fn an_address_that_stays_keeps_its_health_and_a_changed_one_starts_afresh() {
        let now = SystemTime::now();
        let current = parse(&config_text());
        let board = vec![(key(0, 0), probed_down(now)), (key(0, 1), probed_down(now))];
        // Zone b's address changes; a new service `api` comes first, so
        // every index of `www` moves.
        let next = parse(&config_text().replace("192.0.2.2", "192.0.2.3").replace(
            "[[services]]\nname = \"www\"",
            "[[services]]\nname = \"api\"\n[[services.endpoints]]\nzone = \"a\"\naddresses = [\"192.0.2.1\"]\n\n[[services]]\nname = \"www\"",
        ));
        assert_eq!(next.services[1].name.to_string(), "www.gslb.test.");
        let carried: HashMap<_, _> = carry_over(&current, board, &next, now)
            .into_iter()
            .collect();
        assert_eq!(
            carried[&key(1, 0)].observed,
            Observed::Down,
            "www in a stays down"
        );
        assert_eq!(
            carried[&key(1, 1)].observed,
            Observed::Unknown,
            "changed address"
        );
        assert_eq!(
            carried[&key(0, 0)].observed,
            Observed::Unknown,
            "api is new"
        );
    }

    #[test]
    fn geo_stamps_are_unchanged_until_a_file_is_replaced_or_the_list_changes() {
        let dir = std::env::temp_dir().join(format!("meridian-stamps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.mmdb"), dir.join("b.mmdb"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        let mut config = parse(&config_text());
        config.geoip = Some(crate::config::GeoipSettings {
            files: vec![a.clone(), b.clone()],
            watch_interval: std::time::Duration::from_secs(5),
        });
        let stamps = geo_stamps(&config);
        assert!(geo_stamps_unchanged(&config, &stamps));
        assert!(
            !geo_stamps_unchanged(&config, &stamps[..1]),
            "one file fewer"
        );
        // Replaced by rename, as geoipupdate does: a new inode and size.
        let new = dir.join("b.new");
        std::fs::write(&new, b"two, updated").unwrap();
        std::fs::rename(&new, &b).unwrap();
        assert!(!geo_stamps_unchanged(&config, &stamps));
        assert!(geo_stamps_unchanged(&config, &geo_stamps(&config)));
        std::fs::remove_file(&a).unwrap();
        assert!(!geo_stamps_unchanged(
            &config,
            &geo_stamps(&parse(&config_text()))
        ));
        assert!(!geo_stamps_unchanged(&config, &stamps), "a file gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_address_whose_check_becomes_none_is_up() {
        let now = SystemTime::now();
        let current = parse(&config_text());
        let board = vec![(key(0, 0), probed_down(now))];
        let next = parse(&config_text().replace(
            "name = \"www\"",
            "name = \"www\"\ncheck = { kind = \"none\" }",
        ));
        let carried: HashMap<_, _> = carry_over(&current, board, &next, now)
            .into_iter()
            .collect();
        assert_eq!(carried[&key(0, 0)].observed, Observed::Up);
    }
}
