//! Command-line syntax (clap types only); `main` turns it into what runs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "foretell",
    version,
    about = "Forecasts, baselines and anomaly scores for Prometheus series, served as metrics"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Minimum log level (error, warn, info, debug, trace) or a tracing filter directive.
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar: query Prometheus, learn baselines, serve /metrics.
    Run {
        /// Configuration file (YAML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// This replica's shard, INDEX/COUNT (e.g. 0/3): overrides the file's `shard`, on every
        /// reload too. With a StatefulSet: `--shard "${HOSTNAME##*-}/3"`.
        #[arg(long, value_name = "INDEX/COUNT", value_parser = foretell_core::shard::Shard::parse)]
        shard: Option<foretell_core::shard::Shard>,
        /// TLS and basic auth of the listener, in the Prometheus exporter toolkit's web
        /// configuration format (`tls_server_config`, `basic_auth_users`). Restart to change.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
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
        #[arg(long, default_value = "1h")]
        refit_interval: String,
        /// Accept repeated or backward timestamps: such a row repeats the previous row's output.
        #[arg(long)]
        allow_disorder: bool,
        /// Also write the evidence an alert at each row would get: the open excursion
        /// (`excursion_points,outside_points,peak_sigmas,peak_probability,latest_sigmas`), how far
        /// the values went beyond their recent range lately (`range_excess`), the
        /// `confidence` computed from it (input of `bench/confidence_eval.py`) and the band the
        /// row was judged against (`expected,lower,upper`).
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
        /// Configuration file (YAML): the Prometheus to read and the query to replay.
        #[arg(long, short = 'c', value_name = "FILE")]
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
    /// openmetrics`) and recording rules that continue the same series live.
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
        #[arg(long, default_value = "2d")]
        span: String,
        /// Spacing of the history's samples.
        #[arg(long, default_value = "10s")]
        step: String,
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
        #[arg(long, default_value = "1s")]
        rule_interval: String,
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
    #[arg(long)]
    pub history: Option<String>,
    /// Points needed before the model is ready.
    #[arg(long, default_value_t = 30)]
    pub min_history_points: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Concurrent scrapers on the real listener's `/metrics` serving many series, for a
    /// bounded time: scrapes per second, latency percentiles, memory.
    Metrics {
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value = "20s")]
        duration: String,
        /// Ask for gzip, as Prometheus does.
        #[arg(long)]
        gzip: bool,
    },
    /// foretell's own cost of tracking many series (no Prometheus): load and fit synthetic
    /// series with their history, then steady cycles of one new point each; reports time, CPU,
    /// RSS and bytes per series.
    Scale {
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Queries the series are split among (each evaluated on its own, as in the sidecar).
        #[arg(long, default_value_t = 10)]
        queries: usize,
        #[arg(long, default_value = "2d")]
        history: String,
        #[arg(long, default_value = "1m")]
        step: String,
        /// Seasonal period of the models, or `none`.
        #[arg(long, default_value = "1d")]
        season: String,
        #[arg(long, default_value = "1h")]
        refit_interval: String,
        /// Each series' record of what the live model did, for the charts (`0s`: none), as
        /// `queries[].live_record`.
        #[arg(long, default_value = "6h")]
        live_record: String,
        /// Steady cycles after the load (one step each).
        #[arg(long, default_value_t = 5)]
        cycles: usize,
        /// Threads evaluating queries side by side (the sidecar's blocking pool on 2 cores).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Latency an alert sees through foretell (webhook, outbox, enrichment, forwarding to a
    /// receiver on 127.0.0.1) at a steady rate: a baseline with nothing to assess, alerts on
    /// tracked series, alerts needing an on-demand Prometheus query.
    Enrichment {
        /// Folder for the scratch outboxes (use the disk the real one will live on).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Notifications sent in each phase.
        #[arg(long, default_value_t = 1000)]
        notifications: usize,
        /// Notifications per second.
        #[arg(long, default_value_t = 20.0)]
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
        #[arg(long, default_value = "120s")]
        time_limit: String,
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
