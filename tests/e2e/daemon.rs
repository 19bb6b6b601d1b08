//! Meridian as a daemon: systemd readiness, configuration from the
//! environment, `check` refusing what `serve` refuses, the shipped unit,
//! alert rules and dashboard, and the command line's own documentation.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian::config::Config;

use crate::harness::*;

fn meridian() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
    // The caller's environment must not leak into what is under test.
    for var in [
        "MERIDIAN_CONFIG",
        "MERIDIAN_LISTEN",
        "MERIDIAN_ADMIN",
        "MERIDIAN_NODE",
        "MERIDIAN_ADMIN_TOKEN",
        "MERIDIAN_COOKIE_SECRET",
        "NOTIFY_SOCKET",
    ] {
        command.env_remove(var);
    }
    command
}

/// `meridian serve --config CONFIG` on ephemeral loopback ports.
fn serve_on_loopback(config: &Path) -> Command {
    let mut command = meridian();
    command.args(["serve", "--config"]).arg(config).args([
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    command
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example in `dir` with its state file there too and `extra` keys in
/// [server]; returns the config's path.
fn example_in(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("meridian.toml");
    let text = example_config_text()
        .replace(
            "state_file = \"example.state.json\"",
            "state_file = \"state.json\"",
        )
        .replace("[server]\n", &format!("[server]\n{extra}\n"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `meridian serve` on ephemeral loopback ports, logging JSON, its log
/// lines collected by a thread. Killed on drop.
struct Daemon {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(mut command: Command) -> Daemon {
        let mut child = command
            .args(["--log-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The admin address, from the "admin endpoint listening" log line.
    fn admin(&self) -> SocketAddr {
        let start = Instant::now();
        loop {
            let found = self.logs.lock().unwrap().iter().find_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                (v["message"] == "admin endpoint listening")
                    .then(|| v["admin"].as_str().map(str::to_string))?
            });
            if let Some(addr) = found {
                return addr.parse().expect("the logged admin address parses");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no admin address logged:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post_reload(admin: SocketAddr, token: Option<&str>) -> (u16, serde_json::Value) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.post(format!("http://{admin}/v1/reload"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("the admin endpoint answers");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(serde_json::Value::Null))
}

#[test]
fn serve_tells_the_service_manager_it_is_ready_and_when_it_stops() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut command = serve_on_loopback(&config);
    command.env("NOTIFY_SOCKET", &socket_path);
    let daemon = Daemon::spawn(command);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means answering: the admin endpoint (bound with DNS) serves the
    // first snapshot's zones at once.
    let admin = daemon.admin();
    let zones = reqwest::blocking::get(format!("http://{admin}/v1/zones")).unwrap();
    assert_eq!(zones.status().as_u16(), 200);
    daemon.signal("TERM");
    let n = socket.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
    drop(daemon);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_config_and_secrets_come_from_the_environment_and_reloads_keep_them() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let token = "token-from-the-environment-0123";
    let mut command = meridian();
    command
        .arg("serve")
        .env("MERIDIAN_CONFIG", &config)
        .env("MERIDIAN_LISTEN", "127.0.0.1:0")
        .env("MERIDIAN_ADMIN", "127.0.0.1:0")
        .env("MERIDIAN_ADMIN_TOKEN", token);
    let daemon = Daemon::spawn(command);
    let admin = daemon.admin();
    assert_eq!(post_reload(admin, None).0, 401, "the token is required");
    let (status, body) = post_reload(admin, Some(token));
    assert_eq!(status, 200, "{body}");
    // The reload re-read the file, which has no token: the environment's
    // still applies.
    assert_eq!(
        post_reload(admin, None).0,
        401,
        "still required after reload"
    );
    assert_eq!(post_reload(admin, Some(token)).0, 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_reload_reports_changed_listen_addresses_only_when_the_file_changed_them() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let daemon = Daemon::spawn(serve_on_loopback(&config));
    let admin = daemon.admin();
    // Flags differ from the file; the file did not change.
    let (status, body) = post_reload(admin, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["warnings"], serde_json::json!([]), "{body}");
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    let (_, body) = post_reload(admin, None);
    assert_eq!(body["warnings"], serde_json::json!([]), "{body}");
    assert!(
        !daemon.logs().contains("listen addresses"),
        "spurious warning:\n{}",
        daemon.logs()
    );
    // Now the file does change them.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("dns = [\"127.0.0.1:5300\"]", "dns = [\"127.0.0.1:5301\"]"),
    )
    .unwrap();
    let (status, body) = post_reload(admin, None);
    assert_eq!(status, 200, "{body}");
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains("listen addresses") && warnings.contains("127.0.0.1:5301"),
        "{body}"
    );
    assert!(daemon.logs().contains("listen addresses"));
    std::fs::remove_dir_all(dir).unwrap();
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `check` and `serve` on the same file: both refuse, and both name `what`.
fn both_refuse(config: &Path, what: &str) {
    let checked = run(meridian().args(["check", "--config"]).arg(config));
    assert_eq!(checked.status.code(), Some(1), "check: {}", text(&checked));
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains(what),
        "check does not name {what:?}: {}",
        text(&checked)
    );
    let served = run(meridian().args(["serve", "--config"]).arg(config).args([
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]));
    assert_eq!(served.status.code(), Some(1), "serve: {}", text(&served));
    assert!(
        String::from_utf8_lossy(&served.stderr).contains(what),
        "serve does not name {what:?}: {}",
        text(&served)
    );
}

#[test]
fn check_refuses_every_file_serve_would_refuse() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let ok = run(meridian().args(["check", "--config"]).arg(&config));
    assert!(ok.status.success(), "{}", text(&ok));

    // A GeoIP database that is missing.
    let text_ok = std::fs::read_to_string(&config).unwrap();
    let missing = dir.join("missing.mmdb");
    let geo = format!("{}/geo/default.mmdb", root().display());
    std::fs::write(
        &config,
        text_ok.replace(&geo, &missing.display().to_string()),
    )
    .unwrap();
    both_refuse(&config, "missing.mmdb");

    // A corrupt state file.
    std::fs::write(&config, &text_ok).unwrap();
    std::fs::write(dir.join("state.json"), "{ not json").unwrap();
    both_refuse(&config, "state.json");
    std::fs::remove_file(dir.join("state.json")).unwrap();

    // A token file that cannot be read.
    let with_token_file = example_in(&dir, "admin_token_file = \"admin.token\"");
    both_refuse(&with_token_file, "admin_token_file");
    std::fs::write(dir.join("admin.token"), "0123456789abcdef0123456789\n").unwrap();
    let ok = run(meridian().args(["check", "--config"]).arg(&with_token_file));
    assert!(ok.status.success(), "{}", text(&ok));

    // A state file whose directory does not exist.
    let nowhere = example_in(&dir, "").to_path_buf();
    let t = std::fs::read_to_string(&nowhere).unwrap();
    std::fs::write(
        &nowhere,
        t.replace(
            "state_file = \"state.json\"",
            "state_file = \"no-such-dir/state.json\"",
        ),
    )
    .unwrap();
    both_refuse(&nowhere, "no-such-dir");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_warns_about_a_drain_of_a_zone_the_config_lacks() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    std::fs::write(
        dir.join("state.json"),
        r#"{"zones": ["eu-west", "mars-north"], "endpoints": []}"#,
    )
    .unwrap();
    let out = run(meridian().args(["check", "--config"]).arg(&config));
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("`mars-north`"),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("`eu-west`"), "{}", text(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let text_ok = std::fs::read_to_string(&config).unwrap();
    let geo = format!("{}/geo/default.mmdb", root().display());
    std::fs::write(&config, text_ok.replace(&geo, "/nonexistent/x.mmdb")).unwrap();
    // Text logs (the default), to a pipe; the failure is logged before exit.
    let out = run(meridian()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("x.mmdb"), "{}", text(&out));
    assert!(!stdout.contains('\u{1b}'), "ANSI codes in: {stdout:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_command_line_documents_itself() {
    let version = run(meridian().arg("--version"));
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(&format!("meridian {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let help = run(meridian().args(["serve", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "-c, --config <FILE>",
        "SIGHUP",
        "SIGTERM",
        "RUST_LOG",
        "127.0.0.1:5300",
        "MERIDIAN_ADMIN_TOKEN",
    ] {
        assert!(help.contains(needle), "no {needle:?} in:\n{help}");
    }
    let man = run(meridian().arg("man"));
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH meridian 1"), "{man}");
    assert!(man.contains("serve"), "{man}");
    for shell in ["bash", "zsh", "fish"] {
        let out = run(meridian().args(["completions", shell]));
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("explain"), "{shell}: {script}");
    }
}

/// A loopback TCP port with nothing listening (kept bound, unlistened, so
/// no one else takes it while the test runs).
fn closed_port() -> (u16, socket2::Socket) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (port, socket)
}

/// Every `meridian_*` name in the file that is not a family or series of
/// `metrics` (the `/metrics` text).
fn unknown_metric_names(file: &Path, metrics: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let exported: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut unknown = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("meridian_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !exported.contains(name.as_str()) && !unknown.contains(&name) {
            unknown.push(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    unknown
}

#[test]
fn the_dashboard_and_alert_rules_name_only_metrics_a_node_exports() {
    // A node of a two-node cluster (its peer is never there), so the
    // cluster families are exported too, serving the example with its
    // GeoIP database, plus a service probed on a closed loopback port so
    // the probe families have series.
    let (port, _closed) = closed_port();
    let text = format!(
        "{}\n[[services]]\nname = \"probed\"\ncheck = {{ kind = \"tcp\", port = {port}, interval = \"100ms\", timeout = \"50ms\" }}\n\
         [[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"127.0.0.1\"]\n\
         \n[cluster]\ntoken = \"0123456789abcdef0123456789abcdef\"\n\n\
         [[cluster.nodes]]\nname = \"a\"\nzone = \"us-east\"\nadmin = \"http://127.0.0.1:9\"\n\n\
         [[cluster.nodes]]\nname = \"b\"\nzone = \"eu-west\"\nadmin = \"http://127.0.0.1:10\"\n",
        example_config_text()
    );
    let dir = private_dir();
    let config = Config::parse(&text, &dir.join("meridian.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .for_node(Some("a"))
        .unwrap();
    let node = Node::start_config(config);
    wait_until(
        "a refused probe is counted",
        Duration::from_secs(20),
        || {
            node.metrics_text().lines().any(|l| {
                l.starts_with("meridian_probe_failures_total{")
                    && l.contains("reason=\"refused\"}")
                    && !l.ends_with(" 0")
            })
        },
    );
    let metrics = node.metrics_text();
    for family in [
        "meridian_build_info",
        "meridian_endpoint_address_up",
        "meridian_service_failing_open",
        "meridian_geoip_build_timestamp_seconds",
        "meridian_cluster_fail_static",
    ] {
        assert!(
            metrics.contains(&format!("\n{family}{{")) || metrics.contains(&format!("\n{family} ")),
            "no {family} series in:\n{metrics}"
        );
    }
    for file in [
        "deploy/grafana/meridian-dashboard.json",
        "deploy/prometheus/meridian.rules.yml",
    ] {
        let unknown = unknown_metric_names(&root().join(file), &metrics);
        assert!(
            unknown.is_empty(),
            "{file} names {unknown:?}, which /metrics lacks"
        );
    }
    node.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_alert_rules_pass_promtool() {
    let Some(promtool) = require_tool("promtool", "prometheus") else {
        return;
    };
    let out = run(Command::new(promtool)
        .args(["check", "rules"])
        .arg(root().join("deploy/prometheus/meridian.rules.yml")));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = require_tool("systemd-analyze", "systemd") else {
        return;
    };
    let unit = std::fs::read_to_string(root().join("deploy/systemd/meridian.service")).unwrap();
    for needle in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "User=meridian",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(needle), "the unit lacks {needle}");
    }
    // verify checks that ExecStart's program exists: point it at this build.
    let dir = private_dir();
    let path = dir.join("meridian.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/meridian", env!("CARGO_BIN_EXE_meridian")),
    )
    .unwrap();
    let out = run(Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path));
    // Unknown keys and bad values are only printed, so any output fails.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The admin API's view of the one address of `www` in zone `a`.
fn address_view(node: &Node) -> serde_json::Value {
    let body: serde_json::Value =
        reqwest::blocking::get(format!("http://{}/v1/zones/a", node.admin))
            .and_then(|r| r.json())
            .expect("the zone view is served");
    body["services"][0]["addresses"][0].clone()
}

#[test]
fn rtts_are_rounded_and_a_down_address_shows_its_last_rtt_as_such() {
    let mut port = OpenPort::open("127.0.0.1:0".parse().unwrap()).unwrap();
    let node = Node::start(&format!(
        r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
[[zones]]
name = "a"
latitude = 0.0
longitude = 0.0
[[services]]
name = "www"
check = {{ kind = "tcp", port = {}, interval = "200ms", timeout = "200ms", rise = 1, fall = 1 }}
[[services.endpoints]]
zone = "a"
addresses = ["127.0.0.1"]
"#,
        port.addr.port()
    ));
    wait_until("the address is probed up", Duration::from_secs(20), || {
        address_view(&node)["observed"] == "up"
    });
    let up = address_view(&node);
    let rtt = up["rtt_ms"].as_f64().unwrap_or_else(|| panic!("{up}"));
    assert_eq!((rtt * 100.0).round() / 100.0, rtt, "not rounded: {up}");
    assert!(up["last_rtt_ms"].is_null(), "{up}");

    port.close();
    wait_until(
        "the address is probed down",
        Duration::from_secs(20),
        || address_view(&node)["observed"] == "down",
    );
    let down = address_view(&node);
    assert!(
        down["rtt_ms"].is_null(),
        "a stale RTT shown as current: {down}"
    );
    assert!(down["last_rtt_ms"].as_f64().is_some(), "{down}");
    node.stop();
}

#[test]
fn the_state_file_reaches_the_disk_before_and_after_its_rename() {
    let Some(strace) = require_tool("strace", "strace") else {
        return;
    };
    let dir = private_dir();
    let config = example_in(&dir, "");
    let trace = dir.join("trace");
    let mut command = Command::new(strace);
    command
        .args([
            "-f",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_meridian"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    let daemon = Daemon::spawn(command);
    let admin = daemon.admin();
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{admin}/v1/zones/eu-west/drain"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["persisted"], true, "{body}");
    // Stop meridian itself (killing strace would detach it and leave it
    // running); strace exits with it.
    let strace_pid = daemon.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let meridian_pid = children
        .split_whitespace()
        .next()
        .expect("strace runs meridian");
    let status = Command::new("kill")
        .args(["-TERM", meridian_pid])
        .status()
        .unwrap();
    assert!(status.success());
    let mut daemon = daemon;
    let start = Instant::now();
    while daemon.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "meridian did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(daemon);
    let trace = std::fs::read_to_string(&trace).unwrap();
    let calls: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("sync(") || l.contains("rename"))
        .collect();
    let rename = calls
        .iter()
        .position(|l| l.contains("state.json.tmp"))
        .unwrap_or_else(|| panic!("no rename of the state file in:\n{trace}"));
    assert!(
        calls[..rename]
            .iter()
            .any(|l| l.contains("fsync(") || l.contains("fdatasync(")),
        "the temporary file is not flushed before the rename:\n{}",
        calls.join("\n")
    );
    assert!(
        calls[rename + 1..].iter().any(|l| l.contains("fsync(")),
        "the directory is not flushed after the rename:\n{}",
        calls.join("\n")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rejected_reload_is_one_log_event_listing_every_problem() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let daemon = Daemon::spawn(serve_on_loopback(&config));
    let admin = daemon.admin();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("latitude = 53.3", "lattitude = 53.3\nlatitude = 53.3")
            .replace("\"198.51.100.53\"", "\"198.51.100.530\""),
    )
    .unwrap();
    let (status, body) = post_reload(admin, None);
    assert_eq!(status, 422, "{body}");
    let start = Instant::now();
    let rejected = loop {
        let events: Vec<serde_json::Value> = daemon
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("config reload rejected"))
            })
            .collect();
        if !events.is_empty() {
            break events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let event = &rejected[0];
    assert_eq!(event["level"], "ERROR");
    let problems = event["problems"]
        .as_str()
        .unwrap_or_else(|| panic!("{event}"));
    let count = event["count"].as_u64().unwrap_or_else(|| panic!("{event}"));
    assert!(count >= 1, "{event}");
    assert!(
        problems.contains("lattitude") || problems.contains("ttl"),
        "{event}"
    );
    assert!(!problems.contains('\n'), "one line: {event}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `meridian_snapshots_live` from `/metrics`.
fn snapshots_live(admin: SocketAddr) -> u64 {
    let text = reqwest::blocking::get(format!("http://{admin}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("meridian_snapshots_live "))
        .unwrap_or_else(|| panic!("no meridian_snapshots_live in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_replaced_snapshot_is_freed_after_reloads() {
    // A process of its own: the gauge counts every snapshot in the process,
    // and the in-process harness runs many nodes at once.
    let dir = private_dir();
    let config = example_in(&dir, "");
    let daemon = Daemon::spawn(serve_on_loopback(&config));
    let admin = daemon.admin();
    assert_eq!(snapshots_live(admin), 1, "{}", daemon.logs());
    for _ in 0..3 {
        assert_eq!(post_reload(admin, None).0, 200, "{}", daemon.logs());
    }
    // Each reload answers once its snapshot is live; the one it replaced
    // goes when the last query reading it ends, which is at once here.
    // Something holding a replaced snapshot (the first one held by the
    // publisher for its whole run did, with every table in it) shows as 2
    // or more for good.
    let start = Instant::now();
    let mut live = snapshots_live(admin);
    while live != 1 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        live = snapshots_live(admin);
    }
    assert_eq!(live, 1, "replaced snapshots still in memory after reloads");
}
