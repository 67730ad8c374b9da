use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use serde::Serialize;

use super::*;

/// The value type as a serde enum: postcard must encode it to the same bytes.
#[derive(Serialize)]
enum Mirror {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Mirror>),
    Map(BTreeMap<String, Mirror>),
}

fn mirror(v: &OwnedValue) -> Mirror {
    match v {
        OwnedValue::Null => Mirror::Null,
        OwnedValue::Bool(b) => Mirror::Bool(*b),
        OwnedValue::Int(i) => Mirror::Int(*i),
        OwnedValue::Float(f) => Mirror::Float(*f),
        OwnedValue::Str(s) => Mirror::Str(s.clone()),
        OwnedValue::Bytes(b) => Mirror::Bytes(b.clone()),
        OwnedValue::List(l) => Mirror::List(l.iter().map(mirror).collect()),
        OwnedValue::Map(m) => Mirror::Map(m.iter().map(|(k, v)| (k.clone(), mirror(v))).collect()),
    }
}

fn samples() -> Vec<OwnedValue> {
    use OwnedValue as O;
    let mut m = BTreeMap::new();
    m.insert("b".into(), O::List(vec![O::Int(1), O::Null]));
    m.insert("a".into(), O::Str("x".into()));
    m.insert("".into(), O::Bool(false));
    vec![
        O::Null,
        O::Bool(true),
        O::Bool(false),
        O::Int(0),
        O::Int(-1),
        O::Int(63),
        O::Int(-64),
        O::Int(64),
        O::Int(i64::MAX),
        O::Int(i64::MIN),
        O::Float(1.5),
        O::Float(-0.0),
        O::Float(f64::MAX),
        O::Str(String::new()),
        O::Str("héllo".into()),
        O::Bytes(vec![]),
        O::Bytes(vec![0, 255, 7]),
        O::List(vec![]),
        O::Map(BTreeMap::new()),
        O::Map(m.clone()),
        O::List(vec![O::Map(m), O::Bytes(vec![1; 200]), O::Str("y".repeat(300))]),
    ]
}

