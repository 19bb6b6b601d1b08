//! `[geoip]`: where client locations come from.

use super::Checker;
use crate::config::raw::RawGeoip;
use crate::config::{GeoipSettings, defaults};

impl Checker<'_, '_> {
    /// `Some(None)`: no `[geoip]`, which is allowed.
    pub(super) fn geoip(&mut self, raw: Option<RawGeoip>) -> Option<Option<GeoipSettings>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let files_span = raw.files.span();
        let files: Vec<std::path::PathBuf> = raw
            .files
            .into_inner()
            .into_iter()
            .map(|f| self.config_dir.join(f.get_ref()))
            .collect();
        // One file with both families, or one per family.
        let files = if (1..=2).contains(&files.len()) {
            Some(files)
        } else {
            self.err(
                files_span,
                "geoip.files must name one or two .mmdb files",
                "one file holding IPv4 and IPv6, or one per family",
            );
            None
        };
        let watch_interval =
            self.duration(raw.watch_interval.as_ref(), defaults::GEOIP_WATCH_INTERVAL);
        Some(Some(GeoipSettings {
            files: files?,
            watch_interval: watch_interval?,
        }))
    }
}
