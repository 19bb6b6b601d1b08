//! `[services.check]` and an endpoint's `check`: how an endpoint is probed.

use std::ops::RangeInclusive;

use toml::Spanned;

use super::Checker;
use super::values::parse_status_range;
use crate::config::raw::RawCheck;
use crate::config::{Check, CheckKind, defaults};

/// Rise and fall counts: at least one probe, and at most a hundred so a
/// threshold times its interval stays a reaction time, not an outage.
const THRESHOLD_LIMITS: RangeInclusive<u32> = 1..=100;

impl Checker<'_, '_> {
    /// An endpoint's check: its own keys over the service's (`base`), over
    /// the defaults. `None` after the first problem is reported.
    pub(super) fn health_check(
        &mut self,
        base: &RawCheck,
        own: Option<&RawCheck>,
    ) -> Option<Check> {
        let own = own.cloned().unwrap_or_default();
        let pick = |a: Option<Spanned<String>>, b: Option<Spanned<String>>| a.or(b);
        let kind_raw = pick(own.kind.clone(), base.kind.clone());
        let kind = match kind_raw.as_ref().map(|k| k.get_ref().trim()) {
            None => defaults::CHECK_KIND,
            Some("http") => CheckKind::Http,
            Some("tcp") => CheckKind::Tcp,
            Some("https") => CheckKind::Https,
            Some("none") => CheckKind::None,
            Some(other) => {
                self.err(
                    kind_raw.as_ref().map(|k| k.span()).unwrap_or(0..0),
                    format!("check kind `{other}` is not known"),
                    format!("use one of {}", CheckKind::NAMES.join(", ")),
                );
                return None;
            }
        };
        let port = own.port.or(base.port.clone()).map(|p| p.into_inner());
        let port = match (kind, port) {
            (_, Some(p)) => p,
            (CheckKind::Http, None) => defaults::HTTP_PORT,
            (CheckKind::Https, None) => defaults::HTTPS_PORT,
            (CheckKind::None, None) => defaults::NONE_PORT,
            (CheckKind::Tcp, None) => {
                self.err(
                    kind_raw.map(|k| k.span()).unwrap_or(0..0),
                    "a tcp check needs a port",
                    "add `port = 443` (or the port the load balancer listens on)",
                );
                return None;
            }
        };
        let status_raw = pick(own.expect_status.clone(), base.expect_status.clone());
        let expect_status = self.setting(status_raw.as_ref(), defaults::EXPECT_STATUS, |s| {
            parse_status_range(s).ok_or_else(|| {
                (
                    format!("`{s}` is not a status range"),
                    "write one code like `200` or a range like `200-399`".to_string(),
                )
            })
        })?;
        let interval_raw = pick(own.interval.clone(), base.interval.clone());
        let timeout_raw = pick(own.timeout.clone(), base.timeout.clone());
        let interval = self.duration(interval_raw.as_ref(), defaults::CHECK_INTERVAL)?;
        let timeout = self.duration(timeout_raw.as_ref(), defaults::CHECK_TIMEOUT)?;
        if timeout > interval {
            self.err(
                timeout_raw.map(|t| t.span()).unwrap_or(0..0),
                "the check timeout is longer than its interval",
                "make the timeout at most the interval",
            );
            return None;
        }
        let rise = self.threshold(
            own.rise.clone().or(base.rise.clone()),
            "rise",
            defaults::RISE,
        );
        let fall = self.threshold(
            own.fall.clone().or(base.fall.clone()),
            "fall",
            defaults::FALL,
        );
        let path = pick(own.path.clone(), base.path.clone())
            .map_or_else(|| defaults::CHECK_PATH.to_string(), Spanned::into_inner);
        Some(Check {
            kind,
            port,
            path,
            host: own.host.or(base.host.clone()),
            expect_status,
            body_contains: own.body_contains.or(base.body_contains.clone()),
            insecure: own
                .insecure
                .or(base.insecure)
                .unwrap_or(defaults::CHECK_INSECURE),
            interval,
            timeout,
            rise: rise?,
            fall: fall?,
        })
    }

    /// `rise` or `fall`.
    fn threshold(&mut self, raw: Option<Spanned<u32>>, key: &str, default: u32) -> Option<u32> {
        self.checked(
            raw.as_ref(),
            default,
            |v| THRESHOLD_LIMITS.contains(v),
            |v| {
                (
                    format!("{key} {v} is out of range"),
                    format!(
                        "use a count between {} and {}",
                        THRESHOLD_LIMITS.start(),
                        THRESHOLD_LIMITS.end()
                    ),
                )
            },
        )
    }
}
