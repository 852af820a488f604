//! Structure-aware mutations of valid JSON inputs: each takes a valid frame
//! or request body and breaks it one way (a field dropped or added, a wrong
//! type, a huge number, deep nesting, an oversized or invalid string,
//! someone else's id, broken bytes), as a grammar-based fuzzer would.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

/// Placeholder strings swapped for raw JSON text after serialising (numbers
/// and nesting a `Value` cannot hold).
const RAW: &str = "\u{1}raw\u{1}";

/// A mutated input: its bytes, what was done, and whether the protocol may
/// close the connection over it (a frame over 1 MiB, invalid UTF-8).
pub struct Mutant {
    pub bytes: Vec<u8>,
    pub label: &'static str,
    pub may_close: bool,
}

/// Ids that belong to someone else, or to nobody, for the `other_ids` mutation.
pub struct Foreign {
    pub ids: Vec<String>,
}

const HUGE_NUMBERS: [&str; 10] = [
    "18446744073709551616",
    "18446744073709551615",
    "-9223372036854775809",
    "1e308",
    "1e999",
    "-1",
    "-0",
    "3.5",
    "1e-400",
    "123456789012345678901234567890",
];

const BAD_IDS: [&str; 12] = [
    "",
    "-1",
    "abc",
    "1e3",
    " 12",
    "0x10",
    "18446744073709551616",
    "99999999999999999999999999",
    "\u{661}\u{662}",
    "1;DROP TABLE users",
    "../../etc/passwd",
    "0",
];

/// Paths to every node of `value`: object keys and array indexes.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Step::Key(key.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(Step::Index(index));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        Step::Key(key) => &mut node[key.as_str()],
        Step::Index(index) => &mut node[*index],
    })
}

fn node<'a>(value: &'a Value, path: &[Step]) -> &'a Value {
    path.iter().fold(value, |node, step| match step {
        Step::Key(key) => &node[key.as_str()],
        Step::Index(index) => &node[*index],
    })
}

/// A random node's path; `want` filters the nodes (the root may be chosen).
fn pick(rng: &mut StdRng, value: &Value, want: impl Fn(&Value) -> bool) -> Option<Vec<Step>> {
    let mut all = Vec::new();
    paths(value, &mut Vec::new(), &mut all);
    let chosen: Vec<Vec<Step>> = all.into_iter().filter(|path| want(node(value, path))).collect();
    chosen.choose(rng).cloned()
}

fn other_type(rng: &mut StdRng, value: &Value) -> Value {
    let options = [json!(null), json!(true), json!(7), json!(-2.5), json!("7"), json!([]), json!({}), json!([1, "x"])];
    loop {
        let candidate = options.choose(rng).expect("options").clone();
        if std::mem::discriminant(&candidate) != std::mem::discriminant(value) {
            return candidate;
        }
    }
}

fn serialise(value: &Value, raw: Option<&str>) -> Vec<u8> {
    let text = value.to_string();
    match raw {
        Some(raw) => text.replacen(&format!("\"{}\"", RAW.replace('\u{1}', "\\u0001")), raw, 1).into_bytes(),
        None => text.into_bytes(),
    }
}

fn nesting(rng: &mut StdRng) -> String {
    let depth = *[129usize, 1_000, 20_000, 200_000].choose(rng).expect("depth");
    if rng.random_bool(0.5) {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    } else {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }
}

