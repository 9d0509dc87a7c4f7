//! `audit verify|show|export|prune|bench|report`.

use super::{finish, write_output, Exit};
use crate::cli::{self, AuditCommand, RecordFormat};
use crate::{audit, clock, offline};

/// Prints an audit command's error; exit 2 for bad flags or keys, 1 for a log that cannot be
/// read or does not verify.
fn audit_failure(error: audit::commands::AuditCommandError) -> Exit {
    eprintln!("foretell audit: {error}");
    if error.is_bad_input() {
        Exit::Invalid
    } else {
        Exit::Failed
    }
}

/// The records `args` select, or the exit code after printing why there are none to give.
fn audit_records(args: &cli::RecordArgs) -> Result<Vec<foretell_core::audit::Record>, Exit> {
    use audit::commands::{self, RecordFilter};
    let now = clock::system().now_ms();
    let instant = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| offline::parse_instant(t, now).map_err(|m| format!("{flag}: {m}")))
            .transpose()
    };
    let (since_ms, until_ms) = match (
        instant("--since", &args.since),
        instant("--until", &args.until),
    ) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("foretell audit: {error}");
            return Err(Exit::Invalid);
        }
    };
    let filter = RecordFilter {
        since_ms,
        until_ms,
        kind: args.kind.clone(),
        subject: args.subject.clone(),
    };
    commands::read_records(&args.db, &filter).map_err(audit_failure)
}

/// `foretell audit ...`: exit 0 when fine, 1 when verification finds a problem or the log
/// cannot be read, 2 for bad flags or keys.
pub(super) fn audit(command: AuditCommand) -> Exit {
    use audit::commands;
    let fail = audit_failure;
    match command {
        AuditCommand::Verify {
            db,
            key_file,
            expect_head,
        } => {
            let keys = match commands::load_keys(
                key_file.as_deref(),
                std::env::var(commands::KEYS_ENV).ok(),
            ) {
                Ok(keys) => keys,
                Err(error) => return fail(error),
            };
            match commands::verify_file(&db, &keys, expect_head) {
                Ok((log_id, outcome)) => {
                    print!("{}", commands::render_verification(&db, &log_id, &outcome));
                    if outcome.problem.is_some() {
                        Exit::Failed
                    } else {
                        Exit::Success
                    }
                }
                Err(error) => fail(error),
            }
        }
        AuditCommand::Show { records, format } => {
            let records = match audit_records(&records) {
                Ok(records) => records,
                Err(code) => return code,
            };
            let text = match format {
                RecordFormat::Table => commands::render_table(&records),
                RecordFormat::Jsonl => commands::render_jsonl(&records),
            };
            finish("audit show", write_output(None, &text))
        }
        AuditCommand::Export { records, output } => {
            let records = match audit_records(&records) {
                Ok(records) => records,
                Err(code) => return code,
            };
            finish(
                "audit export",
                write_output(output.as_deref(), &commands::render_jsonl(&records)),
            )
        }
        AuditCommand::Prune {
            db,
            key_file,
            before,
        } => {
            let now = clock::system().now_ms();
            let before_ms = match offline::parse_instant(&before, now) {
                Ok(ms) => ms,
                Err(error) => {
                    eprintln!("foretell audit prune: --before: {error}");
                    return Exit::Invalid;
                }
            };
            let keys = match commands::load_keys(
                key_file.as_deref(),
                std::env::var(commands::KEYS_ENV).ok(),
            ) {
                Ok(keys) => keys,
                Err(error) => return fail(error),
            };
            match commands::prune_file(&db, &keys, before_ms, now) {
                Ok(Some(pruned)) => {
                    println!(
                        "{}: removed {} records through seq {}; anchor record seq {}",
                        db.display(),
                        pruned.removed,
                        pruned.through_seq,
                        pruned.anchor_seq
                    );
                    Exit::Success
                }
                Ok(None) => {
                    println!(
                        "{}: no record before {before}; nothing pruned",
                        db.display()
                    );
                    Exit::Success
                }
                Err(error) => fail(error),
            }
        }
        #[cfg(feature = "tools")]
        AuditCommand::Bench {
            dir,
            records,
            append,
        } => match crate::tools::bench::audit::bench(&dir, records, append) {
            Ok(report) => {
                println!(
                    "{} records: {:.0} records/s with one durable commit each ({} records), {:.0} records/s batched by the writer thread, {:.0} records/s verified",
                    report.records,
                    report.single_per_second,
                    (report.records / 10).max(1),
                    report.batched_per_second,
                    report.verify_per_second
                );
                Exit::Success
            }
            Err(error) => fail(error),
        },
        AuditCommand::Report { records } => {
            let selected = match audit_records(&records) {
                Ok(selected) => selected,
                Err(code) => return code,
            };
            finish(
                "audit report",
                write_output(None, &commands::render_report(&selected)),
            )
        }
    }
}
