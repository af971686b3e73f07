//! Writing JSON records straight into their payload: keys known in advance are
//! written as prepared bytes, strings are escaped in place, numbers are formatted
//! without going through a `Serializer`. Runs once or more per event.

use crate::event::Value;

/// An object being written into `out`.
#[derive(Debug)]
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Starts the entry named `name` (escaped here); write its value next.
    pub fn key(&mut self, name: &str) -> &mut Vec<u8> {
        self.comma();
        string(self.out, name);
        self.out.push(b':');
        self.out
    }

    /// Starts an entry whose name is a [`Key`]: its bytes were prepared once.
    pub fn prepared(&mut self, key: &Key) -> &mut Vec<u8> {
        self.comma();
        self.out.extend_from_slice(&key.0);
        self.out
    }

    /// Appends entries already written, as they stand between the braces of another
    /// object (nothing if `entries` is empty).
    pub fn entries(&mut self, entries: &[u8]) {
        if !entries.is_empty() {
            self.comma();
            self.out.extend_from_slice(entries);
        }
    }

    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// An object key as written: `"name":`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(name: &str) -> Self {
        let mut bytes = Vec::with_capacity(name.len() + 3);
        string(&mut bytes, name);
        bytes.push(b':');
        Self(bytes)
    }
}

/// `s` as a JSON string. Text without quotes, backslashes or control characters
/// (most values) is copied in one piece. From the first such byte on (JSON text inside
/// a string, such as a DLQ record's `raw`), the text goes through a buffer on the stack
/// eight bytes at a time, so that the run between two quotes costs no copy call.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let Some(first) = first_special(bytes) else {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    };
    out.extend_from_slice(&bytes[..first]);
    const ROOM: usize = 256;
    let mut buf = [0u8; ROOM];
    let mut n = 0;
    let mut at = first;
    while let Some(&b) = bytes.get(at) {
        // A turn writes at most 7 clean bytes and an escape of 6, or 8 clean bytes.
        if n > ROOM - 13 {
            out.extend_from_slice(&buf[..n]);
            n = 0;
        }
        if let Some(word) = bytes[at..].first_chunk::<8>() {
            // The whole word is copied; only its clean bytes are kept.
            buf[n..n + 8].copy_from_slice(word);
            let flagged = flag_specials(u64::from_le_bytes(*word));
            let clean = (flagged.trailing_zeros() / 8) as usize;
            n += clean;
            at += clean;
            if clean == 8 {
                continue;
            }
        } else if ESCAPES[usize::from(b)] == 0 {
            buf[n] = b;
            n += 1;
            at += 1;
            continue;
        }
        // `bytes[at]` must be escaped.
        let b = bytes[at];
        match ESCAPES[usize::from(b)] {
            b'u' => {
                buf[n..n + 6].copy_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
                n += 6;
            }
            escaped => {
                buf[n..n + 2].copy_from_slice(&[b'\\', escaped]);
                n += 2;
            }
        }
        at += 1;
    }
    out.extend_from_slice(&buf[..n]);
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Per byte: 0 if JSON takes it as it is, else the letter after the backslash (`u`:
/// written as `\u00XX`).
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// The index of the first byte that JSON must escape (a quote, a backslash, a control
/// character), eight bytes at a time. A reader of JSON stops at the same bytes.
#[inline]
pub(crate) fn first_special(bytes: &[u8]) -> Option<usize> {
    let (words, tail) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let flagged = flag_specials(u64::from_le_bytes(*word));
        if flagged != 0 {
            return Some(n * 8 + (flagged.trailing_zeros() / 8) as usize);
        }
    }
    let at = tail.iter().position(|&b| ESCAPES[usize::from(b)] != 0)?;
    Some(bytes.len() - tail.len() + at)
}

/// The high bit of each byte of `word` (read little-endian) that JSON must escape, by
/// the usual "has a zero byte" bit trick: exact for the lowest flagged byte, the only
/// one used. Zero if none.
#[inline(always)]
fn flag_specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
}

pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float that reads back as a float (`1.0`, not `1`); `null` for what JSON cannot hold.
pub fn float(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A typed value, or `null` for an absent one.
pub fn value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None => out.extend_from_slice(b"null"),
        Some(Value::Text(s)) => string(out, s),
        Some(Value::Integer(n)) => integer(out, *n),
        Some(Value::Float(x)) => float(out, *x),
        Some(Value::Boolean(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string and number reads back as what was written, as serde_json writes it.
    #[test]
    fn strings_and_numbers_read_back_as_written() {
        let texts = [
            "",
            "plain",
            "quote \" and backslash \\",
            "lines\n\r\t\u{8}\u{c} and \u{1} \u{1f} \u{7f}",
            "ünïcödé ✓ 🎉",
            "\"",
            "a long clean run of text, longer than a word or two, then a \" quote",
            "1234567\\",
            "12345678\u{1f}9",
            "ütf-8 ✓ over words ✓✓✓✓✓✓✓✓ \\ end",
        ];
        for text in texts {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        for n in [0, -1, i64::MIN, i64::MAX, 1_700_000_000] {
            let mut out = Vec::new();
            integer(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
        for x in [0.0, -1.5, 1e300, 21.25, 1.0] {
            let mut out = Vec::new();
            float(&mut out, x);
            assert_eq!(serde_json::from_slice::<f64>(&out).unwrap(), x);
            assert!(
                out.contains(&b'.') || out.contains(&b'e'),
                "a float stays a float"
            );
        }
        let mut out = Vec::new();
        float(&mut out, f64::NAN);
        assert_eq!(out, b"null");
    }

    /// Long escaped text goes through the stack buffer more than once.
    #[test]
    fn long_text_full_of_escapes_is_written_as_serde_json_writes_it() {
        let unit = "{\"a\":\"\u{1}\\\n\",\"ü\":[1,2]}";
        let controls: String = (0u8..0x20).map(char::from).collect();
        for repeat in [1, 7, 8, 9, 40, 41, 300] {
            for prefix in (0..16).map(|n| "p".repeat(n)) {
                let text = format!("{prefix}{}{controls}", unit.repeat(repeat));
                let mut out = b"before".to_vec();
                string(&mut out, &text);
                assert_eq!(
                    out[6..],
                    serde_json::to_vec(&text).unwrap()[..],
                    "{repeat} × after {prefix:?}"
                );
            }
        }
    }

    /// An escape at every place of the stack buffer, near its end above all.
    #[test]
    fn an_escape_anywhere_in_a_long_run_is_written_as_serde_json_writes_it() {
        for special in ['\u{1}', '"', '\n'] {
            for run in 0..600 {
                let text = format!("\"{}{special}{}", "a".repeat(run), "b".repeat(20));
                let mut out = Vec::new();
                string(&mut out, &text);
                assert_eq!(
                    out,
                    serde_json::to_vec(&text).unwrap(),
                    "{special:?} after {run}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in "(?s).{0,40}|[\"\\\\\\x00-\\x1fa-z]{200,400}") {
            let mut out = Vec::new();
            string(&mut out, &text);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }
    }

    /// Every length up to past two words, with each kind of special byte at every place
    /// (and none): the word-at-a-time scan finds what a byte loop finds.
    #[test]
    fn first_special_finds_the_first_special_byte() {
        for len in 0..=24 {
            for special in [None, Some(b'"'), Some(b'\\'), Some(0x00), Some(0x1f)] {
                for at in 0..len.max(1) {
                    let mut bytes = vec![b'a'; len];
                    if let (Some(b), Some(slot)) = (special, bytes.get_mut(at)) {
                        *slot = b;
                    }
                    let expected = bytes.iter().position(|&b| ESCAPES[usize::from(b)] != 0);
                    assert_eq!(first_special(&bytes), expected, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn objects_separate_their_entries() {
        let mut out = Vec::new();
        let mut o = Object::new(&mut out);
        string(o.key("a\"b"), "x");
        integer(o.prepared(&Key::new("n")), 3);
        value(o.key("none"), None);
        o.entries(br#""c":1,"d":[2]"#);
        o.entries(b"");
        o.end();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a\"b": "x", "n": 3, "none": null, "c": 1, "d": [2]})
        );
        let mut out = Vec::new();
        Object::new(&mut out).end();
        assert_eq!(out, b"{}");
    }
}
