//! Parameter extraction: for generated kwargs (fields missing, null, mistyped, numbers beyond
//! i64/u64/f64, unicode, extra keys, any order and spacing), a record runs with exactly the
//! present values, or is dropped with an error that names a bad field. serde_json, reading the
//! same kwargs into the same struct, is the oracle for the values.

use lpipe::testing::lambda_context;
use lpipe::testing::CapturingReporter;
use lpipe::{Action, BoxError, ErrorKind, Pipeline, RecordOutput};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::support::{block_on, config};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Params {
    count: i64,
    name: String,
    ratio: f64,
    nick: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    flag: bool,
    small: u8,
}

async fn take(p: Params) -> Result<RecordOutput<Params>, BoxError> {
    Ok(RecordOutput(p))
}

/// A field's generated JSON text (`None`: the field is missing) and whether serde accepts it.
#[derive(Clone, Debug)]
struct Field {
    name: &'static str,
    text: Option<String>,
    valid: bool,
}

fn json(v: impl Serialize) -> String {
    serde_json::to_string(&v).unwrap()
}

/// The values a field of each kind may be given, each with whether the field accepts it.
fn field(name: &'static str) -> BoxedStrategy<Field> {
    let make = move |text: Option<String>, valid: bool| Field { name, text, valid };
    let null = Just(Some("null".to_owned()));
    let absent = Just(None::<String>);
    let wrong = prop_oneof![
        Just("\"12\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("true".to_owned()),
        Just("1.5".to_owned()),
    ];
    match name {
        "count" => prop_oneof![
            4 => any::<i64>().prop_map(move |n| make(Some(json(n)), true)),
            1 => prop::sample::select(vec![
                "9223372036854775808", "-9223372036854775809", "18446744073709551616",
                "1e400", "1e30", "12.0",
            ])
            .prop_map(move |t| make(Some(t.to_owned()), false)),
            1 => absent.prop_map(move |t| make(t, false)),
            1 => null.prop_map(move |t| make(t, false)),
            1 => wrong.prop_map(move |t| make(Some(t), false)),
        ]
        .boxed(),
        "name" | "nick" => {
            let optional = name == "nick";
            prop_oneof![
                4 => any::<String>().prop_map(move |s| make(Some(json(s)), true)),
                1 => absent.prop_map(move |t| make(t, optional)),
                1 => null.prop_map(move |t| make(t, optional)),
                1 => prop_oneof![Just("12"), Just("[\"a\"]"), Just("false")]
                    .prop_map(move |t| make(Some(t.to_owned()), false)),
            ]
            .boxed()
        }
        "ratio" => prop_oneof![
            4 => (-1e300f64..1e300).prop_map(move |f| make(Some(json(f)), true)),
            1 => any::<i64>().prop_map(move |n| make(Some(json(n)), true)),
            // Beyond u64: still a (rounded) f64.
            1 => Just(make(Some("18446744073709551616".to_owned()), true)),
            1 => prop::sample::select(vec!["1e400", "-1e400"])
                .prop_map(move |t| make(Some(t.to_owned()), false)),
            1 => absent.prop_map(move |t| make(t, false)),
            1 => null.prop_map(move |t| make(t, false)),
        ]
        .boxed(),
        "tags" => prop_oneof![
            4 => prop::collection::vec(any::<String>(), 0..4).prop_map(move |v| make(Some(json(v)), true)),
            1 => absent.prop_map(move |t| make(t, true)),
            1 => null.prop_map(move |t| make(t, false)),
            1 => prop_oneof![Just("[1]"), Just("\"a\""), Just("{}")]
                .prop_map(move |t| make(Some(t.to_owned()), false)),
        ]
        .boxed(),
        "flag" => prop_oneof![
            4 => any::<bool>().prop_map(move |b| make(Some(json(b)), true)),
            1 => absent.prop_map(move |t| make(t, false)),
            1 => null.prop_map(move |t| make(t, false)),
            1 => prop_oneof![Just("0"), Just("\"true\"")]
                .prop_map(move |t| make(Some(t.to_owned()), false)),
        ]
        .boxed(),
        "small" => prop_oneof![
            4 => any::<u8>().prop_map(move |n| make(Some(json(n)), true)),
            1 => prop::sample::select(vec!["256", "-1", "1e3", "2.5"])
                .prop_map(move |t| make(Some(t.to_owned()), false)),
            1 => absent.prop_map(move |t| make(t, false)),
        ]
        .boxed(),
        _ => unreachable!(),
    }
}

const FIELDS: [&str; 7] = ["count", "name", "ratio", "nick", "tags", "flag", "small"];

/// Keys the struct does not have, with any values.
fn extras() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![any::<String>(), "[a-z_]{1,8}"]
                .prop_filter("not a field", |k| !FIELDS.contains(&k.as_str())),
            prop_oneof![
                any::<i64>().prop_map(json),
                any::<String>().prop_map(json),
                Just("1e400".to_owned()),
                Just("{\"count\": \"nested\"}".to_owned()),
                Just("null".to_owned()),
            ],
        ),
        0..3,
    )
}

