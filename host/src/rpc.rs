//! RPC (PROTOCOL.md §15.5) for hosts: JSON arguments and results, mapped one to one onto
//! the core's values (§15.5.1, "JSON mapping"), and calls through the node's
//! request/response path. The core decides everything on the wire; this module only
//! converts JSON and names the outcomes.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use meshlink_core::messaging::rpc::{
    OwnedValue, Value, ValueError, BAD_ARGUMENTS, MAX_DEPTH, MAX_LEN, MAX_NAME, MAX_TOTAL, PREFIX, UNKNOWN_FUNCTION,
};
use serde_json::Value as Json;

use crate::HostError;

/// Why JSON has no value (§15.5.1), or a value no JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonValueError {
    /// An integer outside i64 (serde_json keeps up to u64; larger ones arrive as floats).
    IntOutOfRange(String),
    /// A float that is NaN or infinite.
    NonFinite,
    /// More than `max` nested lists and maps (the arguments list counts as one).
    TooDeep { max: usize },
    /// A list or object of more than `max` elements, or more than `max` values in all.
    TooMany { max: usize },
    /// The encoding is larger than `max` bytes.
    TooLarge { max: usize },
    /// An object key that starts with a single `$` (other than a lone `$bytes`).
    ReservedKey(String),
    /// `{"$bytes": ...}` whose value is not padded base64.
    BadBytes(String),
    /// Bytes that are not a valid value (a result from the peer).
    Invalid(ValueError),
}

impl fmt::Display for JsonValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonValueError::IntOutOfRange(n) => write!(f, "integer {n} is outside i64"),
            JsonValueError::NonFinite => f.write_str("non-finite float"),
            JsonValueError::TooDeep { max } => write!(f, "value nested deeper than {max}"),
            JsonValueError::TooMany { max } => write!(f, "value has more than {max} elements"),
            JsonValueError::TooLarge { max } => write!(f, "value larger than {max} bytes"),
            JsonValueError::ReservedKey(k) => write!(f, "object key {k:?} starts with `$` (write `$${}`)", &k[1..]),
            JsonValueError::BadBytes(why) => write!(f, "`$bytes` is not padded base64: {why}"),
            JsonValueError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JsonValueError {}

impl From<ValueError> for JsonValueError {
    fn from(e: ValueError) -> Self {
        match e {
            ValueError::TooDeep { max } => JsonValueError::TooDeep { max },
            ValueError::TooMany { max } => JsonValueError::TooMany { max },
            ValueError::TooLarge { max } => JsonValueError::TooLarge { max },
            ValueError::NonFinite => JsonValueError::NonFinite,
            e => JsonValueError::Invalid(e),
        }
    }
}

const BYTES_KEY: &str = "$bytes";

/// Walks JSON into an owned value. `depth` is the number of containers around `j`; the
/// recursion stops at [`MAX_DEPTH`] (serde_json's own parser stops at 128).
fn from_json(j: &Json, depth: usize, total: &mut usize) -> Result<OwnedValue, JsonValueError> {
    *total += 1;
    if *total > MAX_TOTAL {
        return Err(JsonValueError::TooMany { max: MAX_TOTAL });
    }
    let container = matches!(j, Json::Array(_) | Json::Object(_));
    if container && depth >= MAX_DEPTH {
        return Err(JsonValueError::TooDeep { max: MAX_DEPTH });
    }
    Ok(match j {
        Json::Null => OwnedValue::Null,
        Json::Bool(b) => OwnedValue::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                OwnedValue::Int(i)
            } else if n.is_u64() {
                return Err(JsonValueError::IntOutOfRange(n.to_string()));
            } else {
                let f = n.as_f64().ok_or(JsonValueError::NonFinite)?;
                if !f.is_finite() {
                    return Err(JsonValueError::NonFinite);
                }
                OwnedValue::Float(f)
            }
        }
        Json::String(s) => OwnedValue::Str(s.clone()),
        Json::Array(a) => {
            if a.len() > MAX_LEN {
                return Err(JsonValueError::TooMany { max: MAX_LEN });
            }
            OwnedValue::List(a.iter().map(|e| from_json(e, depth + 1, total)).collect::<Result<_, _>>()?)
        }
        Json::Object(o) => {
            if o.len() == 1 {
                if let Some(Json::String(b64)) = o.get(BYTES_KEY) {
                    let b = BASE64.decode(b64).map_err(|e| JsonValueError::BadBytes(e.to_string()))?;
                    return Ok(OwnedValue::Bytes(b));
                }
            }
            if o.len() > MAX_LEN {
                return Err(JsonValueError::TooMany { max: MAX_LEN });
            }
            let mut m = BTreeMap::new();
            for (k, v) in o {
                let key = match k.strip_prefix('$') {
                    Some(rest) if rest.starts_with('$') => rest.to_string(),
                    Some(_) => return Err(JsonValueError::ReservedKey(k.clone())),
                    None => k.clone(),
                };
                m.insert(key, from_json(v, depth + 1, total)?);
            }
            OwnedValue::Map(m)
        }
    })
}

