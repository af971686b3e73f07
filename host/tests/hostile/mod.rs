//! The worst shapes of a payload for the decoder, each grown to a chosen size: one
//! definition for the decoder's unit tests (their verdicts) and the benchmark
//! (`benches/hostile.rs`, their time per byte). Only `std`: the benchmark builds
//! against older hosts too, for before/after figures.

/// A brief's event, without its closing brace: the shapes add their members to it.
pub const BASE: &str = r#"{"event_type": "page_view", "user_id": 42, "page_url": "/page/7", "button_id": "b-1", "timestamp": 1700000000, "country": "US""#;

/// Top-level members of [`BASE`].
pub const BASE_MEMBERS: usize = 6;

/// A hostile shape: its name and how to make it about `bytes` long.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub what: &'static str,
    pub make: fn(usize) -> String,
}

/// Every shape, in the order the benchmark prints them.
pub const SHAPES: &[Shape] = &[
    Shape {
        name: "many-keys",
        what: "top-level keys of six characters (k00000, ...), as many as fit",
        make: many_keys,
    },
    Shape {
        name: "long-equal-keys-at-limit",
        what: "1,000 top-level members (the default limit), keys of equal length sharing all but their last 6 bytes",
        make: long_equal_keys_at_limit,
    },
    Shape {
        name: "wide-nested-object",
        what: "one extra field holding an object with six-character keys, as many as fit",
        make: wide_nested_object,
    },
    Shape {
        name: "long-key",
        what: "one extra field whose key is the whole size",
        make: long_key,
    },
    Shape {
        name: "deep-allowed-nesting",
        what: "one extra field: an array of arrays nested 120 deep (serde_json allows 128), repeated",
        make: deep_allowed_nesting,
    },
    Shape {
        name: "escaped-extra",
        what: "one extra string made of \\u00e9 and \\n escapes",
        make: escaped_extra,
    },
    Shape {
        name: "escaped-field",
        what: "page_url made of \\u00e9 escapes (too long once decoded)",
        make: escaped_field,
    },
];

fn close(mut s: String) -> String {
    s.push('}');
    s
}

/// `,"k00000":0` and on, about `bytes` in all.
pub fn many_keys(bytes: usize) -> String {
    let mut s = String::from(BASE);
    let mut i = 0;
    while s.len() + 12 < bytes {
        s.push_str(&format!(",\"k{i:05}\":0"));
        i += 1;
    }
    close(s)
}

/// `limit` top-level members in all: extra keys of equal length, differing only in
/// their last six bytes, long enough to make the payload about `bytes`.
pub fn keys_at(limit: usize, bytes: usize) -> String {
    let extras = limit - BASE_MEMBERS;
    let key_len = (bytes.saturating_sub(BASE.len()) / extras)
        .saturating_sub(5)
        .max(6);
    let prefix = "a".repeat(key_len - 6);
    let mut s = String::from(BASE);
    for i in 0..extras {
        s.push_str(&format!(",\"{prefix}{i:06}\":0"));
    }
    close(s)
}

pub fn long_equal_keys_at_limit(bytes: usize) -> String {
    keys_at(1000, bytes)
}

pub fn wide_nested_object(bytes: usize) -> String {
    let mut s = String::from(BASE);
    s.push_str(",\"x\":{\"k00000\":0");
    let mut i = 1;
    while s.len() + 14 < bytes {
        s.push_str(&format!(",\"k{i:05}\":0"));
        i += 1;
    }
    s.push('}');
    close(s)
}

pub fn long_key(bytes: usize) -> String {
    let mut s = String::from(BASE);
    let key = "k".repeat(bytes.saturating_sub(BASE.len() + 8));
    s.push_str(&format!(",\"{key}\":0"));
    close(s)
}

pub fn deep_allowed_nesting(bytes: usize) -> String {
    const DEPTH: usize = 120;
    let one = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let mut s = String::from(BASE);
    s.push_str(",\"d\":[");
    s.push_str(&one);
    while s.len() + one.len() + 3 < bytes {
        s.push(',');
        s.push_str(&one);
    }
    s.push(']');
    close(s)
}

fn escapes(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 8);
    while s.len() + 8 < bytes {
        s.push_str("\\u00e9\\n");
    }
    s
}

pub fn escaped_extra(bytes: usize) -> String {
    let mut s = String::from(BASE);
    s.push_str(&format!(
        ",\"e\":\"{}\"",
        escapes(bytes.saturating_sub(BASE.len() + 8))
    ));
    close(s)
}

pub fn escaped_field(bytes: usize) -> String {
    let escaped = escapes(bytes.saturating_sub(BASE.len()));
    BASE.replace("/page/7", &escaped) + "}"
}
