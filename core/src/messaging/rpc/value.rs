//! The RPC value type (PROTOCOL.md §15.5.1): null, bool, integer (i64), float (f64,
//! finite), string, bytes, list and map (string keys), encoded as the postcard form of a
//! tagged enum and read **zero-copy**: a [`Value`] borrows the message, and lists and maps
//! are iterated lazily.
//!
//! Every decode first walks the whole value once with a bounded, non-recursive walker (an
//! explicit stack of [`MAX_DEPTH`] frames), checking the [`Limits`]: a peer-chosen nesting
//! never recurses and nothing is allocated. After that walk, reading the value cannot fail.
//!
//! ```
//! use meshlink_core::messaging::rpc::{Value, ValueWriter};
//! let mut buf = [0u8; 64];
//! let mut w = ValueWriter::new(&mut buf);
//! w.list(3).unwrap().int(-2).unwrap().str("hi").unwrap().map(1).unwrap().key("ok").unwrap().bool(true).unwrap();
//! let n = w.len();
//! let v = Value::decode(&buf[..n]).unwrap();
//! let items: Vec<Value> = v.as_list().unwrap().iter().collect();
//! assert_eq!(items[0], Value::Int(-2));
//! assert_eq!(items[1], Value::Str("hi"));
//! ```

use core::fmt;

/// The deepest nesting of lists and maps: a value inside 16 containers is the deepest.
pub const MAX_DEPTH: usize = 16;
/// The most elements of one list, or entries of one map.
pub const MAX_LEN: usize = 1024;
/// The most values in one encoded value, containers and scalars counted (keys are not).
pub const MAX_TOTAL: usize = 4096;
/// The largest encoded value by default (the node's default `max_message`).
pub const MAX_SIZE: usize = 64 * 1024;

/// The tags: the postcard variant index of each kind, one byte.
pub mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const STR: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const LIST: u8 = 6;
    pub const MAP: u8 = 7;
}

/// The limits a decode checks; [`Limits::DEFAULT`] holds the named constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most [`MAX_DEPTH`] (a larger value is lowered to it: the walker's stack size).
    pub max_depth: usize,
    pub max_len: usize,
    pub max_total: usize,
    pub max_size: usize,
}

impl Limits {
    pub const DEFAULT: Limits =
        Limits { max_depth: MAX_DEPTH, max_len: MAX_LEN, max_total: MAX_TOTAL, max_size: MAX_SIZE };
    /// For re-walking a value that was already checked.
    const TRUSTED: Limits =
        Limits { max_depth: MAX_DEPTH, max_len: usize::MAX, max_total: usize::MAX, max_size: usize::MAX };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why bytes are not a valid value, or a value cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// More than `max` nested lists and maps.
    TooDeep { max: usize },
    /// A container of more than `max` elements, or more than `max` values in all.
    TooMany { max: usize },
    /// More than `max` bytes (decode), or the writer's buffer is full (encode).
    TooLarge { max: usize },
    /// Ends inside a value.
    Truncated,
    /// An unknown tag (`8..`), a bool byte other than `0`/`1`, an over-long or overflowing
    /// varint, invalid UTF-8.
    Malformed,
    /// A float that is NaN or infinite (JSON has none).
    NonFinite,
    /// Map keys not in strictly ascending byte order (so duplicate keys are refused too).
    KeyOrder,
    /// Bytes after the value.
    Trailing,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValueError::TooDeep { max } => write!(f, "value nested deeper than {max}"),
            ValueError::TooMany { max } => write!(f, "value has more than {max} elements"),
            ValueError::TooLarge { max } => write!(f, "value larger than {max} bytes"),
            ValueError::Truncated => f.write_str("value truncated"),
            ValueError::Malformed => f.write_str("malformed value"),
            ValueError::NonFinite => f.write_str("non-finite float"),
            ValueError::KeyOrder => f.write_str("map keys not in ascending order"),
            ValueError::Trailing => f.write_str("bytes after the value"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ValueError {}

/// One decoded value, borrowing the bytes it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    List(List<'a>),
    Map(Map<'a>),
}

/// A list: its element count and the exact bytes of its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List<'a> {
    len: usize,
    data: &'a [u8],
}

/// A map: its entry count and the exact bytes of its entries (key, value, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Map<'a> {
    len: usize,
    data: &'a [u8],
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64, ValueError> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos).ok_or(ValueError::Truncated)?;
        *pos += 1;
        // The 10th byte holds bit 63 only; a zero last byte of a longer varint is
        // non-canonical: one value, one encoding.
        if (i == 9 && byte > 1) || (i > 0 && byte == 0) {
            return Err(ValueError::Malformed);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ValueError::Malformed)
}

fn take<'a>(b: &'a [u8], pos: &mut usize, n: u64) -> Result<&'a [u8], ValueError> {
    let left = (b.len() - *pos) as u64;
    if n > left {
        return Err(ValueError::Truncated);
    }
    let s = &b[*pos..*pos + n as usize];
    *pos += n as usize;
    Ok(s)
}

