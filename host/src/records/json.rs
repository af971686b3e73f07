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

/// `s` as a JSON string. Runs of text without quotes, backslashes or control
/// characters (usually the whole string) are copied in one piece.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean = 0;
    while let Some(i) = next_special(bytes, clean) {
        out.extend_from_slice(&bytes[clean..i]);
        escape(out, bytes[i]);
        clean = i + 1;
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

/// The index of the first byte at or after `from` that JSON must escape. Eight bytes
/// at a time: a byte of a word is flagged by the usual "has a zero byte" bit trick,
/// which is exact for the lowest flagged byte.
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let rest = bytes.get(from..)?;
    let mut words = rest.chunks_exact(8);
    for (n, word) in words.by_ref().enumerate() {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        let v = u64::from_le_bytes(le);
        let flagged = zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if flagged != 0 {
            return Some(from + n * 8 + (flagged.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.remainder();
    let at = tail
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')?;
    Some(bytes.len() - tail.len() + at)
}

fn escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
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

    proptest::proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in "(?s).{0,40}") {
            let mut out = Vec::new();
            string(&mut out, &text);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
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
