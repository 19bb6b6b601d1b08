//! The `meridian` binary itself: `check`, `explain`, and `serve` with its
//! signals, run as an operator would run them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::harness::*;

fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.toml")
}

#[test]
fn check_accepts_the_example_and_summarises_it() {
    let out = meridian()
        .args(["check", "--config"])
        .arg(example_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "domain gslb.example.",
        "us-east",
        "eu-west",
        "ap-south",
        "www.gslb.example.  policy nearest",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn check_reports_three_mistakes_at_once_with_their_lines() {
    let dir = private_dir();
    let path = dir.join("broken.toml");
    let text = all_policy_example()
        .replace("latitude = 53.3", "lattitude = 53.3\nlatitude = 53.3")
        .replace("zone = \"ap-south\"", "zone = \"ap-sout\"")
        .replace(
            "addresses = [\"198.51.100.53\"]",
            "addresses = [\"198.51.100.530\"]",
        );
    std::fs::write(&path, &text).unwrap();
    let out = meridian()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, what) in [
        ("lattitude", "unknown key `lattitude`"),
        ("ap-sout\"", "zone `ap-sout`, which is not defined"),
        ("198.51.100.530", "`198.51.100.530` is not an IP address"),
    ] {
        let location = format!("{}:{}:", path.display(), line_of(needle));
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&location) && l.contains(what)),
            "no {what:?} at {location} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 errors in config"), "{stderr}");
    assert!(
        stderr.matches("hint:").count() >= 3,
        "every error has a hint:\n{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explain_offline_names_the_zone_and_the_reason() {
    let out = meridian()
        .args(["explain", "--config"])
        .arg(example_path())
        .args(["--name", "www", "--client", "193.0.0.0/24"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chosen: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('*'))
        .collect();
    assert_eq!(chosen.len(), 1, "{stdout}");
    assert!(chosen[0].contains("eu-west"), "{stdout}");
    assert!(stdout.contains("\"country\":\"NL\""), "{stdout}");
    assert!(stdout.contains("ECS scope /"), "{stdout}");
    assert!(
        stdout.contains("IP Geolocation by DB-IP"),
        "attribution shown:\n{stdout}"
    );

    // The same service by its absolute name, as the API takes it too.
    let out = meridian()
        .args(["explain", "--config"])
        .arg(example_path())
        .args(["--name", "WWW.gslb.example", "--client", "193.0.0.0/24"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout);

    let out = meridian()
        .args(["explain", "--config"])
        .arg(example_path())
        .args(["--name", "nope", "--client", "193.0.0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service `nope`"));
}

/// The built binary serving a config on ephemeral loopback ports, as an
/// operator starts it. Killed on drop, so a failing test leaves nothing
/// running.
struct Served {
    child: Child,
    dns: SocketAddr,
    admin: SocketAddr,
    /// The JSON log lines read so far from the binary's stdout, by a
    /// thread that reads until the process closes it.
    logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Starts `meridian serve --config config` plus `args` on port 0 for
    /// DNS and admin, logging JSON, and learns the ports the kernel chose
    /// from its "serving" and "admin endpoint listening" log lines: no port
    /// is picked in advance, so no other test can take it in between.
    fn start(config: &Path, args: &[&str]) -> Served {
        let mut child = meridian()
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    logs.lock().unwrap().push(line);
                }
            })
        };
        let mut served = Served {
            child,
            dns: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
            logs,
            reader: Some(reader),
        };
        let start = Instant::now();
        loop {
            let dns = served.logged_field("serving", "dns");
            let admin = served.logged_field("admin endpoint listening", "admin");
            if let (Some(dns), Some(admin)) = (dns, admin) {
                // Debug forms: `[127.0.0.1:5300]` and `Some(127.0.0.1:8053)`.
                let dns = dns.trim_matches(['[', ']']).split(", ").next().unwrap();
                let admin = admin.trim_start_matches("Some(").trim_end_matches(')');
                served.dns = dns.parse().expect("the logged DNS address parses");
                served.admin = admin.parse().expect("the logged admin address parses");
                return served;
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!(
                    "the binary exited ({status}) before serving:\n{}",
                    served.logs()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the binary did not log its addresses:\n{}",
                served.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Field `field` of the first log line whose message is `message`.
    fn logged_field(&self, message: &str, field: &str) -> Option<String> {
        self.log_lines()
            .into_iter()
            .find(|line| line["message"] == message)
            .and_then(|line| line[field].as_str().map(str::to_string))
    }

    /// The log so far, parsed; every line must be JSON.
    fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// The log so far, as text.
    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The whole log, once the process has exited and closed its stdout.
    fn final_logs(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader ends");
        }
        self.logs()
    }

    /// One UDP query, `None` if no reply came within 200 ms.
    fn ask(&self, name: &str, qtype: RecordType) -> Option<Message> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        socket
            .send_to(&query(name, qtype).to_vec().unwrap(), self.dns)
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    }

    /// Asks until the binary answers: it has started.
    fn first_answer(&self, name: &str, qtype: RecordType) -> Message {
        let start = Instant::now();
        loop {
            if let Some(reply) = self.ask(name, qtype) {
                return reply;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the binary did not start answering"
            );
        }
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits for the process to exit, for 10 s at most (well under the
    /// idle timeout of the tests that keep a TCP connection open).
    fn exit_status(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "still running after 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_answers_then_exits_cleanly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let dir = private_dir();
        // Idle connections are kept a minute: a shutdown that waited for
        // them would miss the 10 s bound of `exit_status` by far.
        let config = example_in(&dir, "tcp_idle_timeout = \"60s\"");
        let mut served = Served::start(&config, &[]);
        let reply = served.first_answer("www.gslb.example.", RecordType::A);
        assert_eq!(reply.answers.len(), 1);

        // An open, answered, idle TCP connection must not hold the
        // shutdown up (answered: the server has taken it, it is not just
        // waiting in the listen queue).
        let mut idle = std::net::TcpStream::connect(served.dns).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let q = query("mail.gslb.example.", RecordType::A);
        assert_eq!(tcp_exchange(&mut idle, &q).answers.len(), 1);
        served.signal(signal);
        let status = served.exit_status();
        assert!(status.success(), "SIG{signal}: exit {status}");
        let logs = served.final_logs();
        // Every line is JSON (log_lines panics otherwise).
        let lines = served.log_lines();
        assert!(
            lines.iter().any(|line| line["message"] == "stopped"),
            "{logs}"
        );
        drop(idle);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn serve_refuses_a_bad_config_with_its_errors() {
    let dir = private_dir();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        all_policy_example().replace("[domain]\n", "[domain]\nttll = 1\n"),
    )
    .unwrap();
    let out = meridian()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown key `ttll`"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sighup_reloads_the_config_file() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut served = Served::start(&config, &[]);
    served.first_answer("gslb.example.", RecordType::TXT);
    let reloaded = "reloaded.gslb.example.";
    assert!(
        served
            .ask(reloaded, RecordType::TXT)
            .unwrap()
            .answers
            .is_empty()
    );
    std::fs::write(
        &config,
        format!("{text}\n[[records]]\nname = \"reloaded\"\ntype = \"TXT\"\ndata = \"yes\"\n"),
    )
    .unwrap();
    served.signal("HUP");
    let start = Instant::now();
    let answered = |m: Message| m.answers.len() == 1;
    while !served.ask(reloaded, RecordType::TXT).is_some_and(answered) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "still running after SIGHUP"
    );
    served.signal("TERM");
    assert!(served.exit_status().success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Writes the example with its state file in `dir` and `extra` keys in
/// [server]; returns the config path.
fn example_in(dir: &Path, extra: &str) -> PathBuf {
    let config = dir.join("example.toml");
    let text = example_config_text()
        .replace(
            "state_file = \"example.state.json\"",
            &format!("state_file = \"{}\"", dir.join("state.json").display()),
        )
        .replace("[server]\n", &format!("[server]\n{extra}\n"));
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn sigterm_lets_a_tcp_query_in_flight_finish() {
    let dir = private_dir();
    let config = example_in(&dir, "");
    let mut served = Served::start(&config, &[]);
    served.first_answer("gslb.example.", RecordType::TXT);
    let mut stream = std::net::TcpStream::connect(served.dns).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Half a query, then SIGTERM, then the rest.
    let q = query("mail.gslb.example.", RecordType::A);
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    served.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&framed[7..]).unwrap();
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .expect("the query in flight is answered");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.id, q.id);
    assert_eq!(reply.answers.len(), 1);
    assert_closed_by_server(
        &mut stream,
        Duration::from_secs(5),
        "after the query in flight",
    );
    let status = served.exit_status();
    assert!(status.success(), "exit {status}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_or_corrupt_geoip_database_stops_the_start_with_its_name() {
    let dir = private_dir();
    for (what, setup) in [
        ("missing", None),
        ("corrupt", Some(b"not an mmdb".as_slice())),
    ] {
        let db = dir.join(format!("{what}.mmdb"));
        if let Some(bytes) = setup {
            std::fs::write(&db, bytes).unwrap();
        }
        let config = dir.join("geo.toml");
        let text = example_config_text().replace(
            &format!("\"{}/geo/default.mmdb\"", env!("CARGO_MANIFEST_DIR")),
            &format!("\"{}\"", db.display()),
        );
        assert!(
            text.contains(&db.display().to_string()),
            "the GeoIP path was replaced"
        );
        std::fs::write(&config, text).unwrap();
        let out = meridian()
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&db.display().to_string()),
            "{what}: {stderr}"
        );
        if setup.is_none() {
            // The cause is named, and only once (the message embeds it, so
            // it must not come back as the error's source).
            let message = stderr
                .lines()
                .find(|line| line.starts_with("meridian: "))
                .unwrap_or_else(|| panic!("{what}: no error line in {stderr}"));
            let cause = std::fs::read(&db).unwrap_err().to_string();
            assert_eq!(message.matches(&cause).count(), 1, "{message}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unwritable_state_file_warns_and_the_drain_still_applies() {
    let dir = private_dir();
    // A state file whose directory goes away once the node has started
    // (a missing one is refused at start): every write fails.
    let config = example_in(&dir, "");
    let state = dir.join("no-such-dir/state.json");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &dir.join("state.json").display().to_string(),
        &state.display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir(dir.join("no-such-dir")).unwrap();
    let served = Served::start(&config, &[]);
    std::fs::remove_dir(dir.join("no-such-dir")).unwrap();
    let client = reqwest::blocking::Client::new();
    let admin = |method: reqwest::Method, path: &str| -> (u16, serde_json::Value) {
        let response = client
            .request(method, format!("http://{}{path}", served.admin))
            .send()
            .expect("admin answers");
        (response.status().as_u16(), response.json().unwrap())
    };
    let (status, body) = admin(reqwest::Method::POST, "/v1/zones/eu-west/drain");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(body["persisted"], false, "{body}");
    let (_, zone) = admin(reqwest::Method::GET, "/v1/zones/eu-west");
    assert_eq!(zone["drained"], true);
    // The failed write is in the log, at WARN, naming what failed.
    let start = Instant::now();
    loop {
        let warned = served.log_lines().into_iter().any(|line| {
            line["level"] == "WARN"
                && line["message"] == "drain not persisted"
                && line["err"]
                    .as_str()
                    .is_some_and(|err| err.contains("state.json"))
        });
        if warned {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no warning about the state file in the log:\n{}",
            served.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(served);
    std::fs::remove_dir_all(dir).unwrap();
}
