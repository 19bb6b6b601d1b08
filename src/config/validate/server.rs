//! `[server]`: where and how this node listens, and its limits.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use toml::Spanned;

use super::Checker;
use super::values::parse_hex16;
use crate::config::raw::RawServer;
use crate::config::{RrlSettings, ServerSettings, defaults};

/// UDP payload sizes we accept: below 512 is not DNS over UDP at all, and
/// above 4096 (the usual EDNS buffer) replies only fragment.
const UDP_PAYLOAD_LIMITS: RangeInclusive<u16> = 512..=4096;
/// Longest identity: one TXT character-string.
const IDENTITY_MAX_LEN: usize = 255;
use crate::config::defaults::ADMIN_TOKEN_MIN_LEN;

impl Checker<'_, '_> {
    /// A secret written inline (`key`) or read from a file (`key_file`,
    /// trimmed), so the config can be committed without it; at most one of
    /// the two. The file's contents carry the span of its name.
    fn secret_from_file(
        &mut self,
        inline: Option<Spanned<String>>,
        file: Option<Spanned<String>>,
        key: &str,
    ) -> Option<Spanned<String>> {
        match (inline, file) {
            (Some(inline), Some(_)) => {
                self.err(
                    inline.span(),
                    format!("{key} and {key}_file are both set"),
                    format!("keep one: {key}_file keeps the secret out of this file"),
                );
                None
            }
            (Some(inline), None) => Some(inline),
            (None, Some(file)) => {
                let path = self.config_dir.join(file.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some(Spanned::new(file.span(), text.trim().to_string())),
                    Err(err) => {
                        self.err(
                            file.span(),
                            format!("cannot read {key}_file {}: {err}", path.display()),
                            "check the path (relative paths are relative to this file) and that the user Meridian runs as may read it",
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    pub(super) fn server(&mut self, raw: RawServer) -> Option<ServerSettings> {
        let dns = match &raw.dns {
            None => Some(vec![defaults::DNS_LISTEN]),
            Some(list) => self.dns_addresses(list),
        };
        let admin = self.setting(raw.admin.as_ref(), None, |text| {
            text.parse::<SocketAddr>().map(Some).map_err(|_| {
                (
                    format!("`{text}` is not an address and port"),
                    "write it as `127.0.0.1:8053`; keep it on loopback unless a token protects it"
                        .to_string(),
                )
            })
        });
        let udp_payload_max = self.checked(
            raw.udp_payload_max.as_ref(),
            defaults::UDP_PAYLOAD_MAX,
            |v| UDP_PAYLOAD_LIMITS.contains(v),
            |v| {
                (
                    format!("udp_payload_max {v} is out of range"),
                    format!(
                        "use a value between {} and {}; {} avoids fragmentation",
                        UDP_PAYLOAD_LIMITS.start(),
                        UDP_PAYLOAD_LIMITS.end(),
                        defaults::UDP_PAYLOAD_MAX
                    ),
                )
            },
        );
        let tcp_idle_timeout =
            self.duration(raw.tcp_idle_timeout.as_ref(), defaults::TCP_IDLE_TIMEOUT);
        let tcp_max_connections = self.at_least_one(
            raw.tcp_max_connections.as_ref(),
            "tcp_max_connections",
            defaults::TCP_MAX_CONNECTIONS,
        );
        let state_file = raw.state_file.as_ref().map(|f| {
            let file = Path::new(f.get_ref());
            let path = if file.is_absolute() {
                file.to_path_buf()
            } else {
                self.config_dir.join(file)
            };
            // The file is written next to itself (a temporary, then a
            // rename): without its directory the first drain fails.
            let dir = path.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            if !dir.is_dir() {
                self.err(
                    f.span(),
                    format!("state_file's directory {} does not exist", dir.display()),
                    "create it (writable by the user Meridian runs as), or point state_file elsewhere; relative paths are relative to this file",
                );
            }
            path
        });
        let admin_token_raw =
            self.secret_from_file(raw.admin_token, raw.admin_token_file, "admin_token");
        let cookie_secret_raw =
            self.secret_from_file(raw.cookie_secret, raw.cookie_secret_file, "cookie_secret");
        let admin_token = self.setting(admin_token_raw.as_ref(), None, |token| {
            let token = token.trim();
            if token.len() < ADMIN_TOKEN_MIN_LEN {
                Err((
                    "admin_token is too short".to_string(),
                    format!(
                        "use at least {ADMIN_TOKEN_MIN_LEN} random characters, e.g. from `openssl rand -hex 16`"
                    ),
                ))
            } else {
                Ok(Some(token.to_string()))
            }
        });
        let probe_concurrency = self.at_least_one(
            raw.probe_concurrency.as_ref(),
            "probe_concurrency",
            defaults::PROBE_CONCURRENCY,
        );
        let probe_metrics_by_zone = self.setting(
            raw.probe_metrics.as_ref(),
            defaults::PROBE_METRICS_BY_ZONE,
            |v| match v.as_str() {
                "address" => Ok(false),
                "zone" => Ok(true),
                other => Err((
                    format!("probe_metrics \"{other}\" is not known"),
                    "use \"address\" (series per endpoint address) or \"zone\" (summed per zone)"
                        .to_string(),
                )),
            },
        );
        let cookie_secret = self.setting(cookie_secret_raw.as_ref(), None, |hex| {
            parse_hex16(hex.trim()).map(Some).ok_or_else(|| {
                (
                    "cookie_secret must be 32 hexadecimal characters (16 bytes)".to_string(),
                    "generate one with `openssl rand -hex 16`".to_string(),
                )
            })
        });
        let rrl = self.rrl(raw.rrl_responses_per_second, raw.rrl_slip);
        let tcp_max_connections_per_source = self.at_least_one(
            raw.tcp_max_connections_per_source.as_ref(),
            "tcp_max_connections_per_source",
            defaults::TCP_MAX_CONNECTIONS_PER_SOURCE,
        );
        let tcp_max_queries = self.at_least_one(
            raw.tcp_max_queries.as_ref(),
            "tcp_max_queries",
            defaults::TCP_MAX_QUERIES,
        );
        let tcp_read_timeout =
            self.duration(raw.tcp_read_timeout.as_ref(), defaults::TCP_READ_TIMEOUT);
        let identity = self.setting(raw.identity.as_ref(), None, |text| {
            let text = text.trim();
            if text.is_empty() || text.len() > IDENTITY_MAX_LEN || !text.is_ascii() {
                return Err((
                    format!("identity `{text}` is not usable in NSID and id.server"),
                    format!(
                        "use 1 to {IDENTITY_MAX_LEN} ASCII characters, e.g. the node's name `ns1-us-east`"
                    ),
                ));
            }
            Ok(Some(text.to_string()))
        });
        let (dns, admin) = (dns?, admin?);
        Some(ServerSettings {
            file_listen: (dns.clone(), admin),
            dns,
            admin,
            udp_payload_max: udp_payload_max?,
            udp_sockets: raw
                .udp_sockets
                .map_or(defaults::UDP_SOCKETS, Spanned::into_inner),
            tcp_idle_timeout: tcp_idle_timeout?,
            tcp_max_connections: tcp_max_connections?,
            tcp_max_connections_per_source: tcp_max_connections_per_source?,
            state_file,
            admin_token: admin_token?,
            probe_concurrency: probe_concurrency?,
            cookie_secret: cookie_secret?,
            rrl: rrl?,
            tcp_max_queries: tcp_max_queries?,
            tcp_read_timeout: tcp_read_timeout?,
            fast_path: raw
                .fast_path
                .map_or(defaults::FAST_PATH, Spanned::into_inner),
            probe_metrics_by_zone: probe_metrics_by_zone?,
            identity: identity?,
            nsid: raw.nsid.map_or(defaults::NSID, Spanned::into_inner),
            id_server: raw
                .id_server
                .map_or(defaults::ID_SERVER, Spanned::into_inner),
        })
    }

    /// `dns = [...]`: socket addresses, each once.
    fn dns_addresses(&mut self, list: &[Spanned<String>]) -> Option<Vec<SocketAddr>> {
        let mut dns = Vec::new();
        let mut ok = true;
        let mut seen = HashSet::new();
        for addr in list {
            match addr.get_ref().parse::<SocketAddr>() {
                Ok(a) if !seen.insert(a) => {
                    self.err(
                        addr.span(),
                        format!("DNS address `{a}` is listed twice"),
                        "remove the duplicate",
                    );
                    ok = false;
                }
                Ok(a) => dns.push(a),
                Err(_) => {
                    self.err(
                        addr.span(),
                        format!("`{}` is not an address and port", addr.get_ref()),
                        "write it as `127.0.0.1:5300` or `[::1]:5300`",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(dns)
    }

    /// Response rate limiting: off unless a rate is set; `rrl_slip` alone
    /// is a mistake, not a silent no-op.
    fn rrl(
        &mut self,
        rate: Option<Spanned<u32>>,
        slip: Option<Spanned<u32>>,
    ) -> Option<Option<RrlSettings>> {
        let Some(rate) = rate else {
            if let Some(slip) = &slip {
                self.err(
                    slip.span(),
                    "rrl_slip is set but rate limiting is off",
                    "set `rrl_responses_per_second` too, or remove `rrl_slip`",
                );
                return None;
            }
            return Some(None);
        };
        if *rate.get_ref() == 0 {
            self.err(
                rate.span(),
                "rrl_responses_per_second must be at least 1",
                "remove the key to turn rate limiting off",
            );
            return None;
        }
        Some(Some(RrlSettings {
            responses_per_second: rate.into_inner(),
            slip: slip.map_or(defaults::RRL_SLIP, Spanned::into_inner),
        }))
    }
}
