//! The publisher's shell, run on a real runtime with real files: bursts
//! coalesce into one build, writers are answered once their snapshot is
//! live, a rejected reload keeps the old config serving, drains persist.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::publish::COUNT_BESIDE_FROM;
use super::*;
use crate::config::Config;
use crate::health::state::{Observed, Transition};
use crate::health::{AddressKey, initial_board};
use crate::snapshot::Snapshot;

/// Zone a has two addresses, both needed (`min_healthy = 2`). Probes never
/// come due during a test: reports are sent by hand.
fn config_text() -> String {
    let service = "policy = \"failover\"\norder = [\"a\", \"b\"]\n\
                   check = { kind = \"tcp\", port = 9, interval = \"1h\", timeout = \"1s\" }";
    crate::test_config::www(service, &["127.0.0.1", "127.0.0.11"], "127.0.0.2")
}

/// A directory of its own under the system's temporary directory, removed
/// on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "meridian-publisher-{name}-{}-{:?}",
            std::process::id(),
            SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Node {
    store: Arc<SnapshotStore>,
    metrics: Arc<Metrics>,
    handle: PublisherHandle,
    publisher: Option<Publisher>,
    reports: mpsc::Sender<Report>,
    board: Arc<HealthBoard>,
    stop: CancellationToken,
    config_path: PathBuf,
}

