//! Field extraction: the key and the event time the window stage reads from an enriched
//! event, and where the validate stage read that event (its identity); nothing else of
//! the payload is parsed.

/// Which fields of an enriched event the window stage reads: the key windows are kept
/// per, and the event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFields {
    pub key: String,
    pub time: String,
}

impl Default for WindowFields {
    /// The brief's: windows per `country` on `timestamp`.
    fn default() -> Self {
        Self {
            key: "country".into(),
            time: "timestamp".into(),
        }
    }
}

/// What the window stage needs of an enriched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Keyed {
    pub key: String,
    pub time: i64,
    /// Where the validate stage read the event: its identity.
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
}

impl WindowFields {
    /// Read the key, the time and the source position; skip everything else.
    pub(super) fn read(&self, payload: &[u8]) -> Result<Keyed, String> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let found = serde::de::DeserializeSeed::deserialize(KeyedSeed(self), &mut de)
            .and_then(|k| de.end().map(|()| k))
            .map_err(|e| e.to_string())?;
        let (Some(key), Some(time)) = (found.0, found.1) else {
            return Err(format!(
                "the event lacks `{}` or `{}` (a string or integer, and an integer)",
                self.key, self.time
            ));
        };
        Ok(Keyed {
            key,
            time,
            source_partition: found.2,
            source_offset: found.3,
        })
    }
}

struct KeyedSeed<'f>(&'f WindowFields);

type Found = (Option<String>, Option<i64>, Option<i32>, Option<i64>);

impl<'de> serde::de::DeserializeSeed<'de> for KeyedSeed<'_> {
    type Value = Found;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyedSeed<'_> {
    type Value = Found;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an enriched event object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found: Found = (None, None, None, None);
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == self.0.key {
                found.0 = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
            } else if name == self.0.time {
                found.1 = map.next_value()?;
            } else if name == "source_partition" {
                found.2 = map.next_value()?;
            } else if name == "source_offset" {
                found.3 = map.next_value()?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_key_the_time_and_the_source_position_only() {
        let fields = WindowFields::default();
        let keyed = fields
            .read(br#"{"user_id":1,"country":"US","timestamp":5,"source_partition":2,"source_offset":7,"extra":{"a":[1]}}"#)
            .unwrap();
        assert_eq!(
            keyed,
            Keyed {
                key: "US".into(),
                time: 5,
                source_partition: Some(2),
                source_offset: Some(7),
            }
        );
        let numeric = fields.read(br#"{"country":44,"timestamp":5}"#).unwrap();
        assert_eq!(
            (numeric.key.as_str(), numeric.source_partition),
            ("44", None)
        );
    }

    #[test]
    fn an_event_without_its_key_or_time_or_not_json_is_refused() {
        let fields = WindowFields::default();
        for payload in [
            &br#"{"country":"US"}"#[..],
            br#"{"timestamp":5}"#,
            br#"{"country":null,"timestamp":5}"#,
            br#"{"country":"US","timestamp":"5"}"#,
            b"not json",
            br#"{"country":"US","timestamp":5} trailing"#,
        ] {
            assert!(fields.read(payload).is_err(), "{payload:?}");
        }
    }
}
