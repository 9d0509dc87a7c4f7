//! `run`, `check-config` and `demo`: the commands that serve.

use std::path::Path;

use super::{load_config, runtime, Exit, Threads};
use crate::{app, config, server};

pub(super) fn check_config(file: &Path) -> Exit {
    match config::load_file(file, &config::SystemEnvironment) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: valid, {} quer{}",
                file.display(),
                config.queries.len(),
                if config.queries.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            Exit::Success
        }
        Err(error) => {
            for line in error.lines() {
                eprintln!("{line}");
            }
            Exit::Invalid
        }
    }
}

pub(super) fn run(
    config_path: &Path,
    overrides: app::Overrides,
    web_config_file: Option<&Path>,
) -> Exit {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let web = match web_config_file.map(server::web_config::load).transpose() {
        Ok(web) => web.unwrap_or_default(),
        Err(error) => {
            eprintln!("foretell: --web.config.file: {error}");
            return Exit::Invalid;
        }
    };
    let runtime = match runtime(Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(app::run(config_path, config, overrides, web)) {
        Ok(()) => Exit::Success,
        Err(error) => {
            tracing::error!(%error, "foretell failed");
            eprintln!("foretell: {error}");
            Exit::Failed
        }
    }
}

#[cfg(feature = "tools")]
/// `foretell demo`: exit 0 when stopped by a signal, 1 when it cannot start.
pub(super) fn demo(settings: crate::tools::demo::DemoSettings) -> Exit {
    let runtime = match runtime(Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(crate::tools::demo::run(settings)) {
        Ok(()) => Exit::Success,
        Err(error) => {
            eprintln!("foretell demo: {error}");
            Exit::Failed
        }
    }
}
