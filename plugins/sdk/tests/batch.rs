//! The codec, natively: whole columnar batches through the lifecycle the component
//! exports (`describe`, `configure`, `process`), answers checked in their wire form.

use streamhost_sdk::testing::{self, json, Json};
use streamhost_sdk::wit::{Answer, Batch, Column, Kind, Rejection, TextColumn, Update, Values};
use streamhost_sdk::{info, Changes, Enricher, Event, Info, Settings, Validator, Verdict};

/// Rejects `n` above the `max` setting (default 10); reads a text field too.
#[derive(Debug)]
struct AtMost(i64);

impl Validator for AtMost {
    const INFO: Info = info!["n", "name"];
    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.only(&["max"])?;
        settings.parse_or("max", 10).map(AtMost)
    }
    fn check(&self, event: &Event) -> Verdict {
        match event.integer("n") {
            Some(n) if n > self.0 => Verdict::reject("too_big", format!("{n} > {}", self.0)),
            _ => Verdict::Accept,
        }
    }
}

/// Upper-cases `name`, counts its bytes into `len`, flags `big`, and rejects `n < 0`
/// after changing the event (the changes must then be dropped).
#[derive(Debug)]
struct Shout;

impl Enricher for Shout {
    const INFO: Info = info!["name", "n"];
    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.none().map(|()| Shout)
    }
    fn enrich(&self, event: &Event, changes: &mut Changes) -> Verdict {
        if let Some(name) = event.text("name") {
            changes.set_text("name", name.to_uppercase());
            changes.set_integer("len", name.len() as i64);
        }
        let n = event.float("n").unwrap_or(0.0);
        changes.set_boolean("big", n > 1.0);
        changes.set_boolean("big", n > 100.0); // set twice: the last value wins
        if n < 0.0 {
            return Verdict::reject("negative", "n < 0");
        }
        changes.set_float("half", n / 2.0);
        Verdict::Accept
    }
}

fn text(values: &[&str]) -> Values {
    Values::Text(TextColumn {
        text: values.concat(),
        ends: values
            .iter()
            .scan(0, |end, v| {
                *end += v.len() as u32;
                Some(*end)
            })
            .collect(),
    })
}

fn column(name: &str, present: &[bool], values: Values) -> Column {
    Column {
        name: name.into(),
        present: present.to_vec(),
        values,
    }
}

#[test]
fn describe_says_name_version_kind_and_reads_in_order() {
    let info = testing::describe_validator::<AtMost>();
    assert_eq!(info.name, "streamhost-sdk");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(matches!(info.kind, Kind::Validator));
    assert_eq!(info.reads, ["n", "name"]);
    assert!(matches!(
        testing::describe_enricher::<Shout>().kind,
        Kind::Enricher
    ));
}

#[test]
fn a_validator_answers_rejections_by_index_from_typed_and_text_columns() {
    // n as an integer column with a hole, then as text (a field outside the schema).
    let typed = Batch {
        size: 4,
        columns: vec![
            column(
                "n",
                &[true, false, true, true],
                Values::Integer(vec![11, 99, 3, 12]),
            ),
            column("name", &[true; 4], text(&["a", "b", "c", "d"])),
        ],
    };
    let as_text = Batch {
        size: 4,
        columns: vec![column(
            "n",
            &[true, true, true, true],
            text(&["11", "", "3", "x12"]),
        )],
    };
    let answer = testing::run_validator::<AtMost>(&[], &typed).unwrap();
    let rejected = |a: &Answer| a.rejections.iter().map(|r| r.event).collect::<Vec<_>>();
    assert_eq!(rejected(&answer), [0, 3]);
    assert_eq!(
        answer.rejections[0],
        Rejection {
            event: 0,
            code: "too_big".into(),
            message: "11 > 10".into(),
        }
    );
    assert!(answer.updates.is_empty());
    assert_eq!(
        rejected(&testing::run_validator::<AtMost>(&[], &as_text).unwrap()),
        [0]
    );
    let strict = testing::run_validator::<AtMost>(&[("max", "2")], &typed).unwrap();
    assert_eq!(rejected(&strict), [0, 2, 3]);
}

#[test]
fn configure_errors_come_back_as_the_plugins_refusal() {
    let batch = testing::batch(AtMost::INFO.reads, &[]);
    let err = testing::run_validator::<AtMost>(&[("max", "ten")], &batch).unwrap_err();
    assert_eq!(
        err,
        "setting `max` = \"ten\" is not a valid i64: invalid digit found in string"
    );
    let err = testing::run_validator::<AtMost>(&[("mx", "1")], &batch).unwrap_err();
    assert_eq!(err, "unknown setting `mx` (known: max)");
}

#[test]
fn an_enricher_answers_one_update_per_field_in_wire_form() {
    let events: Vec<Json> = vec![
        json!({"name": "ab", "n": 150}),
        json!({"n": 2.5}),
        json!({"name": "zz", "n": -1}),
        json!({"name": "ü", "n": null}),
    ];
    let batch = testing::batch(Shout::INFO.reads, &events);
    let answer = testing::run_enricher::<Shout>(&[], &batch).unwrap();
    assert_eq!(answer.rejections.len(), 1);
    assert_eq!(answer.rejections[0].event, 2);
    // Event 2 was rejected: none of its changes cross.
    assert_eq!(
        answer.updates,
        [
            Update {
                field: "name".into(),
                events: vec![0, 3],
                values: text(&["AB", "Ü"]),
            },
            Update {
                field: "len".into(),
                events: vec![0, 3],
                values: Values::Integer(vec![2, 2]),
            },
            Update {
                field: "big".into(),
                events: vec![0, 1, 3],
                values: Values::Boolean(vec![true, false, false]),
            },
            Update {
                field: "half".into(),
                events: vec![0, 1, 3],
                values: Values::Float(vec![75.0, 1.25, 0.0]),
            },
        ]
    );
    assert_eq!(
        testing::changes(&answer, 1),
        json!({"big": false, "half": 1.25})
    );
}

