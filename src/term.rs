//! Text that cordon prints for a person: control characters taken from the
//! payload or from paths are escaped, so that no terminal escape sequence
//! (a cleared screen, an OSC 52 clipboard write, a forged "0 denials" line)
//! reaches the user's terminal through cordon's own output.
//!
//! Owns the escaping rule and a JSON formatter that applies it to the
//! characters serde_json leaves raw. Does not decide what is printed, and does
//! not touch what the payload itself writes to the terminal (that passes
//! through untouched, as the README says).

use std::borrow::Cow;
use std::fmt::Write as _;

/// What to do with a line feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newlines {
    /// Escape it too: the text is one field or one line.
    Escape,
    /// Keep it: the text is cordon's own multi-line output, whose fields were
    /// escaped when it was built; this pass is the safety net at the boundary.
    Keep,
}

/// Whether `c` must not reach a terminal raw: C0 controls (ESC, BEL, CR,
/// backspace, line feed...), DEL, C1 controls (U+0080–U+009F, CSI and OSC in
/// 8-bit form), and the bidi embeddings, overrides and isolates (which reorder
/// what is shown on the line).
fn unsafe_char(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f' | '\x7f'..='\u{9f}'
        | '\u{061c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as `\xNN` (below U+0100) or
/// `\u{NNNN}`; a tab stays a tab. Borrowed when nothing needed escaping, which
/// is the common case. This is the one escaping function: everything cordon
/// prints from the payload or from paths goes through it.
pub fn escape(s: &str, newlines: Newlines) -> Cow<'_, str> {
    let keep = |c: char| c == '\t' || (c == '\n' && newlines == Newlines::Keep);
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) && !keep(c) {
            let n = c as u32;
            if n < 0x100 {
                let _ = write!(out, "\\x{n:02x}");
            } else {
                let _ = write!(out, "\\u{{{n:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One field (a path, a target, a rule) inside a line: newlines escaped too.
pub fn field(s: &str) -> Cow<'_, str> {
    escape(s, Newlines::Escape)
}

/// A path as one field.
pub fn path(p: &std::path::Path) -> String {
    field(&p.to_string_lossy()).into_owned()
}

/// Append `line` to `out` as one line: escaped, then a line feed.
pub fn push_line(out: &mut String, line: &str) {
    out.push_str(&escape(line, Newlines::Escape));
    out.push('\n');
}

/// Print cordon's own multi-line text on stdout, escaped at the boundary.
pub fn print(s: &str) {
    print!("{}", escape(s, Newlines::Keep));
}

/// Print cordon's own multi-line text on stderr, escaped at the boundary.
pub fn eprint(s: &str) {
    write_stderr(&escape(s, Newlines::Keep));
}

/// Write to stderr, ignoring a failure: after a hang-up the terminal answers
/// EIO, and `eprint!` would panic (an abort here) where the run's status, its
/// report or the guard's restore may still be to come.
fn write_stderr(s: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(s.as_bytes());
}

/// One line of cordon's on stderr (an error, a warning): nothing in it may
/// start another line.
pub fn eprintln_line(s: &str) {
    let mut line = escape(s, Newlines::Escape).into_owned();
    line.push('\n');
    write_stderr(&line);
}

/// JSON as serde_json writes it, except that the characters it leaves raw in
/// strings and that a terminal acts on (DEL, C1 controls, bidi overrides) are
/// written as `\uXXXX` escapes too: the same JSON value, safe to `cat`.
pub fn json_pretty<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        Safe(serde_json::ser::PrettyFormatter::new()),
    );
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// The compact form of [`json_pretty`] (one line, for the audit log).
pub fn json_line<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, Safe(serde_json::ser::CompactFormatter));
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// A formatter that escapes [`unsafe_char`]s serde_json would write raw (it
/// already escapes C0 controls itself).
struct Safe<F>(F);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $name<W: ?Sized + std::io::Write>(&mut self, w: &mut W $(, $arg: $t)*) -> std::io::Result<()> {
            self.0.$name(w $(, $arg)*)
        }
    )*};
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for Safe<F> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if unsafe_char(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escape("/home/a b/ünïcode\tx", Newlines::Escape),
            Cow::Borrowed(_)
        ));
        assert!(matches!(escape("a\nb\n", Newlines::Keep), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(field("/tmp/\x1b[2Jx"), "/tmp/\\x1b[2Jx");
        assert_eq!(
            field("\x1b]52;c;aGk=\x07"),
            "\\x1b]52;c;aGk=\\x07",
            "OSC 52 clipboard write"
        );
        assert_eq!(field("a\r\x08\x7fb"), "a\\x0d\\x08\\x7fb");
        assert_eq!(field("\u{9b}31m\u{85}"), "\\x9b31m\\x85", "C1 controls");
        assert_eq!(
            field("a\u{202e}b\u{2066}c\u{200f}"),
            "a\\u{202e}b\\u{2066}c\\u{200f}"
        );
    }

    #[test]
    fn a_forged_line_stays_on_its_line() {
        let s = "/tmp/x\ncordon: 0 denials";
        assert_eq!(field(s), "/tmp/x\\x0acordon: 0 denials");
        assert_eq!(escape(s, Newlines::Keep), s);
        assert_eq!(
            escape("ok\n\x1b[31mred\n", Newlines::Keep),
            "ok\n\\x1b[31mred\n"
        );
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = field("\x1b\n\u{9b}").into_owned();
        assert_eq!(field(&once), once);
        assert_eq!(escape(&once, Newlines::Keep), once);
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw() {
        let v = serde_json::json!({"p": "a\x1b\x7f\u{9b}\u{202e}é\n"});
        let line = json_line(&v).unwrap();
        assert_eq!(line, r#"{"p":"a\u001b\u007f\u009b\u202eé\n"}"#);
        assert!(line.chars().all(|c| !unsafe_char(c)));
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v);
        let pretty = json_pretty(&v).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
            v
        );
        assert!(pretty.contains("\n  \"p\""));
    }
}