#[test]
fn every_kind_round_trips_and_matches_postcard() {
    for v in samples() {
        let bytes = v.to_vec().unwrap();
        let mut pc = [0u8; 4096];
        let want = postcard::to_slice(&mirror(&v), &mut pc).unwrap();
        assert_eq!(&bytes[..], &want[..], "{v:?}");
        let d = Value::decode(&bytes).unwrap();
        assert_eq!(OwnedValue::from_value(&d), v);
        // A borrowed value writes back the same bytes.
        let mut out = [0u8; 4096];
        let mut w = ValueWriter::new(&mut out);
        d.write(&mut w).unwrap();
        assert_eq!(w.as_bytes(), &bytes[..]);
        // Every cut is an error, never a panic; one more byte is Trailing.
        for cut in 0..bytes.len() {
            assert!(Value::decode(&bytes[..cut]).is_err(), "{v:?} cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Value::decode(&longer), Err(ValueError::Trailing));
    }
}

#[test]
fn byte_layouts() {
    let enc = |v: OwnedValue| v.to_vec().unwrap();
    assert_eq!(enc(OwnedValue::Null), [0x00]);
    assert_eq!(enc(OwnedValue::Bool(true)), [0x01, 0x01]);
    assert_eq!(enc(OwnedValue::Int(-2)), [0x02, 0x03]);
    assert_eq!(enc(OwnedValue::Int(300)), [0x02, 0xd8, 0x04]);
    assert_eq!(enc(OwnedValue::Float(1.0)), [0x03, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
    assert_eq!(enc(OwnedValue::Str("hi".into())), [0x04, 0x02, b'h', b'i']);
    assert_eq!(enc(OwnedValue::Bytes(vec![0xab])), [0x05, 0x01, 0xab]);
    assert_eq!(enc(OwnedValue::List(vec![OwnedValue::Null])), [0x06, 0x01, 0x00]);
    let m = BTreeMap::from([("k".to_string(), OwnedValue::Int(1))]);
    assert_eq!(enc(OwnedValue::Map(m)), [0x07, 0x01, 0x01, b'k', 0x02, 0x02]);
}

fn nested(depth: usize) -> Vec<u8> {
    let mut b = vec![];
    for _ in 0..depth {
        b.extend_from_slice(&[tag::LIST, 1]);
    }
    b.push(tag::NULL);
    b
}

#[test]
fn depth_limit_at_its_edge() {
    assert!(Value::decode(&nested(MAX_DEPTH)).is_ok());
    assert_eq!(Value::decode(&nested(MAX_DEPTH + 1)), Err(ValueError::TooDeep { max: MAX_DEPTH }));
    // Far deeper input stops at the limit without recursion.
    let big = Limits { max_size: usize::MAX, ..Limits::DEFAULT };
    assert_eq!(Value::decode_with(&nested(50_000), &big), Err(ValueError::TooDeep { max: MAX_DEPTH }));
    let lim = Limits { max_depth: 3, ..Limits::DEFAULT };
    assert!(Value::decode_with(&nested(3), &lim).is_ok());
    assert_eq!(Value::decode_with(&nested(4), &lim), Err(ValueError::TooDeep { max: 3 }));
    // The owned writer refuses what the decoder would.
    let mut v = OwnedValue::Null;
    for _ in 0..=MAX_DEPTH {
        v = OwnedValue::List(vec![v]);
    }
    assert_eq!(v.to_vec(), Err(ValueError::TooDeep { max: MAX_DEPTH }));
}

fn list_of_nulls(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n + 8];
    let mut w = ValueWriter::new(&mut out);
    w.list(n).unwrap();
    for _ in 0..n {
        w.null().unwrap();
    }
    let len = w.len();
    out.truncate(len);
    out
}

#[test]
fn count_limits_at_their_edge() {
    assert_eq!(Value::decode(&list_of_nulls(MAX_LEN)).unwrap().as_list().unwrap().len(), MAX_LEN);
    assert_eq!(Value::decode(&list_of_nulls(MAX_LEN + 1)), Err(ValueError::TooMany { max: MAX_LEN }));
    // A claimed count is checked before any element is read.
    assert_eq!(Value::decode(&[tag::MAP, 0xff, 0xff, 0x03]), Err(ValueError::TooMany { max: MAX_LEN }));
    // Total: an outer list (1) of 4 lists (4) holding `inner` nulls in all.
    let total = |inner: usize| {
        let mut out = vec![0u8; 8 * 1024];
        let mut w = ValueWriter::new(&mut out);
        w.list(4).unwrap();
        let sizes = [1023, 1023, 1023, inner - 3 * 1023];
        for s in sizes {
            w.list(s).unwrap();
            for _ in 0..s {
                w.null().unwrap();
            }
        }
        let n = w.len();
        out.truncate(n);
        out
    };
    assert!(Value::decode(&total(MAX_TOTAL - 5)).is_ok());
    assert_eq!(Value::decode(&total(MAX_TOTAL - 4)), Err(ValueError::TooMany { max: MAX_TOTAL }));
}

#[test]
fn size_limit_at_its_edge() {
    // Tag, a 3-byte length, the bytes.
    let at = |n: usize| {
        let mut out = vec![0u8; n + 8];
        let mut w = ValueWriter::new(&mut out);
        w.bytes(&vec![7u8; n]).unwrap();
        let len = w.len();
        out.truncate(len);
        out
    };
    assert_eq!(at(MAX_SIZE - 4).len(), MAX_SIZE);
    assert!(Value::decode(&at(MAX_SIZE - 4)).is_ok());
    assert_eq!(Value::decode(&at(MAX_SIZE - 3)), Err(ValueError::TooLarge { max: MAX_SIZE }));
    let mut small = [0u8; 3];
    let mut w = ValueWriter::new(&mut small);
    assert_eq!(w.str("four").err(), Some(ValueError::TooLarge { max: 3 }));
}

#[test]
fn malformed_inputs_have_typed_errors() {
    let cases: &[(&[u8], ValueError)] = &[
        (&[], ValueError::Truncated),
        (&[8], ValueError::Malformed),
        (&[tag::BOOL, 2], ValueError::Malformed),
        (&[tag::INT, 0x80, 0x00], ValueError::Malformed),
        (&[tag::INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], ValueError::Malformed),
        (&[tag::STR, 1, 0xff], ValueError::Malformed),
        (&[tag::STR, 5, b'a'], ValueError::Truncated),
        (&[tag::FLOAT, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f], ValueError::NonFinite),
        (&[tag::FLOAT, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f], ValueError::NonFinite),
        (&[tag::MAP, 2, 1, b'b', 0, 1, b'a', 0], ValueError::KeyOrder),
        (&[tag::MAP, 2, 1, b'a', 0, 1, b'a', 0], ValueError::KeyOrder),
        (&[tag::LIST, 2, 0], ValueError::Truncated),
        (&[tag::NULL, 0], ValueError::Trailing),
    ];
    for (b, e) in cases {
        assert_eq!(Value::decode(b), Err(*e), "{b:02x?}");
    }
    let mut buf = [0u8; 16];
    assert_eq!(ValueWriter::new(&mut buf).float(f64::NAN).err(), Some(ValueError::NonFinite));
}

#[test]
fn lazy_access() {
    let m = BTreeMap::from([("a".to_string(), OwnedValue::Int(5)), ("b".to_string(), OwnedValue::Str("z".into()))]);
    let v = OwnedValue::List(vec![OwnedValue::Map(m), OwnedValue::Bool(true)]);
    let bytes = v.to_vec().unwrap();
    let d = Value::decode(&bytes).unwrap();
    let mut it = d.as_list().unwrap().iter();
    let map = it.next().unwrap().as_map().unwrap();
    assert_eq!(map.get("b"), Some(Value::Str("z")));
    assert_eq!(map.get("a").and_then(|v| v.as_int()), Some(5));
    assert_eq!(map.get("c"), None);
    assert_eq!(it.next(), Some(Value::Bool(true)));
    assert_eq!(it.next(), None);
}
