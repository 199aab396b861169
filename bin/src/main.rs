//! The `adi` command: live capture, offline classification and replay of captures, service
//! maps, the classifier list, Go programs and the host check. Only this crate wires probes,
//! the pipeline, container enrichment and sinks together.

#![forbid(unsafe_code)]

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use adi_core::Registry;
use adi_sinks::SinkSpec;
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

// Link the classifier crates: their registrations exist only if something references them
// (rust-lang/rust#64731). One line per crate, built-in or third-party.
#[cfg(feature = "example-plugin")]
use adi_classifier_ssh as _;
use adi_classifiers as _;

/// mimalloc: the live pipeline allocates and frees a few small buffers per event, where glibc's
/// allocator took about a fifth of adi's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod classify;
mod containers;
mod go_http;
mod go_ps;
mod live;
mod replay;
mod tls;

/// adi watches running services with eBPF and tells you what they really depend on: the HTTP
/// APIs they call and serve and the databases, caches and message buses they talk to, each
/// connection classified by protocol with a confidence score and a reason.
#[derive(Debug, Parser)]
#[command(name = "adi", version, propagate_version = true, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    live: LiveArgs,
}

/// `--max-rate`'s default: exchanges per second captured in full.
const DEFAULT_MAX_RATE: u32 = 1000;

const AFTER_HELP: &str = "\
Examples:
  sudo adi --classifiers all --sink jsonl      watch opted-in processes, JSON lines on stdout
  adi classify capture.pcap payload.bin        classify connections of a capture, or one payload
  adi replay capture.pcap                      a capture's http, message and connection events
  adi classifiers                              list the protocols adi recognises
  adi doctor                                   check this host first when something is wrong";