/// One mutation of `seed`, chosen at random.
pub fn mutate(rng: &mut StdRng, seed: &Value, foreign: &Foreign) -> Mutant {
    let mut value = seed.clone();
    let mut raw: Option<String> = None;
    let mut may_close = false;
    let is_string = |node: &Value| node.is_string();
    let label = match rng.random_range(0..16u32) {
        0 => {
            if let Some(path) = pick(rng, &value, |node| node.as_object().is_some_and(|map| !map.is_empty())) {
                let map = at(&mut value, &path).as_object_mut().expect("object");
                let key = map.keys().collect::<Vec<_>>().choose(rng).map(|key| key.to_string()).expect("a key");
                map.remove(&key);
            }
            "drop_field"
        }
        1 => {
            if let Some(path) = pick(rng, &value, Value::is_object) {
                let key = *["extra", "type", "req", "__proto__", "to", "", "seq"].choose(rng).expect("key");
                let extra = other_type(rng, &Value::Null);
                at(&mut value, &path).as_object_mut().expect("object").insert(key.into(), extra);
            }
            "extra_field"
        }
        2 => {
            if let Some(path) = pick(rng, &value, |_| true) {
                let node = at(&mut value, &path);
                *node = other_type(rng, node);
            }
            "wrong_type"
        }
        3 => {
            if let Some(path) = pick(rng, &value, |node| !node.is_object()) {
                *at(&mut value, &path) = json!(RAW);
                raw = Some(HUGE_NUMBERS.choose(rng).expect("number").to_string());
            }
            "huge_number"
        }
        4 => {
            if let Some(path) = pick(rng, &value, |_| true) {
                *at(&mut value, &path) = json!(RAW);
                raw = Some(nesting(rng));
            }
            "deep_nesting"
        }
        5 => {
            let size = *[4_097usize, 65_537, 70_000, 300_000, 1_100_000].choose(rng).expect("size");
            may_close = size > 1_000_000;
            if let Some(path) = pick(rng, &value, is_string) {
                *at(&mut value, &path) = json!("é".repeat(size / 2));
            }
            "oversized"
        }
        6 => {
            if let Some(path) = pick(rng, &value, is_string) {
                *at(&mut value, &path) = json!(BAD_IDS.choose(rng).expect("id"));
            }
            "bad_id"
        }
        7 => {
            if let Some(path) = pick(rng, &value, is_string) {
                *at(&mut value, &path) = json!(foreign.ids.choose(rng).expect("foreign id"));
            }
            "other_ids"
        }
        8 => {
            let mut bytes = serialise(&value, None);
            let quote = bytes.iter().position(|byte| *byte == b':').unwrap_or(0);
            let bad: &[u8] = [&[0xff_u8][..], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[0xf8, 0x88, 0x80, 0x80, 0x80]]
                .choose(rng)
                .expect("bytes");
            let place = rng.random_range(quote..bytes.len());
            bytes.splice(place..place, bad.iter().copied());
            return Mutant { bytes, label: "invalid_utf8", may_close: true };
        }
        9 => {
            if let Some(path) = pick(rng, &value, is_string) {
                *at(&mut value, &path) = json!(RAW);
                let escape =
                    *["\"\\ud800\"", "\"\\udc00x\"", "\"\\u0000\"", "\"\\x41\"", "\"\\u12\""].choose(rng).expect("e");
                raw = Some(escape.to_string());
            }
            "bad_escape"
        }
        10 => {
            let bytes = serialise(&value, None);
            let cut = rng.random_range(0..bytes.len());
            return Mutant { bytes: bytes[..cut].to_vec(), label: "truncated", may_close: false };
        }
        11 => {
            let mut bytes = serialise(&value, None);
            let place = rng.random_range(0..bytes.len());
            bytes[place] = *b"{}[]\",:\\ 0-".choose(rng).expect("byte");
            return Mutant { bytes, label: "byte_swap", may_close: false };
        }
        12 => {
            let kind =
                *["hello", "send", "ack", "read", "edit", "SEND", "nope", "", "ping "].choose(rng).expect("type");
            value["type"] = json!(kind);
            "type_swap"
        }
        13 => {
            if let Some(path) = pick(rng, &value, |node| !node.is_object()) {
                *at(&mut value, &path) = Value::Null;
            }
            "null_value"
        }
        14 => {
            if let Some(path) = pick(rng, &value, is_string) {
                let odd = *["\u{0}", "\u{202e}evil", "\u{feff}", "\n\r\t", "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀"]
                    .choose(rng)
                    .expect("odd");
                *at(&mut value, &path) = json!(odd);
            }
            "odd_characters"
        }
        _ => {
            let wrapped = if rng.random_bool(0.5) { json!([value]) } else { json!({"frame": value}) };
            value = wrapped;
            "wrong_shape"
        }
    };
    Mutant { bytes: serialise(&value, raw.as_deref()), label, may_close }
}
