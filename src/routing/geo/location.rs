//! Where an address is, and how far apart two places are: the data a
//! lookup yields, kept apart from reading the database so the record
//! decoders can build it without depending on the reader.

/// Mean Earth radius in kilometres (IUGG), for [`distance_km`].
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Where an address is, as far as the database knows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Location {
    /// Degrees north, within -90..=90.
    pub latitude: f64,
    /// Degrees east, within -180..=180.
    pub longitude: f64,
    /// ISO 3166-1 alpha-2 code, upper case (`"US"`).
    pub country: Option<String>,
    /// `AF`, `AN`, `AS`, `EU`, `NA`, `OC` or `SA`.
    pub continent: Option<String>,
    /// ISO 3166-2 subdivision, `"US-VA"`, when the database has one.
    pub region: Option<String>,
    /// City name in English, when the database has one.
    pub city: Option<String>,
}

impl Location {
    /// Great-circle distance in kilometres from this location to a point.
    pub fn distance_km(&self, latitude: f64, longitude: f64) -> f64 {
        distance_km(self.latitude, self.longitude, latitude, longitude)
    }
}

/// Great-circle (haversine) distance in kilometres between two points
/// given in degrees.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let half_dphi = (phi2 - phi1) / 2.0;
    let half_dlambda = (lon2 - lon1).to_radians() / 2.0;
    let h = half_dphi.sin().powi(2) + phi1.cos() * phi2.cos() * half_dlambda.sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}
