//! Record decoding: which of the two supported layouts a file uses, and
//! how a record of each becomes a [`Location`].
//!
//! Records are decoded into borrowing structs that name only the fields
//! routing uses, so a lookup allocates nothing but the strings it returns
//! and unknown fields are skipped. Whatever a record holds, decoding yields
//! a [`Location`] that keeps the invariants in the parent module's doc, or
//! none: coordinates out of range, a country code that is not two letters,
//! or a continent outside the seven read as absent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use maxminddb::{LookupResult, MaxMindDbError, Reader, WithinOptions};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::continents::{continent_code, continent_of_country};
use super::error::GeoError;
use super::location::Location;

/// How many records [`Layout::detect`] inspects to recognise a file's layout.
const LAYOUT_SAMPLE: usize = 64;

/// The record schema of one file, detected when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    City,
    DbIpFlat,
}

impl Layout {
    /// How [`GeoDb::description`](super::GeoDb::description) names it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Layout::City => "city layout",
            Layout::DbIpFlat => "db-ip flat layout",
        }
    }

    /// Recognises the record layout from the keys of the first records, then
    /// checks that those records decode and that some carry coordinates.
    pub(super) fn detect<S: AsRef<[u8]>>(
        path: &Path,
        reader: &Reader<S>,
    ) -> Result<Layout, GeoError> {
        let invalid = |cause| GeoError::Invalid {
            path: path.to_owned(),
            cause,
        };
        let mut keys_seen = BTreeSet::new();
        let mut layout = None;
        let mut sampled = Vec::new();
        for item in reader
            .networks(WithinOptions::default())
            .map_err(invalid)?
            .take(LAYOUT_SAMPLE)
        {
            let item = item.map_err(invalid)?;
            let keys = item.decode::<BTreeMap<&str, IgnoredAny>>();
            sampled.push(item);
            let Ok(Some(keys)) = keys else {
                continue;
            };
            let has = |key: &str| keys.contains_key(key);
            if layout.is_none() {
                if has("country_code") || (has("latitude") && has("longitude")) {
                    layout = Some(Layout::DbIpFlat);
                } else if has("location") || has("country") || has("continent") {
                    layout = Some(Layout::City);
                }
            }
            keys_seen.extend(keys.into_keys().map(str::to_owned));
        }
        if sampled.is_empty() {
            return Err(GeoError::Empty {
                path: path.to_owned(),
            });
        }
        let Some(layout) = layout else {
            let mut keys = keys_seen
                .into_iter()
                .take(12)
                .collect::<Vec<_>>()
                .join(", ");
            if keys.is_empty() {
                keys.push_str("none; the records are not maps");
            }
            return Err(GeoError::UnknownLayout {
                path: path.to_owned(),
                keys,
            });
        };
        let mut with_coordinates = 0;
        let mut first_error = None;
        for item in &sampled {
            match layout.decode(item) {
                Ok(location) => with_coordinates += usize::from(location.is_some()),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if with_coordinates == 0 {
            return Err(match first_error {
                Some(cause) => invalid(cause),
                None => GeoError::NoCoordinates {
                    path: path.to_owned(),
                },
            });
        }
        Ok(layout)
    }

    /// The location a record holds: `Ok(None)` when it holds none that is
    /// usable (no record, no coordinates, coordinates out of range), an
    /// error when it is not a record of this layout.
    pub(super) fn decode<S: AsRef<[u8]>>(
        self,
        record: &LookupResult<'_, S>,
    ) -> Result<Option<Location>, MaxMindDbError> {
        match self {
            Layout::City => record
                .decode::<CityRecord<'_>>()
                .map(|record| record.and_then(CityRecord::into_location)),
            Layout::DbIpFlat => record
                .decode::<FlatRecord<'_>>()
                .map(|record| record.and_then(FlatRecord::into_location)),
        }
    }
}

/// The fields of a GeoIP2/GeoLite2 City record that routing uses. Strings
/// borrow from the database; unknown fields are skipped.
#[derive(Deserialize, Default)]
struct CityRecord<'a> {
    #[serde(default)]
    location: CityLocation,
    #[serde(borrow, default)]
    country: IsoCode<'a>,
    #[serde(borrow, default)]
    registered_country: IsoCode<'a>,
    #[serde(borrow, default)]
    continent: ContinentCode<'a>,
    #[serde(borrow, default)]
    subdivisions: FirstSubdivision<'a>,
    #[serde(borrow, default)]
    city: CityName<'a>,
}