/// Flags of the main job (live capture).
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
struct LiveArgs {
    /// Classifiers to use: `all` or comma-separated ids (see `adi classifiers`).
    #[arg(long, default_value = "all", global = true)]
    classifiers: String,
    /// Where events go, repeatable: `jsonl` (stdout), `jsonl=PATH`, `env-yaml=PATH` (one YAML
    /// document per watched process with its environment), `service-map=PATH`. Kinds not
    /// given come from environment variables: `jsonl=$OUTPUT_PATH`,
    /// `env-yaml=$ENV_OUTPUT_PATH`, `service-map=$SERVICE_MAP_PATH`; with neither, `jsonl`
    /// on stdout. Files are created with mode 0600.
    #[arg(long = "sink", value_name = "KIND[=PATH]")]
    sinks: Vec<SinkSpec>,
    /// Keep only environment variables whose names start with one of these prefixes
    /// (comma-separated, case-sensitive) in the env-yaml sink. Empty: every variable.
    #[arg(
        long,
        env = "ENV_PREFIX_LIST",
        default_value = "",
        value_name = "PREFIX,...",
        hide_env_values = true
    )]
    env_prefixes: String,
    /// Watch this process (repeatable); overrides the ADI_PROFILE opt-in.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Watch every process.
    #[arg(long)]
    all: bool,
    /// Most bytes copied from the kernel per message (each read or write); the real size is
    /// always reported. At most 8192.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(64..=8192))]
    capture_bytes: u32,
    /// Most HTTP (or other) request/response exchanges per second captured in full, over all
    /// watched connections. Beyond it the kernel skips whole exchanges before copying a byte
    /// and counts their messages (`lost` events with source `kernel_sampled`, and the exit
    /// summary), so that adi's cost stays bounded however busy the services are. The first 2
    /// exchanges of every connection are always captured, so every connection is still
    /// classified and every dependency seen. 0: capture every exchange.
    #[arg(long, default_value_t = DEFAULT_MAX_RATE, value_name = "EXCHANGES")]
    max_rate: u32,
    /// Keep secrets in events: by default values of headers, query parameters and JSON or form
    /// fields whose names contain PASSWORD, PASSWD, SECRET, TOKEN, KEY, CREDENTIAL, AUTH or
    /// COOKIE (Authorization, Cookie, Set-Cookie, ...) become `<redacted>`.
    #[arg(long)]
    no_redact: bool,
    /// Run at the lowest CPU priority (SCHED_IDLE): adi then uses only CPU time the watched
    /// services leave idle. When they saturate the machine, the kernel ring buffer fills and
    /// events are lost (counted in `lost` events and the exit summary) instead of the services
    /// slowing down.
    #[arg(long)]
    idle_priority: bool,
    /// Go HTTP uprobes on watched Go programs (`go_http` events: requests they make and serve,
    /// HTTPS included, read before TLS). `auto`: only on Go programs whose TLS plaintext is
    /// not read (`--tls-uprobes off`, or a binary whose crypto/tls cannot be probed): elsewhere
    /// the socket and TLS capture already see their HTTP, and each uprobe hit costs the
    /// program ~15 µs; `on`: on every Go program; `off`.
    #[arg(long, value_enum, default_value_t = GoArg::Auto, value_name = "on|auto|off")]
    go_uprobes: GoArg,
    /// TLS plaintext: uprobes on OpenSSL-compatible libraries (libssl 1.1 and 3) read what
    /// watched processes encrypt and decrypt, so HTTPS, PostgreSQL over TLS and the rest are
    /// classified and parsed like plain traffic (their events say `"tls": true`). `on`: each
    /// library file is probed once for every process that maps it (unwatched processes take
    /// the uprobe trap and leave at once); `watched`: only watched processes are probed, one
    /// by one (nothing for the others, but a forked or just started process can lose its
    /// first calls); `off`.
    #[arg(long, value_enum, default_value_t = TlsArg::On, value_name = "on|watched|off")]
    tls_uprobes: TlsArg,
    /// Service map paths: `on` turns identifiers (numbers, UUIDs, long hex or base64-like
    /// segments) into `{id}`, so `/reviews/0` and `/reviews/1` are one endpoint; `off` keeps
    /// paths as requested.
    #[arg(long, value_enum, default_value_t = OnOff::On, value_name = "on|off", global = true)]
    template_paths: OnOff,
    /// Service map format: `seed` (the profiler seed's `services:` YAML), `observed` (an
    /// `ObservedBehaviors` document, adi.dev/v1alpha1) or `rcp` (one Runtime Conditions
    /// Profile per service, runtimeconditions.io/v1alpha1). See docs/service-map.md.
    #[arg(long, value_enum, default_value_t = MapFormatArg::Seed, global = true)]
    service_map_format: MapFormatArg,
    /// No status line: by default, when stderr is a terminal, adi prints a one-line status
    /// (events, rates, losses) every 5 seconds.
    #[arg(long)]
    quiet: bool,
    /// Profiles allowed to opt in (comma-separated): a process is watched when its
    /// ADI_PROFILE is one of them. Empty: any non-empty ADI_PROFILE. Without --pid or --all,
    /// adi watches processes whose environment has ADI_PROFILE set and non-empty, unless
    /// ADI_PROFILE_DISABLED=1; the kernel decides at every exec, before the program runs.
    #[arg(
        long,
        env = "ADI_PROFILE_ALLOWED",
        default_value = "",
        hide_env_values = true
    )]
    profile_allowed: String,
    /// Container runtimes (container enrichment).
    #[command(flatten)]
    runtimes: containers::RuntimeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Classify captures (pcap, pcapng) or raw payload files offline: one JSON line per TCP
    /// connection of a capture, one per payload file.
    Classify(ClassifyArgs),
    /// Run pcap/pcapng captures through the live pipeline: the same `http`, `message` and
    /// `connection` events as live capture, to the same sinks (pid 0, no service: a capture
    /// has no processes).
    Replay(ReplayArgs),
    /// List the classifiers linked into this binary, built-in and third-party.
    Classifiers(ClassifiersArgs),
    /// Service maps offline: `adi map build EVENTS.jsonl... -o FILE` builds the map from
    /// recorded events (the same code as the live `service-map` sink), `adi map merge`
    /// merges maps, `adi map render` draws one (Mermaid or Graphviz).
    Map(MapArgs),
    /// Go programs: `adi go ps` lists the running ones with their Go version and build info.
    Go(GoArgs),
    /// Check everything live capture needs on this host (kernel, BTF, tracefs, capabilities,
    /// each BPF program and map loaded for real, uprobes, container runtimes); exits non-zero
    /// when live capture cannot work. Mounts tracefs when it is missing, as live capture does.
    Doctor(DoctorArgs),
}

