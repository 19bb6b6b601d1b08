//! The `meridian` command: parses arguments, sets up logging and signals,
//! and hands over to the library. Errors become messages and exit codes
//! here and nowhere else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use meridian::config::{CheckKind, Config};
use meridian::{Listeners, run};

#[global_allocator]
static ALLOCATOR: meridian::allocator::NodeAllocator = meridian::allocator::NodeAllocator;

/// `--version`: the crate version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MERIDIAN_COMMIT"),
    ")"
);

const SERVE_AFTER_HELP: &str = "\
Defaults: DNS on 127.0.0.1:5300 (UDP and TCP) and no admin endpoint, unless
the config's [server] says otherwise; binding port 53 needs root or
CAP_NET_BIND_SERVICE (the systemd unit in deploy/ grants it).

Signals:
  SIGHUP           re-read the config file (like POST /v1/reload); a config
                   with errors is rejected whole and the previous one serves on
  SIGTERM, SIGINT  stop: no new queries, finish those in flight, exit

Environment:
  MERIDIAN_CONFIG         the config file, instead of --config
  MERIDIAN_LISTEN         DNS addresses, comma-separated, instead of --listen
  MERIDIAN_ADMIN          admin address, instead of --admin
  MERIDIAN_NODE           this node's name in [[cluster.nodes]], instead of --node
  MERIDIAN_ADMIN_TOKEN    the admin token, over server.admin_token(_file)
  MERIDIAN_COOKIE_SECRET  the DNS cookie secret, over server.cookie_secret(_file)
  RUST_LOG                log filter (default: info), e.g. `debug` or
                          `info,meridian::health=debug`
  NOTIFY_SOCKET           set by systemd (Type=notify): READY=1 is sent once the
                          sockets are bound and the first snapshot serves";

#[derive(Parser)]
#[command(
    name = "meridian",
    version = VERSION,
    about = "Meridian: a DNS load balancer that answers with the nearest healthy zone"
)]
struct Cli {
    /// Log format on stdout.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The config file argument every command takes.
#[derive(clap::Args)]
struct ConfigArg {
    /// The config file (TOML; see the configuration reference in README.md).
    #[arg(long, short, value_name = "FILE", env = "MERIDIAN_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the domain described by a config file.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// DNS address (UDP and TCP); repeat for several. Replaces the
        /// config's `server.dns`.
        #[arg(
            long = "listen",
            value_name = "ADDR",
            env = "MERIDIAN_LISTEN",
            value_delimiter = ','
        )]
        listen: Vec<SocketAddr>,
        /// Admin HTTP address. Replaces the config's `server.admin`.
        #[arg(long, value_name = "ADDR", env = "MERIDIAN_ADMIN")]
        admin: Option<SocketAddr>,
        /// Which of the config's `[[cluster.nodes]]` this process is, so
        /// every node runs the same file.
        #[arg(long, value_name = "NAME", env = "MERIDIAN_NODE")]
        node: Option<String>,
    },
    /// Check a config file as `serve` would read it (GeoIP databases, state
    /// file, token files included) and print a summary; exits non-zero
    /// when `serve` would refuse to start.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Check as this node of `[[cluster.nodes]]`.
        #[arg(long, value_name = "NAME", env = "MERIDIAN_NODE")]
        node: Option<String>,
    },
    /// Say which zone a client would get and why, offline (no probes run:
    /// every endpoint counts as healthy unless drained in the state file).
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// The service, relative to the domain or fully qualified.
        #[arg(long)]
        name: String,
        /// A client address, or a subnet as ECS would give it.
        #[arg(long)]
        client: String,
        /// Print JSON, as the admin API's /v1/explain does.
        #[arg(long)]
        json: bool,
    },
    /// DNSSEC keys: make one, or print the DS records for the parent.
    Dnssec {
        #[command(subcommand)]
        command: DnssecCommand,
    },
    /// Print a shell completion script, e.g.
    /// `meridian completions bash > /etc/bash_completion.d/meridian`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `meridian man | man -l -`.
    Man,
}