#[derive(Deserialize, Default)]
struct CityLocation {
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

/// A latitude or longitude stored as a double, a float or an integer.
/// maxminddb 0.32 decodes strictly by type (an `f64` field refuses a stored
/// `f32`), and DB-IP stores `f32` where MaxMind stores `f64`.
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = Coordinate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a coordinate in degrees")
            }

            fn visit_f64<E>(self, value: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(value))
            }

            fn visit_f32<E>(self, value: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(shortest_decimal(value)))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Coordinate, E> {
                Ok(Coordinate(value as f64))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Coordinate, E> {
                Ok(Coordinate(value as f64))
            }
        }
        deserializer.deserialize_any(Number)
    }
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct ContinentCode<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct CityName<'a> {
    #[serde(borrow, default)]
    names: EnglishName<'a>,
}

#[derive(Deserialize, Default)]
struct EnglishName<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

/// The ISO code of the first (largest) subdivision; the rest of the list is
/// skipped without being collected.
#[derive(Default)]
struct FirstSubdivision<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstSubdivision<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for First<'a> {
            type Value = FirstSubdivision<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of subdivisions")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<IsoCode<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstSubdivision(first.and_then(|code| code.iso_code)))
            }
        }
        deserializer.deserialize_seq(First(std::marker::PhantomData))
    }
}

impl CityRecord<'_> {
    fn into_location(self) -> Option<Location> {
        let (latitude, longitude) =
            checked_coordinates(self.location.latitude?.0, self.location.longitude?.0)?;
        let country = self
            .country
            .iso_code
            .or(self.registered_country.iso_code)
            .and_then(country_code);
        let continent = self
            .continent
            .code
            .and_then(continent_code)
            .or_else(|| country.as_deref().and_then(continent_of_country))
            .map(str::to_owned);
        let region = match (&country, self.subdivisions.0) {
            (Some(country), Some(code)) => region_code(country, code),
            _ => None,
        };
        Some(Location {
            latitude,
            longitude,
            country,
            continent,
            region,
            city: non_empty(self.city.names.en),
        })
    }
}

/// A record of the flat layout DB-IP Lite City uses on npm. `state1` is a
/// name, not a code, so it is not read.
#[derive(Deserialize)]
struct FlatRecord<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    city: Option<&'a str>,
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

impl FlatRecord<'_> {
    fn into_location(self) -> Option<Location> {
        let (latitude, longitude) = checked_coordinates(self.latitude?.0, self.longitude?.0)?;
        let country = self.country_code.and_then(country_code);
        let continent = country
            .as_deref()
            .and_then(continent_of_country)
            .map(str::to_owned);
        Some(Location {
            latitude,
            longitude,
            country,
            continent,
            region: None,
            city: non_empty(self.city),
        })
    }
}

fn checked_coordinates(latitude: f64, longitude: f64) -> Option<(f64, f64)> {
    let valid = latitude.is_finite()
        && longitude.is_finite()
        && (-90.0..=90.0).contains(&latitude)
        && (-180.0..=180.0).contains(&longitude);
    valid.then_some((latitude, longitude))
}

/// DB-IP stores coordinates as `f32`, which widen to values such as
/// `37.422000885009766`; this returns the shortest decimal (up to six
/// places, ~0.1 m) that rounds to the same `f32`: `37.422`.
fn shortest_decimal(value: f32) -> f64 {
    let wide = f64::from(value);
    if !value.is_finite() {
        return wide;
    }
    let mut scale = 1.0;
    for _ in 0..=6 {
        let rounded = (wide * scale).round() / scale;
        if rounded as f32 == value {
            return rounded;
        }
        scale *= 10.0;
    }
    wide
}

/// A country code as stored in `Location`: two ASCII letters, upper case.
/// `ZZ` ("unknown") and `XX` read as no country.
fn country_code(code: &str) -> Option<String> {
    let code = code.trim();
    let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic());
    let upper = code.to_ascii_uppercase();
    (valid && upper != "ZZ" && upper != "XX").then_some(upper)
}

/// `"US"` + `"VA"` -> `"US-VA"`; a code that already has its country prefix
/// is kept as it is.
fn region_code(country: &str, code: &str) -> Option<String> {
    let code = code.trim();
    if code.is_empty() {
        return None;
    }
    if code.contains('-') {
        return Some(code.to_ascii_uppercase());
    }
    Some(format!("{country}-{}", code.to_ascii_uppercase()))
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_decimal_undoes_single_precision() {
        assert_eq!(shortest_decimal(37.422), 37.422);
        assert_eq!(shortest_decimal(-122.085), -122.085);
        assert_eq!(shortest_decimal(4.88519), 4.88519);
        assert_eq!(shortest_decimal(139.768), 139.768);
        assert_eq!(shortest_decimal(0.0), 0.0);
        assert_eq!(shortest_decimal(-90.0), -90.0);
    }
}
