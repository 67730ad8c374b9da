//! [`OwnedValue`] (feature `alloc`): a value that owns its parts, for hosts and bindings.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Value, ValueError, ValueWriter, MAX_DEPTH};

/// A value that owns its strings, bytes and elements. Map keys sort by bytes, as the
/// encoding requires.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<OwnedValue>),
    Map(BTreeMap<String, OwnedValue>),
}

impl OwnedValue {
    /// Copies a decoded value. It recurses, but only as deep as a decoded value can be
    /// nested ([`MAX_DEPTH`]): the decode checked that before.
    pub fn from_value(v: &Value<'_>) -> OwnedValue {
        match *v {
            Value::Null => OwnedValue::Null,
            Value::Bool(b) => OwnedValue::Bool(b),
            Value::Int(i) => OwnedValue::Int(i),
            Value::Float(f) => OwnedValue::Float(f),
            Value::Str(s) => OwnedValue::Str(s.into()),
            Value::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Value::List(l) => OwnedValue::List(l.iter().map(|e| OwnedValue::from_value(&e)).collect()),
            Value::Map(m) => OwnedValue::Map(m.iter().map(|(k, e)| (k.into(), OwnedValue::from_value(&e))).collect()),
        }
    }

    /// Decodes bytes under the default limits.
    pub fn decode(b: &[u8]) -> Result<OwnedValue, ValueError> {
        Value::decode(b).map(|v| OwnedValue::from_value(&v))
    }

    /// Writes the value; deeper than [`MAX_DEPTH`] is [`ValueError::TooDeep`].
    pub fn write(&self, w: &mut ValueWriter<'_>) -> Result<(), ValueError> {
        self.write_at(w, 0)
    }

    fn write_at(&self, w: &mut ValueWriter<'_>, depth: usize) -> Result<(), ValueError> {
        let inner = depth + 1;
        if matches!(self, OwnedValue::List(_) | OwnedValue::Map(_)) && inner > MAX_DEPTH {
            return Err(ValueError::TooDeep { max: MAX_DEPTH });
        }
        match self {
            OwnedValue::Null => w.null().map(|_| ()),
            OwnedValue::Bool(b) => w.bool(*b).map(|_| ()),
            OwnedValue::Int(i) => w.int(*i).map(|_| ()),
            OwnedValue::Float(f) => w.float(*f).map(|_| ()),
            OwnedValue::Str(s) => w.str(s).map(|_| ()),
            OwnedValue::Bytes(b) => w.bytes(b).map(|_| ()),
            OwnedValue::List(l) => {
                w.list(l.len())?;
                l.iter().try_for_each(|e| e.write_at(w, inner))
            }
            OwnedValue::Map(m) => {
                w.map(m.len())?;
                m.iter().try_for_each(|(k, e)| {
                    w.key(k)?;
                    e.write_at(w, inner)
                })
            }
        }
    }

    /// The encoding in a new vector (grown until it fits).
    pub fn to_vec(&self) -> Result<Vec<u8>, ValueError> {
        let mut size = 256;
        loop {
            let mut buf = alloc::vec![0u8; size];
            let mut w = ValueWriter::new(&mut buf);
            match self.write(&mut w) {
                Ok(()) => {
                    let n = w.len();
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(ValueError::TooLarge { .. }) if size < super::MAX_SIZE * 16 => size *= 4,
                Err(e) => return Err(e),
            }
        }
    }
}
