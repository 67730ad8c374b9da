//! The `Hello` each side sends inside the handshake (F15): who it is and what it accepts.
//! Every field is bounded, and a Hello never exceeds [`HELLO_MAX_LEN`] encoded bytes.
//!
//! Forward compatibility (PROTOCOL.md §8.6): after the postcard fields comes an extension
//! tail of TLVs (`type u8 | len u8 | value`), ended by the end of the Hello or by a 0x00
//! byte that only zeros may follow (the datagram IK padding). A node keeps every extension
//! it does not know without interpreting it, so a newer node can add a field and an older
//! one still connects.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use super::WireError;

pub const NAME_MAX: usize = 32;
pub const CAPABILITIES_MAX: usize = 8;
pub const CAPABILITY_LEN_MAX: usize = 24;
pub const LOCATION_MAX: usize = 32;
pub const RESOURCES_MAX: usize = 4;
pub const KEY_LEN_MAX: usize = 16;
pub const METADATA_MAX: usize = 4;
pub const METADATA_VALUE_MAX: usize = 64;
/// Upper bound of an encoded Hello, extensions included. The postcard fields alone take at
/// most 701 bytes (checked by a test that encodes a Hello with every field full).
pub const HELLO_MAX_LEN: usize = 728;
/// Most extensions in one Hello.
pub const EXT_MAX: usize = 8;
/// Most bytes of the whole extension tail (every TLV's type, length and value).
pub const EXT_LEN_MAX: usize = 128;
/// The type byte that ends the extension tail (never an extension).
pub const EXT_END: u8 = 0;

/// Node information exchanged at handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Hello {
    /// The sender's wire version (also bound in the prologue).
    pub version: u8,
    /// Human-readable node name (F37).
    pub name: String<NAME_MAX>,
    /// Capabilities, e.g. `"relay"`, `"gpu"`.
    pub capabilities: Vec<String<CAPABILITY_LEN_MAX>, CAPABILITIES_MAX>,
    /// Free-form location, e.g. `"eu-west"`.
    pub location: String<LOCATION_MAX>,
    /// Numeric resources, e.g. `("cpu", 4)`, `("mem_mb", 512)`.
    pub resources: Vec<(String<KEY_LEN_MAX>, u32), RESOURCES_MAX>,
    /// Free-form metadata pairs.
    pub metadata: Vec<(String<KEY_LEN_MAX>, String<METADATA_VALUE_MAX>), METADATA_MAX>,
    /// The largest stream frame body this node accepts.
    pub max_frame: u32,
    /// The largest datagram this node accepts.
    pub max_datagram: u32,
    /// The largest application message this node reassembles (F31).
    pub max_message: u32,
    /// The extension tail (not postcard: encoded after the fields above).
    #[serde(skip)]
    pub extensions: Extensions,
}

impl Hello {
    /// `self` changed by `f` (the struct is `#[non_exhaustive]`; see [`crate::Config::with`]).
    #[must_use]
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

/// A Hello's extensions, held as their validated TLV bytes: at most [`EXT_MAX`] of them in
/// [`EXT_LEN_MAX`] bytes, each type at most once, type 0 never.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    tlv: Vec<u8, EXT_LEN_MAX>,
}

impl Extensions {
    /// Every extension, in wire order: (type, value).
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        let mut rest = self.tlv.as_slice();
        core::iter::from_fn(move || {
            let (&ty, r) = rest.split_first()?;
            let (&len, r) = r.split_first()?;
            let (value, r) = r.split_at_checked(usize::from(len))?;
            rest = r;
            Some((ty, value))
        })
    }

    /// The value of extension `ty`, if the peer sent it.
    pub fn get(&self, ty: u8) -> Option<&[u8]> {
        self.iter().find(|(t, _)| *t == ty).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.tlv.is_empty()
    }

    /// The encoded tail (TLVs, without a terminator).
    pub fn as_bytes(&self) -> &[u8] {
        &self.tlv
    }

    /// Adds extension `ty`. Type 0 is reserved; a type may appear once; at most
    /// [`EXT_MAX`] extensions fit in [`EXT_LEN_MAX`] bytes.
    pub fn insert(&mut self, ty: u8, value: &[u8]) -> Result<(), WireError> {
        if ty == EXT_END {
            return Err(WireError::InvalidExtension);
        }
        if self.get(ty).is_some() {
            return Err(WireError::DuplicateExtension { ty });
        }
        if self.len() >= EXT_MAX {
            return Err(WireError::TooManyExtensions { limit: EXT_MAX });
        }
        let len = u8::try_from(value.len()).map_err(|_| WireError::FieldTooLong { limit: EXT_LEN_MAX })?;
        if self.tlv.len() + 2 + value.len() > EXT_LEN_MAX {
            return Err(WireError::FieldTooLong { limit: EXT_LEN_MAX });
        }
        // Cannot fail: the room was checked above.
        let _ = self.tlv.extend_from_slice(&[ty, len]);
        let _ = self.tlv.extend_from_slice(value);
        Ok(())
    }

    /// Parses the bytes after a Hello's postcard fields. Returns the extensions and how
    /// many bytes they took (terminator and padding excluded).
    fn parse(mut b: &[u8]) -> Result<(Self, usize), WireError> {
        let mut ext = Extensions::default();
        let mut used = 0;
        while let Some((&ty, r)) = b.split_first() {
            if ty == EXT_END {
                // Padding: only zeros may follow.
                if r.iter().any(|&x| x != 0) {
                    return Err(WireError::MalformedPacket);
                }
                break;
            }
            let (&len, r) = r.split_first().ok_or(WireError::MalformedPacket)?;
            let (value, r) = r.split_at_checked(usize::from(len)).ok_or(WireError::MalformedPacket)?;
            ext.insert(ty, value)?;
            used += 2 + value.len();
            b = r;
        }
        Ok((ext, used))
    }
}

