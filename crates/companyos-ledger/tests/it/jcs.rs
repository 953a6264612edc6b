//! RFC 8785 (JCS) vectors: cyberphone/json-canonicalization's input/output pairs, the RFC 8785
//! Appendix B number table with other ECMAScript number samples, and the strict reader's
//! refusals.

use companyos_ledger::jcs::{JcsError, canonicalize, format_ecmascript_number, parse_strict};

use crate::common::{vector_bytes, vector_path, vector_text};

fn canonical(json: &str) -> String {
    canonicalize(&parse_strict(json.as_bytes()).unwrap()).unwrap()
}

#[test]
fn cyberphone_input_output_pairs() {
    let mut names: Vec<String> = std::fs::read_dir(vector_path("jcs/input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "arrays.json",
            "french.json",
            "simpleString.json",
            "structures.json",
            "unicode.json",
            "values.json",
            "weird.json"
        ]
    );
    for name in names {
        let input = vector_bytes(&format!("jcs/input/{name}"));
        let expected = vector_bytes(&format!("jcs/output/{name}"));
        let value = parse_strict(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = canonicalize(&value).unwrap();
        assert_eq!(
            out.as_bytes(),
            expected.as_slice(),
            "{name}: got {out}, want {}",
            String::from_utf8_lossy(&expected)
        );
        // Canonical output is a fixed point.
        assert_eq!(canonical(&out), out, "{name} is not idempotent");
    }
    // The hex form of the simple string output.
    let outhex = vector_text("jcs/outhex/simpleString.txt");
    let bytes: Vec<u8> = outhex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    assert_eq!(
        canonical(&vector_text("jcs/input/simpleString.json")).as_bytes(),
        bytes.as_slice()
    );
}

#[test]
fn ecmascript_number_serialisation() {
    let table = vector_text("jcs/es6-numbers.txt");
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (bits, expected) = line.split_once(',').unwrap();
        let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        let got = format_ecmascript_number(value);
        if expected == "null" {
            assert_eq!(got, None, "{bits} must have no JCS form");
        } else {
            assert_eq!(got.as_deref(), Some(expected), "{bits}");
            // The same number arriving as JSON text canonicalises to the same form.
            assert_eq!(canonical(expected), expected, "{expected} as JSON");
            // And as JSON text in another spelling (Rust's own shortest form).
            let other = format!("{value:e}");
            assert_eq!(canonical(&other), expected, "{other} as JSON");
        }
        checked += 1;
    }
    assert!(checked >= 40);
}

#[test]
fn number_edge_cases_through_json() {
    assert_eq!(canonical("-0"), "0");
    assert_eq!(canonical("-0.0e10"), "0");
    assert_eq!(canonical("1E30"), "1e+30");
    assert_eq!(canonical("4.50"), "4.5");
    assert_eq!(canonical("0.000000000000000000000000001"), "1e-27");
    assert_eq!(canonical("12345678901234567890"), "12345678901234567000");
    assert_eq!(canonical("123456789012345678901"), "123456789012345680000");
    assert_eq!(canonical("1e21"), "1e+21");
    assert_eq!(canonical("1e-7"), "1e-7");
    assert_eq!(canonical("5e-324"), "5e-324");
    assert_eq!(canonical("2e-324"), "0"); // below the smallest subnormal: rounds to 0
    assert_eq!(canonical("[1.0, 100, 1e2, 0.1e3]"), "[1,100,100,100]");
    for too_big in ["1e400", "-1e309", "[1e999]"] {
        let value = parse_strict(too_big.as_bytes()).unwrap();
        assert!(
            matches!(canonicalize(&value), Err(JcsError::NumberOutOfRange(_))),
            "{too_big}"
        );
    }
}