impl Node {
    fn new(dir: &TempDir, text: &str) -> Node {
        let config_path = dir.0.join("meridian.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Arc::new(Config::load(&config_path).expect("test config is valid"));
        let metrics = Arc::new(Metrics::default());
        let drains = load_drains(&config).unwrap();
        let store = Arc::new(SnapshotStore::new(Snapshot::initial(
            config.clone(),
            drains.clone(),
            None,
            metrics.answer_counters(&config),
        )));
        let board = Arc::new(initial_board(&config, SystemTime::now()));
        let (publisher, handle) =
            Publisher::new(store.clone(), metrics.clone(), drains, board.clone());
        Node {
            board,
            reports: publisher.report_tx.clone(),
            store,
            metrics,
            handle,
            publisher: Some(publisher),
            stop: CancellationToken::new(),
            config_path,
        }
    }

    fn start(&mut self) -> tokio::task::JoinHandle<()> {
        let publisher = self.publisher.take().expect("started once");
        tokio::spawn(publisher.run(self.stop.clone()))
    }

    fn serving(&self) -> Vec<String> {
        let snapshot = self.store.load_full();
        let config = &snapshot.config;
        config.services[0]
            .endpoints
            .iter()
            .zip(&snapshot.health.endpoints[0])
            .filter(|(_, v)| v.is_serving())
            .map(|(e, _)| config.zones[e.zone].name.clone())
            .collect()
    }
}

fn key(address: usize) -> AddressKey {
    AddressKey {
        service: 0,
        endpoint: 0,
        address,
    }
}

fn down(address: usize) -> Report {
    Report {
        epoch: 0,
        key: key(address),
        transition: Transition {
            from: Observed::Up,
            to: Observed::Down,
        },
        reason: "connection refused".into(),
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
}

use std::future::Future;

#[tokio::test]
async fn a_burst_of_reports_queued_together_costs_one_build() {
    let dir = TempDir::new("burst");
    let mut node = Node::new(&dir, &config_text());
    // Queued before the publisher runs, so they are in one batch with the
    // latency request that follows them.
    node.reports.send(down(0)).await.unwrap();
    node.reports.send(down(1)).await.unwrap();
    let task = node.start();
    let generation = within("latency reply", node.handle.latency(Vec::new()))
        .await
        .expect("publisher answers");
    assert_eq!(generation, 2, "two transitions and a push: one snapshot");
    assert_eq!(node.store.load().generation, 2);
    assert_eq!(node.serving(), ["b"]);
    let transitions = node.metrics.render();
    assert!(
        transitions.contains(
            r#"meridian_health_transitions_total{service="www.gslb.test.",zone="a",to="down"} 2"#
        ),
        "{transitions}"
    );
    node.stop.cancel();
    within("publisher stop", task).await.unwrap();
}

#[tokio::test]
async fn a_drain_is_live_and_persisted_when_the_reply_comes() {
    let dir = TempDir::new("drain");
    let state_file = dir.0.join("state.json");
    let text = config_text().replace(
        "[domain]",
        &format!(
            "[server]\nstate_file = {:?}\n\n[domain]",
            state_file.display().to_string()
        ),
    );
    let mut node = Node::new(&dir, &text);
    let task = node.start();
    let outcome = within(
        "drain",
        node.handle
            .drain(DrainRequest::new(DrainTarget::Zone("a".into()), true)),
    )
    .await
    .expect("publisher answers");
    assert!(outcome.changed && outcome.persisted, "{outcome:?}");
    assert_eq!(node.store.load().generation, outcome.generation);
    assert_eq!(node.serving(), ["b"]);
    let saved = Drains::load(&state_file).unwrap();
    assert!(saved.is_zone_drained("a"));

    let again = within(
        "drain",
        node.handle
            .drain(DrainRequest::new(DrainTarget::Zone("a".into()), true)),
    )
    .await
    .unwrap();
    assert!(!again.changed);
    assert_eq!(again.generation, outcome.generation, "nothing rebuilt");
    node.stop.cancel();
    within("publisher stop", task).await.unwrap();
}

#[tokio::test]
async fn a_rejected_reload_keeps_the_old_config_and_a_good_one_keeps_health() {
    let dir = TempDir::new("reload");
    let mut node = Node::new(&dir, &config_text());
    node.reports.send(down(0)).await.unwrap();
    // What the probe task would have written beside its report.
    let mut probed = crate::health::state::AddressHealth::new(SystemTime::now());
    for _ in 0..2 {
        let _ = probed.record(Err("refused".into()), None, 2, 2, SystemTime::now());
    }
    node.board.insert(key(0), probed);
    let task = node.start();
    within("latency reply", node.handle.latency(Vec::new())).await;
    assert_eq!(node.serving(), ["b"]);

    std::fs::write(
        &node.config_path,
        config_text().replace("latitude = 10.0", "latitude = 100.0"),
    )
    .unwrap();
    let before = node.store.load_full();
    let err = within("reload", node.handle.reload())
        .await
        .expect("publisher answers")
        .expect_err("latitude 100 is rejected");
    assert!(err.to_string().contains("latitude"), "{err}");
    let after = node.store.load_full();
    assert!(Arc::ptr_eq(&before, &after), "no snapshot was published");
    assert!(
        node.metrics
            .render()
            .contains(r#"meridian_config_reloads_total{result="rejected"} 1"#)
    );

    // A valid change elsewhere: zone a's addresses stay, so its health
    // (one address down: below min_healthy) carries over.
    std::fs::write(
        &node.config_path,
        config_text().replace("127.0.0.2\"", "127.0.0.3\""),
    )
    .unwrap();
    let generation = within("reload", node.handle.reload())
        .await
        .unwrap()
        .expect("valid config");
    assert_eq!(generation, before.generation + 1);
    let now = node.store.load_full();
    assert_eq!(
        now.config.services[0].endpoints[1].addresses[0].to_string(),
        "127.0.0.3"
    );
    assert_eq!(node.serving(), ["b"], "a stays down across the reload");
    // Reports from before the reload are late and change nothing.
    node.reports.send(down(1)).await.unwrap();
    within("latency reply", node.handle.latency(Vec::new())).await;
    assert_eq!(now.health.endpoints[0][0].addresses[1], Observed::Unknown);
    assert_eq!(
        node.store.load().health.endpoints[0][0].addresses[1],
        Observed::Unknown
    );
    node.stop.cancel();
    within("publisher stop", task).await.unwrap();
}

/// At scale (counters worked out beside the build, the board refilled
/// beside it): once the reply comes, every service has its counters, an
/// unchanged one the very same counter with its count, and the board a
/// record for every address of the new config.
#[tokio::test]
async fn a_reload_at_scale_keeps_counters_and_refills_the_board_before_the_reply() {
    let services = COUNT_BESIDE_FROM + 10;
    let text = |ttl: u32| {
        let mut text = crate::test_config::www("", &["192.0.2.1"], "192.0.2.2");
        for s in 0..services {
            text += &format!(
                "[[services]]\nname = \"svc{s}\"\nttl = {ttl}\ncheck = {{ kind = \"none\" }}\n\
                 [[services.endpoints]]\nzone = \"a\"\naddresses = [\"10.1.{}.{}\"]\n\
                 [[services.endpoints]]\nzone = \"b\"\naddresses = [\"10.2.{}.{}\"]\n",
                s / 250,
                s % 250 + 1,
                s / 250,
                s % 250 + 1
            );
        }
        text
    };
    let dir = TempDir::new("scale");
    let mut node = Node::new(&dir, &text(30));
    let task = node.start();
    let before = node.store.load_full();
    let counter = before.answer_counters[7][1].clone();
    counter.fetch_add(5, std::sync::atomic::Ordering::Relaxed);
    node.board.clear();

    // Every service's text changes (its ttl); names and endpoints stay.
    std::fs::write(&node.config_path, text(31)).unwrap();
    within("reload", node.handle.reload())
        .await
        .unwrap()
        .expect("valid config");
    let now = node.store.load_full();
    assert_eq!(now.config.services[7].ttl, 31);
    assert_eq!(now.answer_counters.len(), services + 1);
    assert!(
        now.answer_counters
            .iter()
            .zip(&now.config.services)
            .all(|(row, s)| row.len() == s.endpoints.len())
    );
    assert!(Arc::ptr_eq(&now.answer_counters[7][1], &counter));
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(
        node.board.len(),
        crate::health::address_keys(&now.config).count()
    );
    node.stop.cancel();
    within("publisher stop", task).await.unwrap();
}
