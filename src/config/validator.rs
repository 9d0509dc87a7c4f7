//! The validation pass: one [`Validator`] walks the raw configuration, collects every problem
//! with its path and position, and reads the files the configuration names. Each section's
//! own checks live beside its type (`prometheus.rs`, `queries.rs`, ...); the checks they share
//! (durations, files, secrets) are here.

use std::path::Path;
use std::time::Duration;

use super::secret::{Environment, Secret};
use super::{duration, locate, FieldError};

pub(super) struct Validator<'a> {
    pub(super) errors: Vec<FieldError>,
    /// Settings that work but are risky, as `path: what and the fix`.
    pub(super) warnings: Vec<String>,
    pub(super) env: &'a dyn Environment,
    pub(super) base_dir: &'a Path,
    /// Where each key and value is written, for the problems that name a line.
    pub(super) locations: &'a locate::Locations,
}

impl Validator<'_> {
    /// ` at line L column C`, or nothing when the position is unknown.
    pub(super) fn at(&self, position: Option<locate::Position>) -> String {
        position.map(|p| format!(" at {p}")).unwrap_or_default()
    }

    pub(super) fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn duration(
        &mut self,
        path: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        match text {
            None => Some(default),
            Some(text) => match duration::parse(text) {
                Ok(d) => Some(d),
                Err(message) => {
                    self.fail(path, message);
                    None
                }
            },
        }
    }

    pub(super) fn positive_duration(
        &mut self,
        path: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        let d = self.duration(path, text, default)?;
        if d.is_zero() {
            self.fail(path, "must be > 0, got 0s");
            return None;
        }
        Some(d)
    }

    pub(super) fn read_file(&mut self, path: &str, file: &str) -> Option<Vec<u8>> {
        let resolved = self.base_dir.join(file);
        match self.env.read_file(&resolved) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.fail(path, format!("cannot read `{}`: {e}", resolved.display()));
                None
            }
        }
    }

    /// A file holding a secret: read like any other, with a warning when every user of the
    /// machine may read it.
    pub(super) fn read_secret_file(&mut self, path: &str, file: &str) -> Option<Vec<u8>> {
        let bytes = self.read_file(path, file)?;
        let resolved = self.base_dir.join(file);
        if self.env.world_readable(&resolved) {
            self.warnings.push(format!(
                "{path}: `{}` is readable by every user of this machine; `chmod 600` it (or `chmod 640` with foretell's group)",
                resolved.display()
            ));
        }
        Some(bytes)
    }

    /// Two durations of which the first may not exceed the second (a backoff and its cap),
    /// each given as `(path, text, default)`.
    pub(super) fn ordered_durations(
        &mut self,
        low: (&str, Option<&str>, Duration),
        high: (&str, Option<&str>, Duration),
    ) -> Option<(Duration, Duration)> {
        let first = self.positive_duration(low.0, low.1, low.2);
        let second = self.positive_duration(high.0, high.1, high.2);
        let (first, second) = (first?, second?);
        if first > second {
            let name = high.0.rsplit('.').next().unwrap_or(high.0);
            self.fail(
                low.0,
                format!("must not exceed {name} ({})", duration::format(second)),
            );
            return None;
        }
        Some((first, second))
    }

    /// A secret from exactly one of a file or an environment variable.
    pub(super) fn secret(
        &mut self,
        path: &str,
        file: Option<&str>,
        env_var: Option<&str>,
    ) -> Option<Secret> {
        match (file, env_var) {
            (Some(_), Some(_)) => {
                self.fail(path, "set either the `_file` or the `_env` form, not both");
                None
            }
            (Some(file), None) => {
                let bytes = self.read_secret_file(&format!("{path}_file"), file)?;
                match String::from_utf8(bytes) {
                    Ok(text) if !text.trim().is_empty() => {
                        Some(Secret::new(text.trim().to_owned()))
                    }
                    Ok(_) => {
                        self.fail(format!("{path}_file"), format!("`{file}` is empty"));
                        None
                    }
                    Err(_) => {
                        self.fail(
                            format!("{path}_file"),
                            format!("`{file}` is not UTF-8 text"),
                        );
                        None
                    }
                }
            }
            (None, Some(var)) => match self.env.var(var) {
                Some(value) if !value.trim().is_empty() => {
                    Some(Secret::new(value.trim().to_owned()))
                }
                _ => {
                    self.fail(
                        format!("{path}_env"),
                        format!("environment variable `{var}` is not set or empty"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }
}
