//! Text that comes from outside (producers' field names, plugins' messages), made
//! safe to put in a log line or an error message.

/// `text` escaped (a newline or a control character cannot start a forged log line or
/// colour a terminal) and cut to `max` characters, with `…` when cut.
pub fn shown(text: &str, max: usize) -> String {
    let mut escaped = text.escape_debug();
    let mut out: String = escaped.by_ref().take(max).collect();
    if escaped.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(shown("a\nb\u{1b}[31m", 80), "a\\nb\\u{1b}[31m");
        assert_eq!(shown(&"x".repeat(100), 5), "xxxxx…");
        assert_eq!(shown("ünï", 3), "ünï");
    }
}
