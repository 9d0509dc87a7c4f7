//! Escaping for the markup foretell renders (the status pages' HTML and the charts' SVG) and
//! for the tables it prints to a terminal: label values, expressions and alert names come
//! from other people and must stay text.

/// Escapes text for element content and double- or single-quoted attribute values, in HTML and
/// in XML. Control characters other than newline and tab, which XML 1.0 does not allow at all,
/// become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe for one cell of a table printed to a terminal: every control character
/// (escape sequences that move the cursor, retitle the window or rewrite earlier lines,
/// newlines, C1 controls) is shown as its `\u{..}` escape instead of being obeyed.
pub fn terminal_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, item 8: escape sequences in alert fields reached the terminal through
    /// `audit show` and `dead-letters list`.
    #[test]
    fn terminal_cells_show_control_characters_instead_of_obeying_them() {
        assert_eq!(
            terminal_cell("ok\u{1b}]0;pwned\u{7}\u{1b}[2J\nnext\u{9b}31m"),
            "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{a}next\\u{9b}31m"
        );
        assert_eq!(terminal_cell("plain é text"), "plain é text");
    }

    #[test]
    fn markup_characters_and_controls_cannot_break_out() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{0}b\u{1b}c\nd\te"), "a\u{FFFD}b\u{FFFD}c\nd\te");
        assert_eq!(escape("é😀"), "é😀");
    }
}