#[test]
fn strings_and_ordering() {
    // Control characters escape as lower-case \u00XX except the five short escapes; DEL, U+2028
    // and non-ASCII stay as they are; '/' is not escaped.
    assert_eq!(
        canonical(r#""\u0000\u0001\b\t\n\u000b\f\r\u001f\u007f\u2028/\"\\""#),
        "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\u{2028}/\\\"\\\\\""
    );
    // Member names sort by UTF-16 code units: U+10000 (D800 DC00) before U+FFFF.
    assert_eq!(
        canonical(r#"{"\uffff":1,"\ud800\udc00":2,"a":3,"B":4,"":5}"#),
        "{\"\":5,\"B\":4,\"a\":3,\"\u{10000}\":2,\"\u{ffff}\":1}"
    );
    assert_eq!(
        canonical(" { \"b\" : [ true , null ] , \"a\" : { } } "),
        r#"{"a":{},"b":[true,null]}"#
    );
}

#[test]
fn strict_reader_refusals() {
    let refused = [
        r#"{"a":1,"a":2}"#,
        r#"{"x":{"a":1,"b":2,"a":3}}"#,
        r#"[{"a":1,"a":1}]"#,
        r#"{"a":1,"\u0061":2}"#, // the same name, once escaped
        r#"{"a":1} {}"#,
        r#"{"a":1}x"#,
        r#"{"a":"\ud800"}"#, // lone surrogate
        r#"{"a":01}"#,
        r#"{"a":NaN}"#,
        r#"{"a":Infinity}"#,
        r#"{"a":1,}"#,
        "",
        "\u{feff}{}",
    ];
    for text in refused {
        assert!(parse_strict(text.as_bytes()).is_err(), "accepted {text:?}");
    }
    assert!(parse_strict(b"{\"a\":\"\xff\"}").is_err());
    // 128 levels of nesting is serde_json's limit; deeper documents are refused, not overflowed.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_strict(deep.as_bytes()).is_err());
    let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(canonical(&ok), ok);
}

#[test]
fn serde_json_number_token_is_an_ordinary_member_name() {
    // serde_json (arbitrary_precision) passes numbers to visitors as a map with this one key;
    // a document that really has a member of that name must stay an object.
    let token = "$serde_json::private::Number";
    for doc in [
        format!(r#"{{"{token}":"1"}}"#),
        format!(r#"{{"{token}":1}}"#),
        format!(r#"{{"{token}":"abc","a":[1,2]}}"#),
        format!(r#"{{"a":{{"{token}":"5"}}}}"#),
        format!(r#"{{"{token}":{{"{token}":"7"}}}}"#),
    ] {
        let value = parse_strict(doc.as_bytes()).unwrap();
        let out = canonicalize(&value).unwrap();
        assert!(out.contains(token), "{doc} canonicalised to {out}");
        // Canonical form is stable through a second parse.
        assert_eq!(canonical(&out), out);
    }
    assert_eq!(
        canonical(&format!(r#"{{"{token}":"1"}}"#)),
        format!(r#"{{"{token}":"1"}}"#)
    );
    assert!(parse_strict(format!(r#"{{"{token}":1,"{token}":2}}"#).as_bytes()).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

    /// For any finite double: the ECMAScript form reads back as the same double, uses as few
    /// significant digits as Rust's shortest round-trip form, and is a fixed point of JCS.
    #[test]
    fn ecmascript_form_round_trips_with_shortest_digits(bits in proptest::prelude::any::<u64>()) {
        let value = f64::from_bits(bits);
        let Some(text) = format_ecmascript_number(value) else {
            proptest::prop_assert!(!value.is_finite());
            return Ok(());
        };
        let parsed: f64 = text.parse().unwrap();
        proptest::prop_assert!(parsed == value, "{} -> {} -> {}", value, text, parsed);
        let significant = |s: &str| {
            let mantissa = s.split(['e', 'E']).next().unwrap();
            mantissa
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .trim_start_matches('0')
                .trim_end_matches('0')
                .len()
        };
        if value != 0.0 {
            proptest::prop_assert_eq!(significant(&text), significant(&format!("{:e}", value.abs())));
        }
        proptest::prop_assert_eq!(canonical(&text), text);
    }
}
