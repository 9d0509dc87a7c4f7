//! Command-line syntax: clap types, and the value parsers that turn each flag into the type
//! the command needs, so a flag that does not parse is refused by clap (naming the flag, exit
//! code 2) before any command runs. `commands` turns the result into what runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "foretell",
    version,
    about = "Forecasts, baselines and anomaly scores for Prometheus series, served as metrics"
)]
pub struct Cli {
    /// Log line format: logfmt (as Prometheus and its exporters write) or JSON.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    pub log_format: LogFormat,
    /// Minimum log level (error, warn, info, debug, trace) or a tracing filter directive.
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

/// `queries[].peers.method` as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeerMethodArg {
    Mad,
    Dbscan,
}

impl From<PeerMethodArg> for foretell_core::peers::PeerMethod {
    fn from(arg: PeerMethodArg) -> Self {
        match arg {
            PeerMethodArg::Mad => foretell_core::peers::PeerMethod::Mad,
            PeerMethodArg::Dbscan => foretell_core::peers::PeerMethod::Dbscan,
        }
    }
}

/// `queries[].model.first_fit` as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirstFitArg {
    /// A cheap first model, the full fit at the series' first refit.
    Quick,
    /// The full fit from the start.
    Full,
}

impl From<FirstFitArg> for foretell_core::tracker::FirstFit {
    fn from(arg: FirstFitArg) -> Self {
        match arg {
            FirstFitArg::Quick => foretell_core::tracker::FirstFit::Quick,
            FirstFitArg::Full => foretell_core::tracker::FirstFit::Full,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` pairs, one line per event; `text` is accepted as its old name.
    #[value(alias = "text")]
    Logfmt,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar: query Prometheus, learn baselines, serve /metrics.
    Run {
        /// Configuration file (YAML); `--config` is accepted too.
        #[arg(
            long = "config.file",
            short = 'c',
            alias = "config",
            value_name = "FILE"
        )]
        config: PathBuf,
        /// Where foretell listens, HOST:PORT or :PORT (overrides server.listen_address, on
        /// every reload too).
        #[arg(long = "web.listen-address", value_name = "HOST:PORT", value_parser = crate::config::listen_address)]
        web_listen_address: Option<std::net::SocketAddr>,
        /// Enable POST /-/reload and the dead-letter retry API (as server.enable_lifecycle:
        /// true).
        #[arg(long = "web.enable-lifecycle")]
        web_enable_lifecycle: bool,
        /// The URL users reach foretell at, for links in enriched alerts (overrides
        /// server.external_url).
        #[arg(long = "web.external-url", value_name = "URL", value_parser = crate::config::external_url)]
        web_external_url: Option<url::Url>,
        /// How often the configuration file is checked for a change, which is then loaded as
        /// on SIGHUP (a ConfigMap update reaches a mounted directory without a restart); off
        /// when not given.
        #[arg(long = "config.auto-reload-interval", value_name = "DURATION", value_parser = parse::duration)]
        config_auto_reload_interval: Option<Duration>,
        /// This replica's shard, INDEX/COUNT (e.g. 0/3): overrides the file's `shard`, on every
        /// reload too. In a StatefulSet, without a shell: `--shard $(POD_INDEX)/3` with
        /// POD_INDEX from the pod's `apps.kubernetes.io/pod-index` label
        /// (`deploy/kubernetes/sharded`).
        #[arg(long, value_name = "INDEX/COUNT", value_parser = foretell_core::shard::Shard::parse)]
        shard: Option<foretell_core::shard::Shard>,
        /// TLS and basic auth of the listener, in the Prometheus exporter toolkit's web
        /// configuration format (`tls_server_config`, `basic_auth_users`). Restart to change.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    #[cfg(feature = "tools")]
    /// Run foretell on a bundled synthetic dataset with nothing to set up: status page,
    /// /metrics, charts, and a sample alert that comes back enriched. Ctrl-C stops it.
    Demo {
        /// Where foretell listens.
        #[arg(long, default_value = "127.0.0.1:9896")]
        listen: std::net::SocketAddr,
        /// Folder for the demo's configuration, keys and audit log (default: a temporary one,
        /// removed at the end).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Validate a configuration file: exit 0 when valid, 2 with every problem listed when not.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Score a `timestamp,value` CSV offline, row by row, with the sidecar's models: writes
    /// `timestamp,value,anomaly_score,anomaly_probability` for every input row, each computed
    /// from the rows up to it only.
    Detect {
        /// Input CSV with a `timestamp` and a `value` column.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// How often the model is refitted, in the data's time; points in between update it
        /// online, as in the sidecar.
        #[arg(long, default_value = "1h", value_parser = parse::duration)]
        refit_interval: Duration,
        /// Accept repeated or backward timestamps: such a row repeats the previous row's output.
        #[arg(long)]
        allow_disorder: bool,
        /// Also write the evidence an alert at each row would get: the open excursion
        /// (`excursion_points,outside_points,peak_sigmas,peak_probability,latest_sigmas`), how far
        /// the values went beyond their recent range lately (`range_excess`), how familiar the
        /// stretch that opened its anomaly episode was (`familiarity`: 0 never seen, 1 an exact
        /// repeat of several earlier occasions; the onset's probability was scaled by one minus
        /// it; kept for the open excursion, or for that row alone outside one), the `confidence` computed from it (input of `bench/confidence_eval.py`) and the
        /// band the row was judged against (`expected,lower,upper`).
        #[arg(long)]
        evidence: bool,
        /// Also draw the result as an SVG chart (the status page's chart code): the values,
        /// the band each row was judged against, points outside it and anomaly onsets.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// Fit the models on a `timestamp,value` CSV and forecast: writes `step,timestamp,forecast,lower,upper`.
    Forecast {
        /// Input CSV with a `timestamp` and a `value` column.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// How far ahead: a number of steps, or a duration such as 1d.
        #[arg(long)]
        horizon: String,
        #[command(flatten)]
        model: ModelArgs,
        /// Also draw the newest rows and the forecast with its interval as an SVG chart (the
        /// status page's chart code).
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// Replay a configured query's models on Prometheus history: rolling-origin forecast
    /// accuracy (MASE, sMAPE, interval coverage) and the online anomaly rate, per series.
    Backtest {
        /// Configuration file (YAML): the Prometheus to read and the query to replay;
        /// `--config` is accepted too.
        #[arg(
            long = "config.file",
            short = 'c',
            alias = "config",
            value_name = "FILE"
        )]
        config: PathBuf,
        /// Name of the query (`queries[].name`).
        #[arg(long)]
        query: String,
        /// Start of the range: `now-14d`, Unix seconds, `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339
        /// (default: two histories before --to).
        #[arg(long)]
        from: Option<String>,
        /// End of the range, in the same forms (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Forecast length compared at each origin, a multiple of the step (default: the
        /// query's longest horizon).
        #[arg(long)]
        horizon: Option<String>,
        /// Forecast origins per series, evenly spaced over the range.
        #[arg(long, default_value_t = 10)]
        origins: usize,
        /// Report format.
        #[arg(long, value_enum, default_value_t = BacktestFormat::Table)]
        format: BacktestFormat,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List or requeue the dead-lettered deliveries of a running foretell (through its HTTP
    /// API; requeueing needs server.enable_lifecycle).
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Benchmarks with documented inputs (results in docs/benchmarks.md).
    #[cfg(feature = "tools")]
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Inspect the signed audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write synthetic demo history (OpenMetrics, for `promtool tsdb create-blocks-from
    /// openmetrics`) and recording rules that continue the same series live:
    /// `demo_requests_per_second` of the web instances, and `demo_request_latency_seconds` of
    /// five sibling instances, `api-4` drifting away from the others since two hours before the
    /// end of the history (for `queries[].peers`).
    SampleData {
        /// Where to write the OpenMetrics history.
        #[arg(long, value_name = "FILE")]
        history_out: PathBuf,
        /// Where to write the Prometheus recording rules.
        #[arg(long, value_name = "FILE")]
        rules_out: PathBuf,
        /// Last timestamp of the history, Unix seconds (default: now).
        #[arg(long, value_name = "UNIX_SECONDS")]
        end: Option<i64>,
        /// Length of the history.
        #[arg(long, default_value = "2d", value_parser = parse::duration)]
        span: Duration,
        /// Spacing of the history's samples.
        #[arg(long, default_value = "10s", value_parser = parse::whole_seconds)]
        step: Duration,
        /// Start of a live spike on instance web-a, Unix seconds.
        #[arg(long, value_name = "UNIX_SECONDS")]
        spike_at: Option<i64>,
        /// Length of the live spike in seconds.
        #[arg(long, default_value_t = 60)]
        spike_secs: u32,
        /// Number of series (at least 3: web-a, web-b, web-c, then web-0003 on).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(3..=100_000))]
        instances: u32,
        /// Evaluation interval of the recording rules that continue the series live.
        #[arg(long, default_value = "1s", value_parser = parse::whole_seconds)]
        rule_interval: Duration,
    },
}

/// Model flags shared by `detect` and `forecast`.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Seasonal period: `auto` (a day or a week when the data shows it), `none`, a number of
    /// rows, or a duration such as 1d.
    #[arg(long, default_value = "auto")]
    pub season: String,
    /// Two-sided coverage of the band and the forecast interval, in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    pub coverage: f64,
    /// Window the model learns from, e.g. 7d (detect default: 15d, two weekly cycles; forecast default: every row).
    #[arg(long, value_parser = parse::duration)]
    pub history: Option<Duration>,
    /// Points needed before the model is ready.
    #[arg(long, default_value_t = 30)]
    pub min_history_points: usize,
}

#[cfg(feature = "tools")]
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Concurrent scrapers on the real listener's `/metrics` serving many series, for a
    /// bounded time: scrapes per second, latency percentiles, memory.
    Metrics {
        #[arg(long, default_value_t = 100_000, value_parser = parse::positive_count())]
        series: usize,
        #[arg(long, default_value_t = 4, value_parser = parse::positive_count())]
        clients: usize,
        /// How long the scrapers run, at most 10m.
        #[arg(long, default_value = "20s", value_parser = parse::bounded_load)]
        duration: Duration,
        /// Ask for gzip, as Prometheus does.
        #[arg(long)]
        gzip: bool,
    },
    /// How well peer outliers find the one series that leaves its group, against the
    /// per-series detector alone: generated groups with a divergence of each kind (level,
    /// slope, shape, variance, stuck), precision and recall of each detector.
    Peers {
        /// Group sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5,50,500", value_parser = parse::positive_count())]
        group_sizes: Vec<usize>,
        /// Cases per group size and kind.
        #[arg(long, default_value_t = 4, value_parser = parse::positive_count())]
        seeds: usize,
        #[arg(long, value_enum, default_value_t = PeerMethodArg::Mad)]
        method: PeerMethodArg,
        /// As `queries[].peers.sensitivity`, in (0, 1).
        #[arg(long, default_value_t = 0.5)]
        sensitivity: f64,
        /// Instead of generated groups, the CPU files of NAB's realAWSCloudwatch category as
        /// one group, judged against their labelled windows: the directory holding `data/` and
        /// `windows.json` (e.g. ../shared/datasets/nab-public).
        #[arg(long, value_name = "DIR")]
        nab: Option<std::path::PathBuf>,
    },
    /// foretell's own cost of tracking many series (no Prometheus): load and fit synthetic
    /// series with their history, then steady cycles of one new point each; reports time, CPU,
    /// RSS and bytes per series.
    Scale {
        #[arg(long, default_value_t = 100_000, value_parser = parse::positive_count())]
        series: usize,
        /// Queries the series are split among (each evaluated on its own, as in the sidecar).
        #[arg(long, default_value_t = 10)]
        queries: usize,
        #[arg(long, default_value = "2d", value_parser = parse::positive_duration)]
        history: Duration,
        #[arg(long, default_value = "1m", value_parser = parse::positive_duration)]
        step: Duration,
        /// Seasonal period of the models, or `none`.
        #[arg(long, default_value = "1d", value_parser = parse::season)]
        season: parse::Season,
        #[arg(long, default_value = "1h", value_parser = parse::positive_duration)]
        refit_interval: Duration,
        /// Each series' record of what the live model did, for the charts (`0s`: none), as
        /// `queries[].live_record`.
        #[arg(long, default_value = "6h", value_parser = parse::duration)]
        live_record: Duration,
        /// Steady cycles after the load (one step each).
        #[arg(long, default_value_t = 5)]
        cycles: usize,
        /// Threads evaluating queries side by side (the sidecar's blocking pool on 2 cores).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Also write every query's state file into this folder, restore from it as a restart
        /// would, and report the size and the time of both (the files are removed after).
        #[arg(long)]
        state: Option<std::path::PathBuf>,
        /// How each series' first model is fitted, as `queries[].model.first_fit`.
        #[arg(long, value_enum, default_value_t = FirstFitArg::Quick)]
        first_fit: FirstFitArg,
        /// Also find peer outliers in groups of this many series (MAD over the newest hour).
        #[arg(long, value_name = "GROUP_SIZE", value_parser = parse::positive_count())]
        peers: Option<usize>,
    },
    /// One query's cold history load against a real Prometheus, through remote read and
    /// through query_range in alternating rounds: wall time, foretell's and Prometheus' CPU,
    /// and whether both gave the same series and samples (exit 1 when they differ).
    History {
        /// The configuration whose `prometheus` section and query are used.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The query (by `name`); the first one by default.
        #[arg(long)]
        query: Option<String>,
        /// History to load (the query's `history` by default).
        #[arg(long, value_parser = parse::positive_duration)]
        history: Option<Duration>,
        /// Rounds of both protocols.
        #[arg(long, default_value_t = 3, value_parser = parse::positive_count())]
        rounds: usize,
    },
    /// Latency an alert sees through foretell (webhook, outbox, enrichment, forwarding to a
    /// receiver on 127.0.0.1) at a steady rate: a baseline with nothing to assess, alerts on
    /// tracked series, alerts needing an on-demand Prometheus query.
    Enrichment {
        /// Folder for the scratch outboxes (use the disk the real one will live on).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Notifications sent in each phase.
        #[arg(long, default_value_t = 1000, value_parser = parse::positive_count())]
        notifications: usize,
        /// Notifications per second.
        #[arg(long, default_value_t = 20.0, value_parser = parse::positive_rate)]
        rate: f64,
        /// Series in the tracked snapshot the tracked phase searches.
        #[arg(long, default_value_t = 10_000)]
        tracked_series: usize,
        /// A real Prometheus for the on-demand phase (default: one in-process, answering at
        /// once, so only foretell's own cost is measured).
        #[arg(long, value_name = "URL", requires = "expr")]
        prometheus: Option<String>,
        /// The expression the on-demand alerts carry (with --prometheus); the alerts take the
        /// labels of up to 20 of its series in turn.
        #[arg(long, requires = "prometheus")]
        expr: Option<String>,
        /// Longest a phase may send for.
        #[arg(long, default_value = "120s", value_parser = parse::positive_duration)]
        time_limit: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// Print the dead letters, oldest first, with their last error.
    List {
        /// The running foretell.
        #[arg(long, default_value = crate::admin::DEFAULT_URL)]
        url: String,
        #[arg(long, value_enum, default_value_t = DeadLetterFormat::Table)]
        format: DeadLetterFormat,
    },
    /// Put dead letters back in the delivery queue (each is audited as
    /// alert.dead_letter_retried).
    Retry {
        /// The running foretell.
        #[arg(long, default_value = crate::admin::DEFAULT_URL)]
        url: String,
        /// A dead letter's id (from `list`); repeat for several.
        #[arg(long = "id", value_name = "ID", required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeadLetterFormat {
    Table,
    /// JSON lines, as the API sends them.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's HMAC and the hash chain; exit 0 when intact, 1 with the first
    /// problem and its class (modified, missing, inserted, reordered, truncated, wrong key,
    /// foreign log).
    Verify {
        /// The audit database (SQLite).
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Key file: one KEY_ID:HEX_SECRET per line, every key the log was signed with
        /// (default: the text of $FORETELL_AUDIT_KEYS).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The head recorded elsewhere: foretell_audit_head_seq in Prometheus, optionally with
        /// foretell_audit_head_mac_prefix (or 16+ hex digits of the record's MAC) after a colon.
        /// A log whose newest record is older was cut; one whose record at SEQ has another MAC
        /// was rolled back and written again.
        #[arg(long, value_name = "SEQ[:MAC]", value_parser = foretell_core::audit::ExpectedHead::parse)]
        expect_head: Option<foretell_core::audit::ExpectedHead>,
    },
    /// Print records, oldest first.
    Show {
        #[command(flatten)]
        records: RecordArgs,
        #[arg(long, value_enum, default_value_t = RecordFormat::Table)]
        format: RecordFormat,
    },
    /// Write records as JSON lines (with their MACs), oldest first, for other systems.
    Export {
        #[command(flatten)]
        records: RecordArgs,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Delete records older than --before behind a signed anchor record, so the rest still
    /// verifies. Verifies first and refuses a damaged log. Run it while foretell is stopped.
    Prune {
        /// The audit database (SQLite).
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Key file (default: the text of $FORETELL_AUDIT_KEYS); the last key signs the anchor.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Records before this time go (`now-90d`, Unix seconds, RFC 3339, ...).
        #[arg(long)]
        before: String,
    },
    #[cfg(feature = "tools")]
    /// Measure this disk: signed records per second with one durable commit each and through
    /// the batching writer, and records verified per second. Writes scratch logs in --dir.
    Bench {
        /// Folder for the scratch logs (use the disk the real log will live on).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Records written through the batching writer (a tenth of them one commit each).
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Continue the scratch logs already in --dir instead of starting them afresh.
        #[arg(long)]
        append: bool,
    },
    /// Count records by kind and outcome over a period.
    Report {
        #[command(flatten)]
        records: RecordArgs,
    },
}

/// Which records of which log.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The audit database (SQLite).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Only records at or after this time (`now-1d`, Unix seconds, RFC 3339, ...).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this kind, or kinds under it (`alert` matches `alert.forwarded`).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this subject.
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    Table,
    Jsonl,
}

/// The value parsers of the flags above. Some serve only the `tools` commands (`bench`), hence
/// the `dead_code` allowance without that feature.
#[cfg_attr(not(feature = "tools"), allow(dead_code))]
pub mod parse {
    use std::time::Duration;

    use crate::config::duration;

    /// A duration in Prometheus' notation (`90s`, `1h30m`, `7d`).
    pub fn duration(text: &str) -> Result<Duration, String> {
        duration::parse(text)
    }

    /// A duration above zero.
    pub fn positive_duration(text: &str) -> Result<Duration, String> {
        match duration::parse(text)? {
            zero if zero.is_zero() => Err("must be above 0s, such as 1m".into()),
            positive => Ok(positive),
        }
    }

    /// A duration of whole seconds, at least one (the grids of `sample-data`).
    pub fn whole_seconds(text: &str) -> Result<Duration, String> {
        match duration::parse(text)? {
            d if d.as_secs() >= 1 && d.subsec_nanos() == 0 => Ok(d),
            _ => Err("must be whole seconds, at least 1s".into()),
        }
    }

    /// How long a load test runs: at least 1ms, at most 10m, so a typo cannot leave it
    /// running for hours.
    pub fn bounded_load(text: &str) -> Result<Duration, String> {
        match duration::parse(text)? {
            d if !d.is_zero() && d <= Duration::from_secs(600) => Ok(d),
            _ => Err("must be between 1ms and 10m".into()),
        }
    }

    /// A count of one or more.
    pub fn positive_count() -> clap::builder::RangedU64ValueParser<usize> {
        clap::builder::RangedU64ValueParser::new().range(1..)
    }

    /// A finite rate above zero.
    pub fn positive_rate(text: &str) -> Result<f64, String> {
        match text.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
            _ => Err("must be a number above 0, such as 20".into()),
        }
    }

    /// A seasonal period, or none.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Season(pub Option<Duration>);

    /// `none` or a duration above zero.
    pub fn season(text: &str) -> Result<Season, String> {
        match text {
            "none" => Ok(Season(None)),
            period => positive_duration(period)
                .map(|d| Season(Some(d)))
                .map_err(|e| format!("`none` or a period: {e}")),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn each_parser_takes_its_range_and_refuses_the_rest() {
            assert_eq!(duration("0s"), Ok(Duration::ZERO));
            assert_eq!(positive_duration("90s"), Ok(Duration::from_secs(90)));
            assert!(positive_duration("0s").is_err());
            assert!(positive_duration("soon").is_err());
            assert_eq!(whole_seconds("10s"), Ok(Duration::from_secs(10)));
            assert!(whole_seconds("500ms").is_err());
            assert!(whole_seconds("1500ms").is_err());
            assert_eq!(bounded_load("10m"), Ok(Duration::from_secs(600)));
            assert!(bounded_load("11m").is_err());
            assert!(bounded_load("0s").is_err());
            assert_eq!(positive_rate("2.5"), Ok(2.5));
            for bad in ["0", "-1", "NaN", "inf", "fast"] {
                assert!(positive_rate(bad).is_err(), "{bad}");
            }
            assert_eq!(season("none"), Ok(Season(None)));
            assert_eq!(season("1d"), Ok(Season(Some(Duration::from_secs(86_400)))));
            assert!(season("0s").is_err());
        }

        #[test]
        fn prometheus_flag_names_and_the_old_ones_both_parse() {
            use clap::Parser as _;
            for flag in ["--config.file", "--config", "-c"] {
                let cli = crate::cli::Cli::try_parse_from([
                    "foretell",
                    "--log.format",
                    "text",
                    "run",
                    flag,
                    "f.yml",
                    "--web.listen-address",
                    ":9897",
                ])
                .expect("valid");
                assert_eq!(
                    cli.log_format,
                    crate::cli::LogFormat::Logfmt,
                    "text is logfmt"
                );
                match cli.command {
                    crate::cli::Command::Run {
                        config,
                        web_listen_address,
                        ..
                    } => {
                        assert_eq!(config, std::path::PathBuf::from("f.yml"));
                        assert_eq!(web_listen_address.map(|a| a.port()), Some(9897));
                    }
                    other => panic!("{other:?}"),
                }
            }
            let refused = crate::cli::Cli::try_parse_from([
                "foretell",
                "run",
                "-c",
                "f.yml",
                "--web.listen-address",
                "localhost",
            ])
            .expect_err("refused");
            assert!(
                refused.to_string().contains("--web.listen-address"),
                "{refused}"
            );
        }

        #[test]
        fn a_bad_flag_is_refused_by_clap_with_its_name_and_exit_code_2() {
            use clap::Parser as _;
            let refused = |args: &[&str]| {
                let error = crate::cli::Cli::try_parse_from(args).expect_err("refused");
                (error.exit_code(), error.to_string())
            };
            let (code, message) = refused(&["foretell", "bench", "scale", "--step", "0s"]);
            assert_eq!(code, 2);
            assert!(message.contains("--step"), "{message}");
            assert!(message.contains("above 0s"), "{message}");
            let (code, message) = refused(&["foretell", "bench", "metrics", "--clients", "0"]);
            assert_eq!(code, 2);
            assert!(message.contains("--clients"), "{message}");
            let parsed = crate::cli::Cli::try_parse_from([
                "foretell", "bench", "scale", "--season", "none", "--step", "30s",
            ])
            .expect("valid");
            match parsed.command {
                crate::cli::Command::Bench {
                    command: crate::cli::BenchCommand::Scale { season, step, .. },
                } => {
                    assert_eq!(season, Season(None));
                    assert_eq!(step, Duration::from_secs(30));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