fn string<'a>(b: &'a [u8], pos: &mut usize) -> Result<&'a str, ValueError> {
    let n = varint(b, pos)?;
    core::str::from_utf8(take(b, pos, n)?).map_err(|_| ValueError::Malformed)
}

#[derive(Clone, Copy)]
struct Frame {
    left: usize,
    map: bool,
    /// The previous key of a map (offsets into the input), for the order check.
    prev: (usize, usize),
    has_prev: bool,
}

const EMPTY_FRAME: Frame = Frame { left: 0, map: false, prev: (0, 0), has_prev: false };

/// Walks the one value starting at `start`, checking `lim`; returns where it ends.
/// Non-recursive: the nesting is an explicit stack of `MAX_DEPTH` frames.
fn walk(b: &[u8], start: usize, lim: &Limits) -> Result<usize, ValueError> {
    let max_depth = lim.max_depth.min(MAX_DEPTH);
    let mut stack = [EMPTY_FRAME; MAX_DEPTH];
    let mut depth = 0usize;
    let mut total = 0usize;
    let mut pos = start;
    loop {
        if depth > 0 {
            let f = &mut stack[depth - 1];
            if f.left == 0 {
                depth -= 1;
                if depth == 0 {
                    return Ok(pos);
                }
                continue;
            }
            f.left -= 1;
            if f.map {
                let key = string(b, &mut pos)?.as_bytes();
                if f.has_prev && b[f.prev.0..f.prev.1] >= *key {
                    return Err(ValueError::KeyOrder);
                }
                f.prev = (pos - key.len(), pos);
                f.has_prev = true;
            }
        }
        total += 1;
        if total > lim.max_total {
            return Err(ValueError::TooMany { max: lim.max_total });
        }
        let t = varint(b, &mut pos)?;
        match t {
            0 => {}
            1 => match take(b, &mut pos, 1)? {
                [0] | [1] => {}
                _ => return Err(ValueError::Malformed),
            },
            2 => {
                varint(b, &mut pos)?;
            }
            3 => {
                let raw = take(b, &mut pos, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(raw);
                if !f64::from_le_bytes(a).is_finite() {
                    return Err(ValueError::NonFinite);
                }
            }
            4 => {
                string(b, &mut pos)?;
            }
            5 => {
                let n = varint(b, &mut pos)?;
                take(b, &mut pos, n)?;
            }
            6 | 7 => {
                let n = varint(b, &mut pos)?;
                if n > lim.max_len as u64 {
                    return Err(ValueError::TooMany { max: lim.max_len });
                }
                if depth == max_depth {
                    return Err(ValueError::TooDeep { max: max_depth });
                }
                stack[depth] = Frame { left: n as usize, map: t == 7, ..EMPTY_FRAME };
                depth += 1;
                continue;
            }
            _ => return Err(ValueError::Malformed),
        }
        if depth == 0 {
            return Ok(pos);
        }
    }
}

/// Reads the value at `pos` of bytes already walked (cannot fail on those; any other
/// input gives an error, never a panic).
fn read<'a>(b: &'a [u8], pos: &mut usize) -> Result<Value<'a>, ValueError> {
    let start = *pos;
    Ok(match varint(b, pos)? {
        0 => Value::Null,
        1 => Value::Bool(take(b, pos, 1)? == [1]),
        2 => {
            let z = varint(b, pos)?;
            Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
        }
        3 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(take(b, pos, 8)?);
            Value::Float(f64::from_le_bytes(a))
        }
        4 => Value::Str(string(b, pos)?),
        5 => {
            let n = varint(b, pos)?;
            Value::Bytes(take(b, pos, n)?)
        }
        t @ (6 | 7) => {
            let len = varint(b, pos)? as usize;
            let body = *pos;
            let end = walk(b, start, &Limits::TRUSTED)?;
            *pos = end;
            let data = &b[body..end];
            if t == 6 {
                Value::List(List { len, data })
            } else {
                Value::Map(Map { len, data })
            }
        }
        _ => return Err(ValueError::Malformed),
    })
}

impl<'a> Value<'a> {
    /// Decodes `b`, exactly one value, under [`Limits::DEFAULT`].
    pub fn decode(b: &'a [u8]) -> Result<Self, ValueError> {
        Self::decode_with(b, &Limits::DEFAULT)
    }

    /// Decodes `b`, exactly one value, under `lim`.
    pub fn decode_with(b: &'a [u8], lim: &Limits) -> Result<Self, ValueError> {
        if b.len() > lim.max_size {
            return Err(ValueError::TooLarge { max: lim.max_size });
        }
        let end = walk(b, 0, lim)?;
        if end != b.len() {
            return Err(ValueError::Trailing);
        }
        let mut pos = 0;
        read(b, &mut pos)
    }