impl Hello {
    /// A Hello with just a name. Fails if the name is longer than [`NAME_MAX`].
    pub fn named(name: &str) -> Result<Self, WireError> {
        Ok(Hello { name: bounded(name)?, ..Hello::default() })
    }

    /// Adds a capability.
    pub fn with_capability(mut self, cap: &str) -> Result<Self, WireError> {
        self.capabilities.push(bounded(cap)?).map_err(|_| WireError::FieldTooLong { limit: CAPABILITIES_MAX })?;
        Ok(self)
    }

    /// Whether this node announced `cap`.
    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c.as_str() == cap)
    }

    /// Adds an extension (see [`Extensions::insert`]).
    pub fn with_extension(mut self, ty: u8, value: &[u8]) -> Result<Self, WireError> {
        self.extensions.insert(ty, value)?;
        Ok(self)
    }

    /// Encodes the fields, then the extension tail (no terminator). The whole Hello must
    /// fit [`HELLO_MAX_LEN`] bytes, else `FieldTooLong { limit: HELLO_MAX_LEN }`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = postcard::to_slice(self, out)
            .map(|s| s.len())
            .map_err(|_| WireError::BufferTooSmall { required: HELLO_MAX_LEN })?;
        let tail = self.extensions.as_bytes();
        if n + tail.len() > HELLO_MAX_LEN {
            return Err(WireError::FieldTooLong { limit: HELLO_MAX_LEN });
        }
        let dst = out.get_mut(n..n + tail.len()).ok_or(WireError::BufferTooSmall { required: n + tail.len() })?;
        dst.copy_from_slice(tail);
        Ok(n + tail.len())
    }

    /// Whether the limits a peer announced are usable: every record we send must fit,
    /// and a node below these cannot even receive a handshake.
    pub fn limits_valid(&self) -> bool {
        let min = crate::session::HANDSHAKE_RECORD_MAX as u32;
        self.max_frame >= min
            && self.max_frame <= crate::wire::MAX_FRAME_LEN as u32
            && self.max_datagram >= min.min(1200)
    }

    /// Decodes a Hello: the postcard fields, then the extension tail up to the end or to
    /// a 0x00 byte followed only by zeros (the padding of handshake message 1 on
    /// datagrams). A Hello longer than [`HELLO_MAX_LEN`] (padding excluded) is refused.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        let (mut h, rest) = postcard::take_from_bytes::<Hello>(b).map_err(|_| WireError::MalformedPacket)?;
        let fields = b.len() - rest.len();
        let (ext, used) = Extensions::parse(rest)?;
        if fields + used > HELLO_MAX_LEN {
            return Err(WireError::FieldTooLong { limit: HELLO_MAX_LEN });
        }
        h.extensions = ext;
        Ok(h)
    }

    /// The same as [`Hello::decode`]: padding is part of the one rule.
    pub fn decode_padded(b: &[u8]) -> Result<Self, WireError> {
        Hello::decode(b)
    }
}

/// Copies `s` into a bounded string.
pub fn bounded<const N: usize>(s: &str) -> Result<String<N>, WireError> {
    let mut out = String::new();
    out.push_str(s).map_err(|_| WireError::FieldTooLong { limit: N })?;
    Ok(out)
}
