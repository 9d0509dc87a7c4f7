//! Configuration: YAML text in, a validated [`Config`] out.
//!
//! Loading runs in three passes: strict deserialisation (syntax errors and unknown keys, with
//! line and column), one validation pass that collects every semantic problem with its path
//! (`queries[1].step: must be > 0, got 0s`), and secret resolution through an [`Environment`]
//! so files and variables are read in one place and tests can pass maps.

mod alerts;
mod audit;
pub mod duration;
mod http;
mod locate;
pub(crate) mod nesting;
mod prometheus;
mod queries;
mod raw;
mod remote_write;
mod secret;
mod server;
mod state;
mod validator;

use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(test)]
pub use alerts::RouteConfig;
pub use alerts::{AlertsConfig, BreakerConfig, GraphExpressions, OnDemandConfig, ReceiverConfig};
pub use audit::AuditConfig;
pub use http::{Auth, RetryPolicy};
pub use prometheus::{Compression, PrometheusConfig, RemoteRead, PROMETHEUS_MAX_POINTS};
pub(crate) use queries::auto_season_candidates;
pub use queries::QueryConfig;
use raw::RawConfig;
pub use remote_write::RemoteWriteConfig;
pub use secret::{read_bounded, Environment, Secret, SecretUrl, SystemEnvironment, MAX_FILE_BYTES};
pub use server::{
    external_url, listen_address, ServerConfig, DEFAULT_LISTEN_ADDRESS, DEFAULT_MAX_EXPORTED_SERIES,
};
pub use state::StateConfig;
use validator::Validator;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub server: ServerConfig,
    /// `None`: no audit log is kept.
    pub audit: Option<AuditConfig>,
    /// `None`: the Alertmanager webhook receiver is off.
    pub alerts: Option<AlertsConfig>,
    /// This replica's share of every query's series (default: all of them).
    pub shard: foretell_core::shard::Shard,
    /// `None`: predictions are only served on `/metrics`.
    pub remote_write: Option<RemoteWriteConfig>,
    /// `None`: models are not kept across restarts (each start loads history afresh).
    pub state: Option<StateConfig>,
    pub queries: Vec<QueryConfig>,
    /// Settings that work but are risky (a world-readable key file, a webhook without a
    /// token), as `path: what and the fix`; `check-config` prints them and `run` logs them.
    pub warnings: Vec<String>,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path to the field, e.g. `queries[1].step`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// YAML syntax errors and unknown or mistyped keys; serde_norway's message carries the line
    /// and column.
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n{}", .errors.len(), render_list(.errors))]
    Invalid {
        file: PathBuf,
        errors: Vec<FieldError>,
    },
}

fn render_list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// One line per problem, each prefixed with the file, for `check-config` output.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { file, errors } => errors
                .iter()
                .map(|e| format!("{}: {e}", file.display()))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    let bytes = env.read_file(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        file: path.to_owned(),
        message: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse(&text, path, env)
}

/// Parses and validates `text`; `origin` names the file in messages and anchors relative
/// paths (token files, CA files) like Prometheus does.
pub fn parse(text: &str, origin: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    if let Err(message) = nesting::check(text) {
        return Err(ConfigError::Syntax {
            file: origin.to_owned(),
            message,
        });
    }
    // Unknown keys do not stop the parse: every one is collected and reported with the other
    // problems, with its line and column.
    let mut unknown_keys = Vec::new();
    let raw: RawConfig =
        serde_ignored::deserialize(serde_norway::Deserializer::from_str(text), |path| {
            unknown_keys.push(locate::ignored_path(&path))
        })
        .map_err(|e| ConfigError::Syntax {
            file: origin.to_owned(),
            message: e.to_string(),
        })?;
    let locations = locate::Locations::of(text);
    let base_dir = origin.parent().unwrap_or(Path::new("."));
    let mut v = Validator {
        errors: Vec::new(),
        warnings: Vec::new(),
        env,
        base_dir,
        locations: &locations,
    };
    for path in unknown_keys {
        let at = v.at(locations.key(&path));
        v.fail(
            path,
            format!("unknown key{at}; README.md's configuration reference lists the keys"),
        );
    }
    let prometheus = v.prometheus(&raw.prometheus);
    let server = v.server(&raw.server);
    let audit = raw.audit.as_ref().map(|a| v.audit(a));
    let alerts = raw
        .alerts
        .as_ref()
        .map(|a| v.alerts(a, raw.audit.is_some()));
    // The timeout is checked against each query even when another prometheus field is wrong.
    let timeout = raw
        .prometheus
        .timeout
        .as_deref()
        .map_or(Ok(prometheus::DEFAULT_TIMEOUT), duration::parse)
        .ok()
        .filter(|t| !t.is_zero());
    let queries = v.queries(&raw.queries, timeout);
    let remote_write = raw.remote_write.as_ref().map(|r| v.remote_write(r));
    let state = raw
        .state
        .as_ref()
        .map(|s| v.state(s, raw.audit.as_ref().map(|a| a.path.as_str())));
    let shard = match &raw.shard {
        None => Some(foretell_core::shard::Shard::default()),
        Some(shard) => match foretell_core::shard::Shard::new(shard.index, shard.count) {
            Ok(shard) => Some(shard),
            Err(message) => {
                v.fail("shard", message);
                None
            }
        },
    };
    match (prometheus, server, shard, v.errors.is_empty()) {
        (Some(prometheus), Some(server), Some(shard), true) => Ok(Config {
            prometheus,
            server,
            audit: audit.flatten(),
            alerts: alerts.flatten(),
            shard,
            remote_write: remote_write.flatten(),
            state: state.flatten(),
            queries,
            warnings: v.warnings,
        }),
        _ => Err(ConfigError::Invalid {
            file: origin.to_owned(),
            errors: v.errors,
        }),
    }
}

#[cfg(test)]
mod tests;