    pub fn as_list(&self) -> Option<List<'a>> {
        match self {
            Value::List(l) => Some(*l),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<Map<'a>> {
        match self {
            Value::Map(m) => Some(*m),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Writes this value (a list or map is copied as its bytes: no recursion).
    pub fn write(&self, w: &mut ValueWriter<'_>) -> Result<(), ValueError> {
        match *self {
            Value::Null => w.null(),
            Value::Bool(v) => w.bool(v),
            Value::Int(v) => w.int(v),
            Value::Float(v) => w.float(v),
            Value::Str(s) => w.str(s),
            Value::Bytes(s) => w.bytes(s),
            Value::List(l) => w.list(l.len).and_then(|w| w.raw(l.data)),
            Value::Map(m) => w.map(m.len).and_then(|w| w.raw(m.data)),
        }
        .map(|_| ())
    }
}

impl<'a> List<'a> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> ListIter<'a> {
        ListIter { left: self.len, data: self.data, pos: 0 }
    }
}

impl<'a> Map<'a> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> MapIter<'a> {
        MapIter { left: self.len, data: self.data, pos: 0 }
    }
    /// The value of `key`: a walk over the entries (at most [`MAX_LEN`]).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// The elements of a [`List`], in order.
#[derive(Debug, Clone)]
pub struct ListIter<'a> {
    left: usize,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read(self.data, &mut self.pos).ok()
    }
}

/// The entries of a [`Map`], in key order.
#[derive(Debug, Clone)]
pub struct MapIter<'a> {
    left: usize,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for MapIter<'a> {
    type Item = (&'a str, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let k = string(self.data, &mut self.pos).ok()?;
        Some((k, read(self.data, &mut self.pos).ok()?))
    }
}

/// Writes a value into a caller buffer, kind by kind: a list or map header says how many
/// elements (entries: a [`ValueWriter::key`] then a value) follow. The writer does not
/// track the structure: [`Value::decode`] of the result checks it (counts, key order).
#[derive(Debug)]
pub struct ValueWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

type W<'s, 'b> = Result<&'s mut ValueWriter<'b>, ValueError>;

impl<'b> ValueWriter<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        ValueWriter { buf, pos: 0 }
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    fn raw(&mut self, b: &[u8]) -> W<'_, 'b> {
        let end = self.pos.checked_add(b.len()).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(ValueError::TooLarge { max: self.buf.len() })?;
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
        Ok(self)
    }
    fn varint(&mut self, mut v: u64) -> W<'_, 'b> {
        let mut tmp = [0u8; 10];
        let mut n = 0;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                tmp[n] = byte;
                n += 1;
                break;
            }
            tmp[n] = byte | 0x80;
            n += 1;
        }
        self.raw(&tmp[..n])
    }
    pub(crate) fn raw_varint(&mut self, v: u64) -> W<'_, 'b> {
        self.varint(v)
    }
    fn tagged(&mut self, t: u8, v: u64) -> W<'_, 'b> {
        self.raw(&[t])?.varint(v)
    }

    pub fn null(&mut self) -> W<'_, 'b> {
        self.raw(&[tag::NULL])
    }
    pub fn bool(&mut self, v: bool) -> W<'_, 'b> {
        self.raw(&[tag::BOOL, v as u8])
    }
    /// An integer, zigzag-encoded as postcard's `i64`.
    pub fn int(&mut self, v: i64) -> W<'_, 'b> {
        self.tagged(tag::INT, ((v << 1) ^ (v >> 63)) as u64)
    }
    /// A finite float ([`ValueError::NonFinite`] otherwise): 8 bytes little-endian.
    pub fn float(&mut self, v: f64) -> W<'_, 'b> {
        if !v.is_finite() {
            return Err(ValueError::NonFinite);
        }
        self.raw(&[tag::FLOAT])?.raw(&v.to_le_bytes())
    }
    pub fn str(&mut self, s: &str) -> W<'_, 'b> {
        self.tagged(tag::STR, s.len() as u64)?.raw(s.as_bytes())
    }
    pub fn bytes(&mut self, b: &[u8]) -> W<'_, 'b> {
        self.tagged(tag::BYTES, b.len() as u64)?.raw(b)
    }
    /// A list header: `n` values follow.
    pub fn list(&mut self, n: usize) -> W<'_, 'b> {
        self.tagged(tag::LIST, n as u64)
    }
    /// A map header: `n` entries follow, each a [`ValueWriter::key`] then a value, keys in
    /// strictly ascending byte order.
    pub fn map(&mut self, n: usize) -> W<'_, 'b> {
        self.tagged(tag::MAP, n as u64)
    }
    /// A map key (no tag: keys are always strings).
    pub fn key(&mut self, k: &str) -> W<'_, 'b> {
        self.varint(k.len() as u64)?.raw(k.as_bytes())
    }
}

#[cfg(feature = "alloc")]
mod owned;
#[cfg(feature = "alloc")]
pub use owned::OwnedValue;

#[cfg(all(test, feature = "std"))]
mod tests;