/// `adi replay` flags.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// Capture files (pcap or pcapng), replayed one after the other.
    #[arg(required = true, value_name = "CAPTURE")]
    files: Vec<PathBuf>,
    /// Where events go, repeatable: `jsonl` (stdout, the default), `jsonl=PATH`,
    /// `service-map=PATH`.
    #[arg(long = "sink", value_name = "KIND[=PATH]")]
    sinks: Vec<SinkSpec>,
    /// Keep secrets in events (by default they become `<redacted>`, query literals `?`).
    #[arg(long)]
    no_redact: bool,
}

/// `adi map` subcommands.
#[derive(Debug, Args)]
struct MapArgs {
    #[command(subcommand)]
    command: MapCommand,
}

#[derive(Debug, Subcommand)]
enum MapCommand {
    /// Build a service map from JSON lines written by `adi --sink jsonl` or `adi replay`
    /// (`-` reads stdin).
    Build {
        /// Event files, read in order.
        #[arg(required = true, value_name = "EVENTS")]
        files: Vec<PathBuf>,
        /// Where the map goes (written atomically, mode 0600); stdout when not given.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The same run's environment inventory (`--sink env-yaml=FILE`): which variables
        /// configure each dependency, for `--service-map-format rcp` (values never written).
        #[arg(long, value_name = "FILE")]
        env: Vec<PathBuf>,
    },
    /// Merge maps (`seed` format: the live sink keeps one beside any other format, as
    /// `PATH.seed.yaml`), from several hosts or runs: counts add, first seen is the
    /// earliest, last seen the latest, shapes and usage are united.
    Merge {
        /// Maps, in any order (the result does not depend on it).
        #[arg(required = true, value_name = "MAP")]
        files: Vec<PathBuf>,
        /// Where the merged map goes; stdout when not given.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Draw a map (`seed` format): services and what they depend on, one edge per
    /// destination and protocol with how much went over it.
    Render {
        /// The map.
        #[arg(value_name = "MAP")]
        file: PathBuf,
        /// `mermaid` (a flowchart, rendered by GitHub and many editors) or `dot` (Graphviz:
        /// `dot -Tsvg`).
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

/// `adi map render --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// `adi doctor` flags.
#[derive(Debug, Args)]
struct DoctorArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

/// `adi go` subcommands.
#[derive(Debug, Args)]
struct GoArgs {
    #[command(subcommand)]
    command: GoCommand,
}

#[derive(Debug, Subcommand)]
enum GoCommand {
    /// List running Go processes: pid, Go version, executable, main package, Go runtime
    /// variables (GOGC, GOMAXPROCS, ...); non-Go processes are not listed.
    Ps(go_ps::PsArgs),
}

/// `adi classify` flags.
#[derive(Debug, Args)]
struct ClassifyArgs {
    /// Capture files (detected by their pcap/pcapng magic) or raw payload files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// For payload files: the server port, used to order candidates and break ties.
    #[arg(long)]
    port: Option<u16>,
    /// For payload files: which way the bytes travelled. Default: try both.
    #[arg(long, value_enum)]
    direction: Option<DirectionArg>,
    /// For captures: threads that classify connections, each owning the connections whose
    /// addresses hash to it; one more reads the capture. 1 does everything on one thread.
    /// The output is the same whatever the number. Default: the number of cores.
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
}

/// `--service-map-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MapFormatArg {
    /// The seed's `generated_at` / `services:` YAML.
    Seed,
    /// `ObservedBehaviors` (adi.dev/v1alpha1).
    Observed,
    /// `RuntimeConditionsProfile` documents (runtimeconditions.io/v1alpha1).
    Rcp,
}

/// A feature switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// `--go-uprobes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GoArg {
    /// Every watched Go program.
    On,
    /// Go programs whose TLS plaintext is not read.
    Auto,
    /// No Go HTTP uprobes.
    Off,
}

/// `--tls-uprobes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TlsArg {
    /// Every process that maps a probed library.
    On,
    /// Watched processes only, one by one.
    Watched,
    /// No TLS uprobes.
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DirectionArg {
    /// From the connecting side to the accepting side.
    ToServer,
    /// From the accepting side back.
    ToClient,
}

/// `adi classifiers` flags.
#[derive(Debug, Args)]
struct ClassifiersArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // The constructor that sets it is linked from adi-probes: the CLI tests run this build.
    debug_assert!(
        adi_probes::host::arenas_committed_on_demand(),
        "mimalloc commits arenas eagerly: adi_probes::host's constructor was not linked"
    );
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("adi: {}", adi_core::error::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap writes them; a bad flag or value is one line on
/// stderr (clap's message and its tips, then where to read more), exit status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    eprintln!("adi: {line}; see `adi --help`");
    ExitCode::from(2)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let registry = Arc::new(
        Registry::from_inventory()?
            .select(&cli.live.classifiers)
            .context("--classifiers")?,
    );
    match cli.command {
        Some(Command::Classify(args)) => {
            let direction = args.direction.map(|d| match d {
                DirectionArg::ToServer => adi_core::Direction::ToServer,
                DirectionArg::ToClient => adi_core::Direction::ToClient,
            });
            let opts = classify::Options {
                port: args.port,
                direction,
                threads: args.threads.unwrap_or_else(|| {
                    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
                }),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let failures = classify::run(&registry, &args.files, opts, &mut out)?;
            out.flush().context("writing to stdout")?;
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Classifiers(args)) => {
            list_classifiers(&registry, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Go(GoArgs {
            command: GoCommand::Ps(args),
        })) => go_ps::run(&args),
        Some(Command::Doctor(args)) => doctor(args.json, &cli.live.runtimes),
        Some(Command::Map(MapArgs {
            command: MapCommand::Build { files, output, env },
        })) => map_build(&files, &env, output.as_deref(), map_options(&cli.live)),
        Some(Command::Map(MapArgs {
            command: MapCommand::Merge { files, output },
        })) => map_merge(&files, output.as_deref(), map_options(&cli.live)),
        Some(Command::Map(MapArgs {
            command: MapCommand::Render { file, format },
        })) => {
            let map = read_map(&file, map_options(&cli.live))?;
            let text = match format {
                GraphFormat::Mermaid => map.mermaid(),
                GraphFormat::Dot => map.dot(),
            };
            std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Replay(args)) => {
            let sinks = if args.sinks.is_empty() {
                vec![SinkSpec::Jsonl(None)]
            } else {
                args.sinks
            };
            let opts = replay::ReplayOptions {
                files: args.files,
                sinks,
                redact: !args.no_redact,
                map: map_options(&cli.live),
            };
            let failures = replay::run(&registry, &opts)?;
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => live(&cli.live, registry),
    }
}

/// `adi doctor`: the report, and a non-zero status when live capture cannot work.
fn doctor(json: bool, runtimes: &containers::RuntimeArgs) -> anyhow::Result<ExitCode> {
    let mut report = adi_probes::doctor::run();
    report.checks.extend(containers::doctor_checks(runtimes));
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing to stdout")?;
        writeln!(out).context("writing to stdout")?;
    } else {
        out.write_all(adi_probes::doctor::render_table(&report).as_bytes())
            .context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(if report.live_capture {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list_classifiers(registry: &Registry, json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        for r in registry.iter() {
            let line = serde_json::json!({
                "id": r.id, "category": r.category, "ports": r.default_ports,
                "description": r.description,
            });
            writeln!(out, "{line}")?;
        }
    } else {
        writeln!(
            out,
            "{:<12} {:<14} {:<28} DESCRIPTION",
            "ID", "CATEGORY", "PORTS"
        )?;
        for r in registry.iter() {
            let ports: Vec<String> = r.default_ports.iter().map(u16::to_string).collect();
            let ports = if ports.is_empty() {
                "(any)".to_owned()
            } else {
                ports.join(",")
            };
            writeln!(
                out,
                "{:<12} {:<14} {:<28} {}",
                r.id, r.category, ports, r.description
            )?;
        }
    }
    out.flush().context("writing to stdout")
}

/// The sinks to open: the `--sink` flags, then, for each kind no flag named, the seed's
/// variable (`OUTPUT_PATH`, `ENV_OUTPUT_PATH`, `SERVICE_MAP_PATH`: a flag beats its
/// variable), and JSON lines on stdout when that leaves nothing.
fn resolve_sinks(flags: &[SinkSpec], var: impl Fn(&str) -> Option<PathBuf>) -> Vec<SinkSpec> {
    let mut sinks = flags.to_vec();
    let has = |f: fn(&SinkSpec) -> bool| flags.iter().any(f);
    if !has(|s| matches!(s, SinkSpec::Jsonl(_))) {
        if let Some(p) = var("OUTPUT_PATH") {
            sinks.push(SinkSpec::Jsonl(Some(p)));
        }
    }
    if !has(|s| matches!(s, SinkSpec::EnvYaml(_))) {
        if let Some(p) = var("ENV_OUTPUT_PATH") {
            sinks.push(SinkSpec::EnvYaml(p));
        }
    }
    if !has(|s| matches!(s, SinkSpec::ServiceMap(_))) {
        if let Some(p) = var("SERVICE_MAP_PATH") {
            sinks.push(SinkSpec::ServiceMap(p));
        }
    }
    // A map alone shows nothing while capture runs: events go to stdout too, unless another
    // sink is given.
    if sinks.iter().all(|s| matches!(s, SinkSpec::ServiceMap(_))) {
        sinks.push(SinkSpec::Jsonl(None));
    }
    sinks
}

fn map_options(args: &LiveArgs) -> adi_sinks::service_map::MapOptions {
    use adi_sinks::service_map::MapFormat;
    adi_sinks::service_map::MapOptions {
        template_paths: args.template_paths == OnOff::On,
        format: match args.service_map_format {
            MapFormatArg::Seed => MapFormat::Seed,
            MapFormatArg::Observed => MapFormat::Observed,
            MapFormatArg::Rcp => MapFormat::Rcp,
        },
    }
}

/// `adi map build`: the map of recorded events. A line that is not a JSON object is counted
/// and skipped (said once per file, with its line number).
fn map_build(
    files: &[PathBuf],
    env: &[PathBuf],
    output: Option<&std::path::Path>,
    opts: adi_sinks::service_map::MapOptions,
) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    if let Some(out) = output {
        adi_sinks::check_writable(out)?;
    }
    let mut map = adi_sinks::service_map::MapBuilder::new(opts);
    for file in env {
        read_environments(file, &mut map)?;
    }
    let mut failures = 0;
    for file in files {
        let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(file) {
                Ok(f) => Box::new(std::io::BufReader::new(f)),
                Err(e) => {
                    eprintln!("adi: {}: {e}", file.display());
                    failures += 1;
                    continue;
                }
            }
        };
        let mut bad = 0u64;
        let mut first_bad = 0;
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<serde_json::Value>(&line) {
                Ok(v) if v.is_object() => map.add(&v),
                _ => {
                    bad += 1;
                    if first_bad == 0 {
                        first_bad = n + 1;
                    }
                }
            }
        }
        if bad > 0 {
            eprintln!(
                "adi: {}: {bad} line(s) are not JSON events and were skipped (first: line {first_bad})",
                file.display()
            );
        }
        // Each recording numbers its connections afresh: nothing pairs across files.
        map.finish();
    }
    write_map(&map, output)?;
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The processes' environments of an env-yaml inventory, into `map`.
fn read_environments(
    path: &std::path::Path,
    map: &mut adi_sinks::service_map::MapBuilder,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let docs = adi_sinks::service_map::yaml::parse_all(&text)
        .map_err(|why| anyhow::anyhow!("{} is not an env-yaml inventory: {why}", path.display()))?;
    for doc in docs {
        let pid = doc["adi_profile_pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        let (Some(pid), Some(vars)) = (pid, doc["adi_profile_env"].as_object()) else {
            continue;
        };
        let vars = vars
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        map.environment(pid, vars);
    }
    Ok(())
}

/// A `seed` map file.
fn read_map(
    path: &std::path::Path,
    opts: adi_sinks::service_map::MapOptions,
) -> anyhow::Result<adi_sinks::service_map::MapBuilder> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    adi_sinks::service_map::MapBuilder::from_yaml(&text, opts).map_err(|why| {
        anyhow::anyhow!(
            "{} is not a service map in the seed format ({why}); other formats leave things out: merge the PATH.seed.yaml the sink keeps beside them",
            path.display()
        )
    })
}

/// `adi map merge`.
fn map_merge(
    files: &[PathBuf],
    output: Option<&std::path::Path>,
    opts: adi_sinks::service_map::MapOptions,
) -> anyhow::Result<ExitCode> {
    if let Some(out) = output {
        adi_sinks::check_writable(out)?;
    }
    let mut merged = adi_sinks::service_map::MapBuilder::new(opts);
    for file in files {
        merged.merge(&read_map(file, opts)?);
    }
    write_map(&merged, output)?;
    Ok(ExitCode::SUCCESS)
}

/// A map stamped now, to `output` (atomically, 0600) or stdout.
fn write_map(
    map: &adi_sinks::service_map::MapBuilder,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let now = adi_core::time::rfc3339_nanos(adi_core::time::now_unix_ns());
    let text = map.to_yaml(&now)?;
    match output {
        Some(path) => adi_sinks::service_map::write_atomic(path, &text)?,
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?,
    }
    Ok(())
}

/// The main job: live capture until SIGINT/SIGTERM.
fn live(args: &LiveArgs, registry: Arc<Registry>) -> anyhow::Result<ExitCode> {
    let sinks = resolve_sinks(&args.sinks, |name| {
        std::env::var_os(name)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    let opts = live::LiveOptions {
        watch_all: args.all,
        pids: args.pids.clone(),
        capture_bytes: args.capture_bytes,
        max_rate: args.max_rate,
        sinks,
        allowed: args.profile_allowed.clone(),
        env_prefixes: adi_sinks::env_yaml::parse_prefix_list(&args.env_prefixes),
        redact: !args.no_redact,
        idle_priority: args.idle_priority,
        go_uprobes: match args.go_uprobes {
            GoArg::On => crate::go_http::GoMode::Every,
            // Without TLS plaintext, every Go program's HTTPS needs them.
            GoArg::Auto if args.tls_uprobes == TlsArg::Off => crate::go_http::GoMode::Every,
            GoArg::Auto => crate::go_http::GoMode::WithoutTlsPlaintext,
            GoArg::Off => crate::go_http::GoMode::Off,
        },
        tls_uprobes: match args.tls_uprobes {
            TlsArg::On => crate::tls::TlsMode::AllProcesses,
            TlsArg::Watched => crate::tls::TlsMode::Watched,
            TlsArg::Off => crate::tls::TlsMode::Off,
        },
        map: map_options(args),
        status_line: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        runtimes: args.runtimes.clone(),
    };
    live::run(&opts, registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_seed_variables() {
        let vars = |name: &str| match name {
            "OUTPUT_PATH" => Some(PathBuf::from("/v/events.jsonl")),
            "ENV_OUTPUT_PATH" => Some(PathBuf::from("/v/env.yaml")),
            _ => None,
        };
        let none = |_: &str| None;
        assert_eq!(resolve_sinks(&[], none), [SinkSpec::Jsonl(None)]);
        assert_eq!(
            resolve_sinks(&[], vars),
            [
                SinkSpec::Jsonl(Some("/v/events.jsonl".into())),
                SinkSpec::EnvYaml("/v/env.yaml".into())
            ]
        );
        let flags = [
            SinkSpec::Jsonl(None),
            SinkSpec::EnvYaml("/f/env.yaml".into()),
        ];
        assert_eq!(resolve_sinks(&flags, vars), flags);
        // Only env-yaml asked for: no events on stdout.
        let env_only = [SinkSpec::EnvYaml("/f/env.yaml".into())];
        assert_eq!(resolve_sinks(&env_only, none), env_only);
        // Only SERVICE_MAP_PATH, which this build cannot write yet: events still appear.
        let map = |name: &str| (name == "SERVICE_MAP_PATH").then(|| PathBuf::from("/v/map.yaml"));
        assert_eq!(
            resolve_sinks(&[], map),
            [
                SinkSpec::ServiceMap("/v/map.yaml".into()),
                SinkSpec::Jsonl(None)
            ]
        );
    }
}