#[derive(Subcommand)]
enum DnssecCommand {
    /// Write a new signing key pair: `K<domain>+<alg>+<tag>.pem` (PKCS#8,
    /// mode 0600; name it in `[dnssec] key_file`) and `.key` (its DNSKEY).
    Keygen {
        /// The domain's apex, e.g. `gslb.example.`.
        #[arg(long)]
        domain: String,
        /// `ecdsap256sha256` (13) or `ed25519` (15).
        #[arg(long, default_value = meridian::config::defaults::DNSSEC_ALGORITHM)]
        algorithm: String,
        /// Where to write the files.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: PathBuf,
    },
    /// Print the DS records (SHA-256) of the config's keys, for the parent.
    Ds {
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn dnssec(command: DnssecCommand) -> anyhow::Result<()> {
    use meridian::dnssec::{key::Algorithm, tools};
    match command {
        DnssecCommand::Keygen {
            domain,
            algorithm,
            out_dir,
        } => {
            let algorithm = Algorithm::parse(&algorithm).with_context(|| {
                format!("algorithm `{algorithm}` is not offered; use ecdsap256sha256 or ed25519")
            })?;
            let domain = hickory_proto::rr::Name::from_ascii(&domain)
                .ok()
                .filter(|_| domain.ends_with('.'))
                .with_context(|| {
                    format!("`{domain}` is not a fully qualified name; write it with the final dot")
                })?;
            let made = tools::keygen(&domain, algorithm, &out_dir)?;
            println!("private key (mode 0600): {}", made.private.display());
            println!("DNSKEY:                  {}", made.public.display());
            println!("key tag:                 {}", made.key_tag);
        }
        DnssecCommand::Ds { config } => {
            let config = Config::load(&config.config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let records = tools::ds_records(&config);
            anyhow::ensure!(
                !records.is_empty(),
                "{} has no [dnssec] table: the domain is not signed",
                config.source.display()
            );
            for record in records {
                println!("{record}");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    meridian::allocator::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, node } => check(&config.config, node.as_deref()),
        Command::Dnssec { command } => match dnssec(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "meridian", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let page = clap_mangen::Man::new(Cli::command());
            match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("meridian: cannot write the man page: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Explain {
            config,
            name,
            client,
            json,
        } => match explain(&config.config, &name, &client, json) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("meridian: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config,
            listen,
            admin,
            node,
        } => {
            init_logging(cli.log_format);
            match serve(&config.config, listen, admin, node.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("meridian: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The config as `serve` uses it: the file, as node `node`, with the
/// environment's secrets over the file's.
fn load(path: &Path, node: Option<&str>) -> anyhow::Result<Config> {
    Ok(Config::load(path)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .for_node(node)?
        .with_env(|name| std::env::var(name).ok())?)
}

fn init_logging(format: LogFormat) {
    // hickory logs every request at info; that is our job, and cheaper.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,hickory_proto=warn,hickory_server=warn".into());
    // Colour codes only for a person at a terminal: journald, files and
    // pipes get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn serve(
    path: &Path,
    listen: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    node: Option<&str>,
) -> anyhow::Result<()> {
    let mut config = load(path, node)?;
    if !listen.is_empty() {
        config.server.dns = listen;
    }
    if admin.is_some() {
        config.server.admin = admin;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("meridian")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listeners = Listeners::bind(&config)?;
        run(config, listeners, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
}

fn explain(path: &Path, name: &str, client: &str, json: bool) -> anyhow::Result<String> {
    use std::fmt::Write;
    use std::sync::Arc;
    let config = Arc::new(Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?);
    let drains = meridian::publisher::load_drains(&config)?;
    let geo = meridian::publisher::open_geoip(&config)?;
    let counters = meridian::snapshot::detached_counters(&config);
    let snapshot = meridian::snapshot::Snapshot::initial(config.clone(), drains, geo, counters);
    let service = config.service_index(name).ok_or_else(|| {
        let known: Vec<String> = config.services.iter().map(|s| s.name.to_string()).collect();
        anyhow::anyhow!(
            "no service `{name}` in {}; services are: {}",
            path.display(),
            known.join(", ")
        )
    })?;
    let client = meridian::admin::parse_client(client).map_err(|e| anyhow::anyhow!("{e}"))?;
    let e = meridian::routing::explain::explain(
        &config,
        &snapshot.health,
        &snapshot.router,
        service,
        client,
    );
    if json {
        return Ok(serde_json::to_string_pretty(&e)? + "\n");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} for {}/{}: policy {}",
        e.service, e.client, e.source_prefix, e.policy
    );
    let _ = writeln!(out, "basis: {}", serde_json::to_string(&e.basis)?);
    let _ = writeln!(out, "candidates (preferred first):");
    for c in &e.candidates {
        let _ = writeln!(
            out,
            "  {} {:<14} {:>9} {:>9} {:<7}{}{}",
            if c.chosen { "*" } else { " " },
            match &c.endpoint {
                Some(name) => format!("{}/{name}", c.zone),
                None => c.zone.clone(),
            },
            c.distance_km.map_or("-".into(), |d| format!("{d:.0} km")),
            c.rtt_ms.map_or("-".into(), |r| format!("{r:.1} ms")),
            c.observed,
            if c.drained { " drained" } else { "" },
            if c.serving { "" } else { " (not serving)" },
        );
    }
    let _ = writeln!(
        out,
        "answer: {}  ttl {}s  ECS scope /{}{}",
        e.answer.join(" "),
        e.ttl,
        e.ecs_scope,
        if e.all_down {
            format!("  (all down: {})", e.all_down_rule)
        } else {
            String::new()
        }
    );
    for split in &e.in_zone {
        let _ = writeln!(out, "in zone {}: {}", split.zone, split.why);
    }
    if let Some(geo) = &e.geoip {
        let _ = writeln!(out, "geoip: {geo}");
    }
    Ok(out)
}

/// Everything `serve` reads before it binds, read the same way; a problem
/// here is one that would stop `serve`.
fn check(path: &Path, node: Option<&str>) -> ExitCode {
    match checked(path, node) {
        Ok((config, notes)) => {
            for warning in &config.warnings {
                eprintln!("{warning}");
            }
            for note in &notes {
                eprintln!("{}: warning: {note}", path.display());
            }
            print!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config as `serve` would use it, its state file and GeoIP databases
/// opened, and warnings beyond the config's own.
fn checked(path: &Path, node: Option<&str>) -> anyhow::Result<(Config, Vec<String>)> {
    let mut notes = Vec::new();
    // A shared cluster file is checked as a whole without a node name;
    // `serve` will need one.
    let config = if node.is_none() && Config::load(path).is_ok_and(|c| c.cluster.nodes.len() > 1) {
        notes.push(
            "several [[cluster.nodes]]: `serve` needs --node NAME or MERIDIAN_NODE; checked without one"
                .to_string(),
        );
        Config::load(path)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_env(|name| std::env::var(name).ok())?
    } else {
        load(path, node)?
    };
    let drains = meridian::publisher::load_drains(&config)?;
    for zone in drains.unknown_zones(&config) {
        let file = config
            .server
            .state_file
            .as_deref()
            .unwrap_or(Path::new("?"));
        notes.push(format!(
            "state file {} drains zone `{zone}`, which the config does not have; the drain does nothing (undrain it, or remove it from the file)",
            file.display()
        ));
    }
    for endpoint in drains.unknown_endpoints(&config) {
        let file = config
            .server
            .state_file
            .as_deref()
            .unwrap_or(Path::new("?"));
        notes.push(format!(
            "state file {} drains endpoint {endpoint}, which the config does not have; the drain does nothing (remove it from the file)",
            file.display()
        ));
    }
    meridian::publisher::open_geoip(&config)?;
    Ok((config, notes))
}

fn summary(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let d = &config.domain;
    let _ = writeln!(out, "{}: ok", config.source.display());
    let _ = writeln!(
        out,
        "domain {}  (SOA serial {}, negative TTL {}s, record TTL {}s, service TTL {}s)",
        d.name,
        d.soa.serial,
        d.soa.negative_ttl(),
        d.ttl,
        d.service_ttl
    );
    for ns in &d.nameservers {
        let glue: Vec<String> = ns.addresses.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(out, "  NS {}  {}", ns.name, glue.join(" "));
    }
    let _ = writeln!(out, "  {} static record(s)", config.records.len());
    if let Some(dnssec) = &config.dnssec {
        let key = dnssec.key.dnskey();
        let _ = writeln!(
            out,
            "  DNSSEC: signing key tag {} algorithm {}, {} published key(s), signatures valid {}h, renewed every {}h",
            key.key_tag(),
            key.algorithm,
            dnssec.published.len(),
            dnssec.validity.as_secs() / 3600,
            dnssec.refresh.as_secs() / 3600
        );
    }
    let dns: Vec<String> = config.server.dns.iter().map(|a| a.to_string()).collect();
    let admin = config
        .server
        .admin
        .map_or("off".to_string(), |a| a.to_string());
    let _ = writeln!(out, "listen dns {}  admin {}", dns.join(" "), admin);
    let _ = writeln!(out, "zones ({}):", config.zones.len());
    for z in &config.zones {
        let tags: Vec<&str> = [&z.continent, &z.country, &z.region]
            .into_iter()
            .filter_map(|t| t.as_deref())
            .collect();
        let _ = writeln!(
            out,
            "  {:<16} {:>8.3} {:>9.3}  {}",
            z.name,
            z.latitude,
            z.longitude,
            tags.join("/")
        );
    }
    let _ = writeln!(out, "services ({}):", config.services.len());
    for s in &config.services {
        let _ = writeln!(
            out,
            "  {}  policy {}  ttl {}s",
            s.name,
            s.policy.name(),
            s.ttl
        );
        for e in &s.endpoints {
            let addrs: Vec<String> = e.addresses.iter().map(|a| a.to_string()).collect();
            let check = match e.check.kind {
                CheckKind::None => "check none".to_string(),
                CheckKind::Tcp => format!("check tcp :{}", e.check.port),
                kind => format!("check {} :{}{}", kind.name(), e.check.port, e.check.path),
            };
            let weight = if s.is_split(e.zone) {
                format!("  weight {}", e.weight)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "    {:<16} {}  ({check}){weight}",
                e.label(&config.zones),
                addrs.join(" ")
            );
        }
    }
    out
}
