//! A bound on how deeply configuration text nests, checked before any YAML parser sees it.

/// Levels of nesting a configuration may have; foretell's own need fewer than ten.
const MAX_NESTING: usize = 64;

/// Refuses text nested deeper than [`MAX_NESTING`] before the YAML parser sees it: the parser's
/// time grows with the square of the depth (100,000 levels of `[` took 23 s). Counts flow
/// brackets outside quotes and comments, and block indentation in steps of one level.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let too_deep = |line: usize| {
        Err(format!(
            "line {line}: nested deeper than {MAX_NESTING} levels; a foretell configuration needs fewer than ten"
        ))
    };
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        if flow == 0 && quote.is_none() && indent / 2 > MAX_NESTING {
            return too_deep(number + 1);
        }
        let mut previous = ' ';
        // A quote opens a quoted scalar only where a scalar starts (an apostrophe inside
        // `it's` does not), so that no stray quote can hide brackets after it.
        let mut scalar_may_start = true;
        for c in line.chars() {
            match (quote, c) {
                (Some('"'), '"') if previous != '\\' => quote = None,
                (Some('\''), '\'') => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if scalar_may_start => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return too_deep(number + 1);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            if quote.is_none() && !c.is_whitespace() {
                scalar_may_start = matches!(c, ':' | ',' | '[' | '{' | '-' | '?');
            }
            previous = c;
        }
    }
    Ok(())
}