#[test]
fn a_field_set_with_another_type_gets_a_later_update() {
    #[derive(Debug)]
    struct Retype;
    impl Enricher for Retype {
        const INFO: Info = info![];
        fn configure(_: &Settings) -> Result<Self, String> {
            Ok(Retype)
        }
        fn enrich(&self, event: &Event, changes: &mut Changes) -> Verdict {
            changes.set_text("x", "t");
            if event.index() == 1 {
                changes.set_integer("x", 7);
            }
            Verdict::Accept
        }
    }
    let batch = testing::batch(&[], &[json!({}), json!({}), json!({})]);
    let answer = testing::run_enricher::<Retype>(&[], &batch).unwrap();
    let shape: Vec<_> = answer
        .updates
        .iter()
        .map(|u| (u.field.as_str(), u.events.clone()))
        .collect();
    // Updates apply in order: event 1 ends up with the integer, 2 with text again.
    assert_eq!(shape, [("x", vec![0, 1]), ("x", vec![1]), ("x", vec![2])]);
    assert_eq!(testing::changes(&answer, 1), json!({"x": 7}));
}

#[test]
fn events_read_each_type_and_convert_only_where_lossless() {
    let batch = testing::batch(
        &["s", "i", "f", "b", "num_text", "bool_text", "nothing"],
        &[json!({"s": "x", "i": 3, "f": 1.5, "b": true, "num_text": "42", "bool_text": "false"})],
    );
    let answer = streamhost_sdk::testing::run_validator::<Probe>(&[], &batch).unwrap();
    assert!(answer.rejections.is_empty(), "{:?}", answer.rejections);
}

/// Rejects when any of the lookups below is not what the codec promises.
#[derive(Debug)]
struct Probe;

impl Validator for Probe {
    const INFO: Info = info![];
    fn configure(_: &Settings) -> Result<Self, String> {
        Ok(Probe)
    }
    fn check(&self, e: &Event) -> Verdict {
        let ok = e.text("s") == Some("x")
            && e.integer("s").is_none()
            && e.integer("i") == Some(3)
            && e.float("i") == Some(3.0)
            && e.text("i").is_none()
            && e.float("f") == Some(1.5)
            && e.integer("f").is_none()
            && e.boolean("b") == Some(true)
            && e.integer("num_text") == Some(42)
            && e.float("num_text") == Some(42.0)
            && e.boolean("bool_text") == Some(false)
            && !e.has("nothing")
            && e.text("nothing").is_none()
            && !e.has("not_read");
        if ok {
            Verdict::Accept
        } else {
            Verdict::reject("probe", "a lookup was wrong")
        }
    }
}

#[test]
fn one_event_helpers_take_json_text_values_and_pairs() {
    let rule = AtMost(10);
    assert_eq!(
        testing::check(&rule, r#"{"n": 11}"#),
        Verdict::reject("too_big", "11 > 10")
    );
    assert_eq!(testing::check(&rule, json!({"n": 10})), Verdict::Accept);
    assert_eq!(testing::check(&rule, [("n", "12")]).code(), Some("too_big"));
    assert_eq!(
        testing::enrich(&Shout, r#"{"name": "ab", "n": 4}"#),
        (
            Verdict::Accept,
            json!({"name": "AB", "len": 2, "big": false, "half": 2.0})
        )
    );
    let (verdict, changes) = testing::enrich(&Shout, json!({"n": -4}));
    assert_eq!((verdict.code(), changes), (Some("negative"), json!({})));
}

#[test]
fn a_batch_before_configure_runs_the_rule_of_no_settings_or_rejects_all() {
    use std::cell::RefCell;
    use streamhost_sdk::__private::{process, AsValidator};

    /// Needs a setting: cannot be made from none.
    #[derive(Debug)]
    struct NeedsLimit;
    impl Validator for NeedsLimit {
        const INFO: Info = info!["n"];
        fn configure(settings: &Settings) -> Result<Self, String> {
            settings
                .get("limit")
                .map(|_| NeedsLimit)
                .ok_or("`limit` is required".into())
        }
        fn check(&self, _: &Event) -> Verdict {
            Verdict::Accept
        }
    }
    // The host always configures first; the component still answers sensibly if not.
    let batch = testing::batch(&["n", "name"], &[json!({"n": 11}), json!({"n": 1})]);
    let answer = process::<AsValidator<AtMost>>(&RefCell::new(None), &batch);
    assert_eq!(testing::verdict(&answer, 0).code(), Some("too_big"));
    let answer = process::<AsValidator<NeedsLimit>>(&RefCell::new(None), &batch);
    assert_eq!(
        testing::verdict(&answer, 1),
        Verdict::reject(
            "plugin_not_configured",
            "not configured: `limit` is required"
        )
    );
}