/// The encoding of one JSON value, checked against the core's limits.
pub fn encode_json(j: &Json) -> Result<Vec<u8>, JsonValueError> {
    let v = from_json(j, 0, &mut 0)?;
    let bytes = v.to_vec()?;
    Value::decode(&bytes)?;
    Ok(bytes)
}

/// The encoded argument list of a call (a list value around `args`).
pub fn encode_args(args: &[Json]) -> Result<Vec<u8>, JsonValueError> {
    encode_json(&Json::Array(args.to_vec()))
}

/// A decoded value as JSON. Recursion is bounded: a decoded value is at most
/// [`MAX_DEPTH`] deep.
pub fn to_json(v: &Value<'_>) -> Json {
    match *v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        // Finite (the decoder refuses others); serde_json prints `1.0`, never `1`.
        Value::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.into()),
        Value::Bytes(b) => {
            let mut o = serde_json::Map::new();
            o.insert(BYTES_KEY.into(), Json::String(BASE64.encode(b)));
            Json::Object(o)
        }
        Value::List(l) => Json::Array(l.iter().map(|e| to_json(&e)).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, e)| (if k.starts_with('$') { format!("${k}") } else { k.to_string() }, to_json(&e)))
                .collect(),
        ),
    }
}

/// Decodes one encoded value into JSON.
pub fn decode_json(b: &[u8]) -> Result<Json, JsonValueError> {
    Ok(to_json(&Value::decode(b)?))
}

/// A function name as the core checks it (§15.5.2): a literal subject of at most
/// [`MAX_NAME`] bytes and 15 tokens, not starting with `$`.
pub fn check_name(name: &str) -> Result<(), HostError> {
    use meshlink_core::messaging::subject::SubjectError;
    use meshlink_core::messaging::MessagingError as M;
    if name.len() > MAX_NAME {
        return Err(HostError::Messaging(M::Subject(SubjectError::TooLong { len: name.len(), max: MAX_NAME })));
    }
    if name.starts_with('$') {
        return Err(HostError::Messaging(M::Subject(SubjectError::InvalidByte { byte: b'$', at: 0 })));
    }
    // The call's subject `$RPC.<name>` must be a subject too: this bounds the name to 15
    // tokens (the core's `register_fn` checks the same).
    let check = |s: &str| meshlink_core::messaging::subject::validate_subject(s);
    check(name).and_then(|()| check(&subject(name))).map_err(|e| HostError::Messaging(M::Subject(e)))
}

/// The `$RPC.` subject of `name`.
pub(crate) fn subject(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// A request outcome read as a call's (the same mapping as the core's `call_result`).
pub(crate) fn call_outcome(r: Result<bytes::Bytes, HostError>, name: &str) -> Result<Json, HostError> {
    match r {
        Ok(b) => decode_json(&b).map_err(HostError::BadResult),
        Err(HostError::NoResponders) => Err(HostError::NoRpc),
        Err(HostError::Refused { code }) if code.to_u16() == UNKNOWN_FUNCTION => {
            Err(HostError::UnknownFunction { name: name.to_string() })
        }
        Err(HostError::Refused { code }) if code.to_u16() == BAD_ARGUMENTS => Err(HostError::BadArguments),
        Err(e) => Err(e),
    }
}

/// One registered function, as `get_funcs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    pub version: String,
}

/// Reads `get_funcs`'s result.
pub(crate) fn funcs_of(j: &Json) -> Result<Vec<FunctionInfo>, HostError> {
    serde_json::from_value(j.clone()).map_err(|_| HostError::BadResult(JsonValueError::Invalid(ValueError::Malformed)))
}

