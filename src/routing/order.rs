//! The order of a service's endpoints where the client's place decides:
//! a geo map's list for it, then the rest nearest first. Both the answer
//! path (`routing::rank`) and the scope markings (`routing::uniform`) order
//! by these functions, so a marking's classes are exactly the orders the
//! answer path gives.

use super::geo::{Location, RecordKey};
use super::workspace::Workspace;
use crate::config::{Config, Policy};

/// The order a client at `place` (a location and the record holding it)
/// gets where nothing but GeoIP decides (`routing::by_location`): what a
/// record alone decides, which `uniform` classifies the database's records
/// by.
pub(super) fn location_order(
    config: &Config,
    service: usize,
    place: Option<(&Location, Option<RecordKey>)>,
    workspace: &mut Workspace,
) {
    let svc = &config.services[service];
    let Some((location, _)) = place else {
        let order = &mut workspace.order;
        match &svc.policy {
            Policy::Geo(map) => {
                endpoints_in(svc, map.default.iter().copied(), order);
                complete(order, svc.endpoints.len());
            }
            _ => order.extend(0..svc.endpoints.len()),
        }
        return;
    };
    if let Policy::Geo(map) = &svc.policy {
        let zones = geo_map_zones(map, location).iter().copied();
        endpoints_in(svc, zones, &mut workspace.order);
    }
    complete_by_distance(config, service, place, workspace);
}

/// The most specific list of a geo map that names the location: region,
/// then country, then continent, then the default list.
fn geo_map_zones<'m>(map: &'m crate::config::GeoMap, location: &Location) -> &'m [usize] {
    location
        .region
        .as_ref()
        .and_then(|r| map.regions.get(r))
        .or_else(|| location.country.as_ref().and_then(|c| map.countries.get(c)))
        .or_else(|| {
            location
                .continent
                .as_ref()
                .and_then(|c| map.continents.get(c))
        })
        .unwrap_or(&map.default)
}

/// Appends the endpoints not yet listed, in config order.
pub(super) fn complete(order: &mut Vec<usize>, n: usize) {
    for e in 0..n {
        if !order.contains(&e) {
            order.push(e);
        }
    }
}

/// Appends the endpoints not yet listed to `workspace.order`, nearest
/// first when the client's location is known (ties in config order).
pub(super) fn complete_by_distance(
    config: &Config,
    service: usize,
    place: Option<(&Location, Option<RecordKey>)>,
    workspace: &mut Workspace,
) {
    let svc = &config.services[service];
    let listed = workspace.order.len();
    for e in 0..svc.endpoints.len() {
        if !workspace.order[..listed].contains(&e) {
            workspace.order.push(e);
        }
    }
    let Some((location, record)) = place else {
        return;
    };
    let mut order = std::mem::take(&mut workspace.order);
    let distances = workspace.distances(config, location, record);
    // Indices are distinct, so the tie-break makes the order total and an
    // unstable sort (which never allocates) gives the stable sort's order.
    order[listed..].sort_unstable_by(|a, b| {
        let da = distances[svc.endpoints[*a].zone];
        let db = distances[svc.endpoints[*b].zone];
        da.total_cmp(&db).then(a.cmp(b))
    });
    workspace.order = order;
}

/// Appends the endpoints of `svc` in the given zones, in the zones'
/// order (a zone's own endpoints in config order, until the in-zone
/// split, `split.rs`, orders them); zones without an endpoint are
/// skipped.
pub(super) fn endpoints_in(
    svc: &crate::config::Service,
    zones: impl IntoIterator<Item = usize>,
    order: &mut Vec<usize>,
) {
    for z in zones {
        order.extend((0..svc.endpoints.len()).filter(|e| svc.endpoints[*e].zone == z));
    }
}
