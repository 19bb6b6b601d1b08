//! The messages of `[[services]]`: the services and their endpoints,
//! routing policies and health checks (one case each, as in the parent).

use super::super::MINIMAL;
use super::{Case, EU_WEST, GREEN, api, blue, case, edit, extra};

pub(super) fn cases() -> Vec<Case> {
    let no_zones = edit(
        MINIMAL,
        "[[zones]]\nname = \"us-east\"\nlatitude = 38.9\nlongitude = -77.4\n",
        "",
    );
    vec![
        // [[services]] and their endpoints
        case(
            extra(&api("").replace("name = \"api\"", "name = »\"WWW\"")),
            "service `WWW.gslb.example.` is defined twice",
            "give each [[services]] entry its own name",
        ),
        case(
            edit(MINIMAL, "zone = \"us-east\"", "zone = »\"us-west\""),
            "service `www.gslb.example.` names zone `us-west`, which is not defined",
            "define it in [[zones]] or use one of: us-east",
        ),
        case(
            edit(&no_zones, "zone = \"us-east\"", "zone = »\"us-east\""),
            "service `www.gslb.example.` names zone `us-east`, which is not defined",
            "define it in a [[zones]] entry",
        ),
        case(
            format!(
                "{}{GREEN}",
                edit(MINIMAL, "zone = \"us-east\"", "zone = »\"us-east\"")
            ),
            "service `www.gslb.example.` has several endpoints in zone `us-east` and this one has no `name`",
            "name each of a zone's endpoints, e.g. `name = \"blue\"` and `name = \"green\"`",
        ),
        case(
            format!(
                "{}{}",
                blue(""),
                GREEN.replace("name = \"green\"", "name = »\"blue\"")
            ),
            "service `www.gslb.example.` has two endpoints named `blue` in zone `us-east`",
            "give each of a zone's endpoints its own `name`",
        ),
        case(
            edit(
                MINIMAL,
                "zone = \"us-east\"\n",
                "zone = \"us-east\"\nname = »\"blue/2\"\n",
            ),
            "endpoint name `blue/2` is not valid",
            "use letters, digits, `-` and `_`, e.g. `blue`",
        ),
        case(
            edit(
                MINIMAL,
                "zone = \"us-east\"\n",
                "zone = \"us-east\"\nname = »\"drain\"\n",
            ),
            "endpoint name `drain` is reserved by the admin API",
            "choose another name, e.g. `blue`",
        ),
        case(
            format!(
                "{}{}",
                blue("weight = 0\n").replace("zone = \"us-east\"", "zone = »\"us-east\""),
                GREEN.replace("name = \"green\"\n", "name = \"green\"\nweight = 0\n")
            ),
            "every endpoint of service `www.gslb.example.` in zone `us-east` has weight 0",
            "give at least one of them a positive weight; weight 0 is a standby",
        ),
        case(
            format!(
                "{}{}",
                blue("").replace("zone = \"us-east\"", "zone = »\"us-east\""),
                GREEN.replace("192.0.2.11", "192.0.2.10")
            ),
            "address 192.0.2.10 is in two endpoints of service `www.gslb.example.` in zone `us-east`",
            "give each endpoint its own load balancer addresses",
        ),
        case(
            extra("\n[[services]]\nname = \"api\"\n[[services.endpoints]]\nzone = »\"us-east\"\n"),
            "endpoint `us-east` of service `api.gslb.example.` has no addresses",
            "add `addresses = [\"192.0.2.10\"]` with the zone's load balancer",
        ),
        case(
            edit(
                MINIMAL,
                "[\"192.0.2.10\"]\n",
                "[\"192.0.2.10\"]\nmin_healthy = »2\n",
            ),
            "min_healthy 2 is not between 1 and the endpoint's 1 address(es)",
            "lower it, or add addresses",
        ),
        case(
            edit(
                MINIMAL,
                "[\"192.0.2.10\"]\n",
                "[\"192.0.2.10\"]\nmin_healthy = »0\n",
            ),
            "min_healthy 0 is not between 1 and the endpoint's 1 address(es)",
            "lower it, or add addresses",
        ),
        case(
            edit(
                MINIMAL,
                "[\"192.0.2.10\"]\n",
                "[\"192.0.2.10\"]\nweight = »1000001\n",
            ),
            "weight 1000001 is too large",
            "weights are relative; use values up to 1000000",
        ),
        case(
            extra("\n[[services]]\nname = »\"api\"\n"),
            "service `api.gslb.example.` has no endpoints",
            "add a [[services.endpoints]] entry with `zone` and `addresses` for each zone",
        ),
        case(
            extra(&api("answers = »0")),
            "answers must be at least 1",
            "use 1 for one zone per answer",
        ),
        case(
            extra(&api("fallback = [»\"192.0.2.99\"]")),
            "`fallback` is set but `all_down` is not \"fallback\"",
            "add `all_down = \"fallback\"` or remove `fallback`",
        ),
        case(
            extra(&api(
                "all_down = \"fail-open\"\nfallback = [»\"192.0.2.99\"]",
            )),
            "`fallback` is set but `all_down` is not \"fallback\"",
            "add `all_down = \"fallback\"` or remove `fallback`",
        ),
        case(
            extra(&api("all_down = »\"fallback\"")),
            "`all_down = \"fallback\"` needs fallback addresses",
            "add `fallback = [\"192.0.2.99\"]`",
        ),
        case(
            extra(&api("all_down = »\"fallback\"\nfallback = []")),
            "`all_down = \"fallback\"` needs fallback addresses",
            "add `fallback = [\"192.0.2.99\"]`",
        ),
        case(
            extra(&api(
                "all_down = \"fallback\"\nfallback = [»\"192.0.2.999\"]",
            )),
            "`192.0.2.999` is not an IP address",
            "write an IPv4 address like `192.0.2.10` or an IPv6 address like `2001:db8::10`, without a port",
        ),
        case(
            extra(&api("all_down = »\"fail-closed\"")),
            "all_down `fail-closed` is not known",
            "use \"fail-open\" or \"fallback\"",
        ),
        // Policies
        case(
            extra(&api("policy = »\"nearest\"\norder = [\"us-east\"]")),
            "service `api.gslb.example.` sets `order` but its policy is `nearest`",
            "use `policy = \"failover\"` or remove `order`",
        ),
        case(
            extra(&api("order = [\"us-east\"]").replace("name = \"api\"", "name = »\"api\"")),
            "service `api.gslb.example.` sets `order` but its policy is `nearest`",
            "use `policy = \"failover\"` or remove `order`",
        ),
        case(
            extra(&api(
                "policy = »\"all\"\n[services.geo]\ndefault = [\"us-east\"]",
            )),
            "service `api.gslb.example.` has a [services.geo] map but its policy is `all`",
            "use `policy = \"geo\"` or remove the map",
        ),
        case(
            extra(&format!("{}weight = 0\n", api("policy = »\"weighted\""))),
            "every endpoint of service `api.gslb.example.` has weight 0",
            "give at least one endpoint a positive weight",
        ),
        case(
            extra(&api("policy = »\"failover\"")),
            "service `api.gslb.example.` uses failover but has no `order`",
            "add `order = [\"primary-zone\", \"standby-zone\"]`",
        ),
        case(
            extra(&api("policy = »\"failover\"\norder = []")),
            "`order` is empty",
            "name the zones, most preferred first",
        ),
        case(
            extra(&api("policy = »\"geo\"")),
            "service `api.gslb.example.` uses the geo policy but has no [services.geo] map",
            "add [services.geo] with `default = [...]` and `continents`, `countries` or `regions` tables",
        ),
        case(
            extra(&api(
                "policy = \"geo\"\n[services.geo]\ndefault = [\"us-east\"]\n[services.geo.continents]\nXX = [»\"us-east\"]",
            )),
            "`XX` is not a continent code",
            "use one of AF, AN, AS, EU, NA, OC, SA",
        ),
        case(
            extra(&api(
                "policy = \"geo\"\n[services.geo]\ndefault = [\"us-east\"]\n[services.geo.countries]\nusa = [»\"us-east\"]",
            )),
            "`USA` is not a country code",
            "use an ISO 3166-1 alpha-2 code like `DE`",
        ),
        case(
            extra(&api(
                "policy = \"geo\"\n[services.geo]\ndefault = [\"us-east\"]\n[services.geo.regions]\nCA = [»\"us-east\"]",
            )),
            "`CA` is not a region code",
            "use an ISO 3166-2 code like `US-CA`",
        ),
        case(
            extra(&api("policy = »\"random\"")),
            "policy `random` is not known",
            "use one of: all, nearest, geo, failover, weighted, latency",
        ),
        case(
            extra(&api("policy = \"failover\"\norder = [»\"mars\"]")),
            "zone `mars` is not defined",
            "use one of: us-east",
        ),
        case(
            extra(&format!(
                "{EU_WEST}{}",
                api("policy = \"failover\"\norder = [\"us-east\", »\"eu-west\"]")
            )),
            "service `api.gslb.example.` has no endpoint in zone `eu-west`",
            "add a [[services.endpoints]] entry for that zone, or remove it from the list",
        ),
        case(
            extra(&api(
                "policy = \"geo\"\n[services.geo]\ndefault = [\"us-east\", »\"us-east\"]",
            )),
            "zone `us-east` is listed twice",
            "remove the duplicate",
        ),
        // Health checks
        case(
            extra("\n[services.check]\nkind = »\"icmp\"\n"),
            "check kind `icmp` is not known",
            "use one of http, https, tcp, none",
        ),
        case(
            extra("\n[services.check]\nkind = »\"tcp\"\n"),
            "a tcp check needs a port",
            "add `port = 443` (or the port the load balancer listens on)",
        ),
        case(
            extra("\n[services.endpoints.check]\nkind = »\"tcp\"\n"),
            "a tcp check needs a port",
            "add `port = 443` (or the port the load balancer listens on)",
        ),
        case(
            extra("\n[services.check]\nexpect_status = »\"600\"\n"),
            "`600` is not a status range",
            "write one code like `200` or a range like `200-399`",
        ),
        case(
            extra("\n[services.check]\nexpect_status = »\"399-200\"\n"),
            "`399-200` is not a status range",
            "write one code like `200` or a range like `200-399`",
        ),
        case(
            extra("\n[services.check]\ninterval = »\"often\"\n"),
            "`often` is not a duration",
            "write a positive number with a unit: `500ms`, `2s`, `1m`",
        ),
        case(
            extra("\n[services.endpoints.check]\ntimeout = »\"0ms\"\n"),
            "`0ms` is not a duration",
            "write a positive number with a unit: `500ms`, `2s`, `1m`",
        ),
        case(
            extra("\n[services.check]\ninterval = \"1s\"\ntimeout = »\"1001ms\"\n"),
            "the check timeout is longer than its interval",
            "make the timeout at most the interval",
        ),
        case(
            extra("\n[services.check]\nrise = »0\n"),
            "rise 0 is out of range",
            "use a count between 1 and 100",
        ),
        case(
            extra("\n[services.endpoints.check]\nfall = »101\n"),
            "fall 101 is out of range",
            "use a count between 1 and 100",
        ),
    ]
}