/// Reads `get_peers`'s result.
pub(crate) fn peers_of(j: &Json) -> Result<Vec<String>, HostError> {
    serde_json::from_value(j.clone()).map_err(|_| HostError::BadResult(JsonValueError::Invalid(ValueError::Malformed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round(j: Json, hex_bytes: &str) {
        let b = encode_json(&j).unwrap();
        assert_eq!(hex::encode(&b), hex_bytes, "{j}");
        assert_eq!(decode_json(&b).unwrap(), j);
    }

    #[test]
    fn every_kind_maps_as_the_spec_table_says() {
        round(json!(null), "00");
        round(json!(true), "0101");
        round(json!(-2), "0203");
        round(json!(300), "02d804");
        round(json!(1.0), "03000000000000f03f");
        round(json!("hi"), "04026869");
        round(json!({"$bytes": "3q2+7w=="}), "0504deadbeef");
        round(json!([1, "a", null]), "0603020204016100");
        round(json!({"a": 1, "b": false}), "07020161020201620100");
        round(
            json!({"args": [0.25, {"$bytes": "AQID"}, {"k": [null]}], "name": "math.add"}),
            concat!(
                "0702",
                "0461726773",
                "0603",
                "03000000000000d03f",
                "0503010203",
                "0701016b060100",
                "046e616d65",
                "04086d6174682e616464"
            ),
        );
    }

    #[test]
    fn dollar_keys_get_one_more_dollar() {
        let b = encode_json(&json!({"$$bytes": 1, "$$x": 2})).unwrap();
        let v = Value::decode(&b).unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m.get("$bytes").and_then(|v| v.as_int()), Some(1));
        assert_eq!(m.get("$x").and_then(|v| v.as_int()), Some(2));
        assert_eq!(decode_json(&b).unwrap(), json!({"$$bytes": 1, "$$x": 2}));
        assert!(matches!(encode_json(&json!({"$x": 1})), Err(JsonValueError::ReservedKey(_))));
        // `$bytes` with something else beside it, or not a string: a reserved key.
        assert!(matches!(encode_json(&json!({"$bytes": "AA==", "a": 1})), Err(JsonValueError::ReservedKey(_))));
        assert!(matches!(encode_json(&json!({"$bytes": 1})), Err(JsonValueError::ReservedKey(_))));
        assert!(matches!(encode_json(&json!({"$bytes": "!!"})), Err(JsonValueError::BadBytes(_))));
    }

    #[test]
    fn keys_sort_by_bytes() {
        let b = encode_json(&json!({"b": 1, "a": 2, "B": 3})).unwrap();
        assert_eq!(hex::encode(&b), "0703014202060161020401620202");
    }

    #[test]
    fn ints_outside_i64_and_floats() {
        round(json!(i64::MIN), "02ffffffffffffffffff01");
        round(json!(i64::MAX), "02feffffffffffffffff01");
        assert!(matches!(encode_json(&json!(u64::MAX)), Err(JsonValueError::IntOutOfRange(_))));
        assert!(matches!(encode_json(&json!(9223372036854775808u64)), Err(JsonValueError::IntOutOfRange(_))));
        // 2.0 stays a float (it has a fraction in JSON); 2 is an integer.
        assert_eq!(encode_json(&json!(2.0)).unwrap()[0], 3);
        assert_eq!(encode_json(&json!(2)).unwrap()[0], 2);
        assert_eq!(serde_json::to_string(&decode_json(&encode_json(&json!(2.0)).unwrap()).unwrap()).unwrap(), "2.0");
    }

    #[test]
    fn non_finite_is_refused() {
        // serde_json has no NaN; the writer's check is the one that holds.
        let b = OwnedValue::Float(f64::NAN).to_vec();
        assert_eq!(b, Err(ValueError::NonFinite));
        assert_eq!(JsonValueError::from(ValueError::NonFinite), JsonValueError::NonFinite);
        assert!(decode_json(&hex::decode("03000000000000f87f").unwrap()).is_err());
    }

    fn nested(n: usize) -> Json {
        let mut j = json!(null);
        for _ in 0..n {
            j = json!([j]);
        }
        j
    }

    #[test]
    fn depth_limit() {
        assert!(encode_json(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(encode_json(&nested(MAX_DEPTH + 1)), Err(JsonValueError::TooDeep { max: MAX_DEPTH }));
        // The argument list is a container too.
        assert!(encode_args(&[nested(MAX_DEPTH - 1)]).is_ok());
        assert_eq!(encode_args(&[nested(MAX_DEPTH)]), Err(JsonValueError::TooDeep { max: MAX_DEPTH }));
        // Far deeper than the limit: refused, no deep recursion.
        assert_eq!(encode_json(&nested(100)), Err(JsonValueError::TooDeep { max: MAX_DEPTH }));
    }

    #[test]
    fn count_limits() {
        assert!(encode_json(&Json::Array(vec![json!(0); MAX_LEN])).is_ok());
        assert_eq!(
            encode_json(&Json::Array(vec![json!(0); MAX_LEN + 1])),
            Err(JsonValueError::TooMany { max: MAX_LEN })
        );
        let obj: serde_json::Map<String, Json> = (0..=MAX_LEN).map(|i| (format!("k{i}"), json!(0))).collect();
        assert_eq!(encode_json(&Json::Object(obj)), Err(JsonValueError::TooMany { max: MAX_LEN }));
        let big = Json::Array(vec![Json::Array(vec![json!(0); 1000]); 5]);
        assert_eq!(encode_json(&big), Err(JsonValueError::TooMany { max: MAX_TOTAL }));
    }

    #[test]
    fn size_limit() {
        let s = "x".repeat(meshlink_core::messaging::rpc::MAX_SIZE);
        assert!(matches!(encode_json(&json!(s)), Err(JsonValueError::TooLarge { .. })));
    }

    #[test]
    fn invalid_results_are_typed() {
        assert_eq!(decode_json(&[0x08]), Err(JsonValueError::Invalid(ValueError::Malformed)));
        assert_eq!(decode_json(&[0x04, 0x05]), Err(JsonValueError::Invalid(ValueError::Truncated)));
        assert_eq!(decode_json(&[0x00, 0x00]), Err(JsonValueError::Invalid(ValueError::Trailing)));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("math.add").is_ok());
        assert!(check_name("$x").is_err());
        assert!(check_name("a.*").is_err());
        assert!(check_name(&"a".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(subject("get_funcs"), "$RPC.get_funcs");
    }
}