#[derive(Clone, Debug)]
struct Kwargs {
    fields: Vec<Field>,
    extras: Vec<(String, String)>,
    /// Where each entry goes (the fields and extras, shuffled), and the spacing.
    order: Vec<usize>,
    spaced: bool,
}

fn kwargs() -> impl Strategy<Value = Kwargs> {
    (FIELDS.map(field).to_vec(), extras(), any::<bool>())
        .prop_flat_map(|(fields, extras, spaced)| {
            let n = fields.len() + extras.len();
            (
                Just(fields),
                Just(extras),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                Just(spaced),
            )
        })
        .prop_map(|(fields, extras, order, spaced)| Kwargs {
            fields,
            extras,
            order,
            spaced,
        })
}

impl Kwargs {
    fn text(&self) -> String {
        let entries: Vec<(String, &str)> = self
            .fields
            .iter()
            .filter_map(|f| f.text.as_deref().map(|t| (json(f.name), t)))
            .chain(self.extras.iter().map(|(k, v)| (json(k), v.as_str())))
            .collect();
        let sep = if self.spaced { " , " } else { "," };
        let colon = if self.spaced { " : " } else { ":" };
        let mut parts: Vec<String> = Vec::new();
        for &i in &self.order {
            if let Some((k, v)) = entries.get(i) {
                parts.push(format!("{k}{colon}{v}"));
            }
        }
        format!("{{{}}}", parts.join(sep))
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn a_record_runs_with_exactly_its_values_or_is_dropped_naming_the_field(kwargs in kwargs()) {
        let text = kwargs.text();
        let oracle = serde_json::from_str::<Params>(&text);
        let bad: Vec<&str> = kwargs.fields.iter().filter(|f| !f.valid).map(|f| f.name).collect();
        // The generator's model and serde agree (else this test, not lpipe, is wrong).
        prop_assert_eq!(oracle.is_ok(), bad.is_empty(), "{} {:?}", text, oracle);

        let reporter = CapturingReporter::new();
        let pipeline = Pipeline::builder()
            .detect_source()
            .path("TAKE", [Action::new().function(take)])
            .reporter(reporter.clone())
            .registry(lpipe::registry())
            .build()
            .unwrap();
        // A neighbour that must run whatever this record holds.
        let neighbour = r#"{"path": "TAKE", "kwargs": {"count": 1, "name": "n", "ratio": 0.5, "flag": true, "small": 1}}"#;
        let event = format!(r#"[{{"path": "TAKE", "kwargs": {text}}}, {neighbour}]"#);
        let response = block_on(pipeline.handle(&event, lambda_context(0)))
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(&response["output"][1]["name"], "n");
        match oracle {
            Ok(expected) => {
                let got: Params = serde_json::from_value(response["output"][0].clone())
                    .map_err(|e| TestCaseError::fail(format!("{e}: {response}")))?;
                prop_assert_eq!(got, expected);
                prop_assert!(reporter.reports().is_empty());
            }
            Err(_) => {
                prop_assert_eq!(&response["output"][0], &Value::Null);
                let reports = reporter.reports();
                prop_assert_eq!(reports.len(), 1);
                prop_assert_eq!(reports[0].kind, ErrorKind::InvalidPayload);
                let message = &reports[0].message;
                prop_assert!(
                    bad.iter().any(|f| message.contains(&format!("`{f}"))),
                    "{} names none of {:?}: {}",
                    message,
                    bad,
                    text
                );
            }
        }
    }
}
