//! The text-column layout, both ways: `text[ends[i - 1]..ends[i]]` is value i.

use std::borrow::Cow;
use std::fmt::{self, Write};

use crate::wit::TextColumn;

/// A value [`Changes::set_text`](crate::Changes::set_text) writes as text: strings as
/// they are, integers in decimal, `char`s, `true` / `false`, floats as `Display` writes
/// them. Any other `Display` value goes through `format_args!("{value}")`.
pub trait Text {
    /// Appends the value's text to `out`.
    fn write_to(&self, out: &mut String);
}

impl Text for str {
    #[inline]
    fn write_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Text for String {
    #[inline]
    fn write_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Text for Cow<'_, str> {
    #[inline]
    fn write_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Text for char {
    #[inline]
    fn write_to(&self, out: &mut String) {
        out.push(*self);
    }
}

impl Text for bool {
    #[inline]
    fn write_to(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl<T: Text + ?Sized> Text for &T {
    #[inline]
    fn write_to(&self, out: &mut String) {
        (**self).write_to(out);
    }
}

macro_rules! integers {
    ($($t:ty)*) => {$(
        impl Text for $t {
            #[inline]
            fn write_to(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}
integers!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

macro_rules! formatted {
    ($($t:ty)*) => {$(
        impl Text for $t {
            fn write_to(&self, out: &mut String) {
                // Writing into a String cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
formatted!(f32 f64 fmt::Arguments<'_>);

/// Value `index` of a text column (`None` past its end or on offsets that do not cut
/// the text at character boundaries).
#[inline]
pub(crate) fn text_at(column: &TextColumn, index: usize) -> Option<&str> {
    let end = *column.ends.get(index)? as usize;
    let start = match index.checked_sub(1) {
        Some(previous) => *column.ends.get(previous)? as usize,
        None => 0,
    };
    column.text.get(start..end)
}

/// Whether two field names are equal: what `a == b` says, without a call to the
/// guest's byte-by-byte `memcmp` (names are short, and compared for every value set).
#[inline]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| c.try_into().map(u64::from_ne_bytes).unwrap_or(0);
    (&mut x).zip(&mut y).all(|(p, q)| word(p) == word(q))
        && x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// Builds a text column value by value, writing straight into the one buffer.
#[derive(Debug, Default)]
pub(crate) struct TextBuilder {
    text: String,
    ends: Vec<u32>,
}

impl TextBuilder {
    /// Room for `values` values of a few bytes each.
    pub(crate) fn with_capacity(values: usize) -> Self {
        Self {
            text: String::with_capacity(values * 4),
            ends: Vec::with_capacity(values),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: impl Text) {
        value.write_to(&mut self.text);
        self.ends.push(self.text.len() as u32);
    }

    /// Drops the last value.
    pub(crate) fn pop(&mut self) {
        self.ends.pop();
        self.text
            .truncate(self.ends.last().copied().unwrap_or(0) as usize);
    }

    pub(crate) fn finish(self) -> TextColumn {
        TextColumn {
            text: self.text,
            ends: self.ends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_a_column() {
        let mut b = TextBuilder::default();
        for v in ["US", "", "ÜS", "x"] {
            b.push(v);
        }
        b.pop();
        b.push(42);
        b.push(-7i64);
        b.push(true);
        b.push('é');
        b.push(1.5);
        b.push(format_args!("<{}>", 3));
        b.push(String::from("s"));
        let column = b.finish();
        assert_eq!(column.text, "USÜS42-7trueé1.5<3>s");
        let values: Vec<_> = (0..11).map(|i| text_at(&column, i)).collect();
        assert_eq!(
            values,
            [
                Some("US"),
                Some(""),
                Some("ÜS"),
                Some("42"),
                Some("-7"),
                Some("true"),
                Some("é"),
                Some("1.5"),
                Some("<3>"),
                Some("s"),
                None
            ]
        );
    }

    #[test]
    fn names_compare_as_strings_do() {
        let names = [
            "",
            "a",
            "country",
            "countrx",
            "schema_version",
            "schema_versioN",
            "page_id",
            "é",
            "e",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} {b:?}");
            }
        }
        assert!(same_name(
            &"long_field_name_".repeat(3),
            &"long_field_name_".repeat(3)
        ));
    }

    #[test]
    fn bad_offsets_read_as_missing_not_as_a_panic() {
        let column = TextColumn {
            text: "Ü".into(),
            ends: vec![1, 0, 9],
        };
        assert_eq!(text_at(&column, 0), None);
        assert_eq!(text_at(&column, 1), None);
        assert_eq!(text_at(&column, 2), None);
    }
}
