//! What a service's endpoints say about its zones: which zones hold
//! several (blue/green) and are split by weight, which endpoint a name
//! means, and how people see an endpoint (`zone/name`).

use super::{Endpoint, Service, Zone};

impl Service {
    /// Whether `zone` holds more than one of this service's endpoints, so
    /// answers in it are split by weight per client prefix.
    pub fn is_split(&self, zone: usize) -> bool {
        self.endpoints
            .iter()
            .filter(|e| e.zone == zone)
            .nth(1)
            .is_some()
    }

    /// Whether any zone holds more than one of this service's endpoints
    /// (known when the config is read; the answer path asks on every
    /// routing decision).
    pub fn has_splits(&self) -> bool {
        self.has_splits
    }

    /// The endpoint of this service in zone `zone` named `name`; `None`
    /// names the zone's only endpoint, or its unnamed one.
    pub fn endpoint_index(&self, zone: usize, name: Option<&str>) -> Option<usize> {
        let mut in_zone = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.zone == zone);
        match name {
            Some(name) => in_zone
                .find(|(_, e)| e.name.as_deref() == Some(name))
                .map(|(i, _)| i),
            None => {
                let (first, _) = in_zone.next()?;
                in_zone.next().is_none().then_some(first)
            }
        }
    }
}

impl Endpoint {
    /// How people see the endpoint: its zone's name, then `/` and its
    /// own name when it has one (`east/blue`).
    pub fn label(&self, zones: &[Zone]) -> String {
        match &self.name {
            Some(name) => format!("{}/{name}", zones[self.zone].name),
            None => zones[self.zone].name.clone(),
        }
    }
}
