//! `dead-letters list|retry`: the client of a running foretell's dead-letter API.

use super::{runtime, Exit, Threads};
use crate::admin;
use crate::cli::{DeadLetterCommand, DeadLetterFormat};

/// `foretell dead-letters ...`: exit 0 when done, 1 when foretell is unreachable or refuses,
/// 2 for bad flags.
pub(super) fn dead_letters(command: DeadLetterCommand) -> Exit {
    let runtime = match runtime(Threads::One) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let url = match &command {
        DeadLetterCommand::List { url, .. } | DeadLetterCommand::Retry { url, .. } => url,
    };
    let client = match admin::AdminClient::new(url) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("foretell dead-letters: {error}");
            return Exit::Invalid;
        }
    };
    let outcome = runtime.block_on(async {
        match &command {
            DeadLetterCommand::List { format, .. } => {
                let letters = client.list().await?;
                Ok(match format {
                    DeadLetterFormat::Table => admin::render_table(&letters),
                    DeadLetterFormat::Json => letters
                        .iter()
                        .map(|l| serde_json::to_string(l).unwrap_or_default() + "\n")
                        .collect(),
                })
            }
            DeadLetterCommand::Retry { ids, all, .. } => {
                client.retry((!*all).then_some(ids.as_slice())).await
            }
        }
    });
    match outcome {
        Ok(text) => {
            print!("{text}");
            Exit::Success
        }
        Err(error) => {
            eprintln!("foretell dead-letters: {error}");
            Exit::Failed
        }
    }
}
