//! The `Hello` each side sends inside the handshake (F15): who it is and what it accepts.
//! Every field is bounded, so a Hello never exceeds [`HELLO_MAX_LEN`] encoded bytes.

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
/// Upper bound of an encoded Hello (checked by a test that encodes a Hello with every field full).
pub const HELLO_MAX_LEN: usize = 728;

/// Node information exchanged at handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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

    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        postcard::to_slice(self, out)
            .map(|s| s.len())
            .map_err(|_| WireError::BufferTooSmall { required: HELLO_MAX_LEN })
    }

    /// Whether the limits a peer announced are usable: every record we send must fit,
    /// and a node below these cannot even receive a handshake.
    pub fn limits_valid(&self) -> bool {
        let min = crate::session::HANDSHAKE_RECORD_MAX as u32;
        self.max_frame >= min
            && self.max_frame <= crate::wire::MAX_FRAME_LEN as u32
            && self.max_datagram >= min.min(1200)
    }

    /// Decodes a Hello followed only by zero padding (handshake message 1 on datagrams).
    pub fn decode_padded(b: &[u8]) -> Result<Self, WireError> {
        match postcard::take_from_bytes::<Hello>(b) {
            Ok((h, rest)) if rest.iter().all(|&x| x == 0) => Ok(h),
            _ => Err(WireError::MalformedPacket),
        }
    }

    /// Decodes a Hello; trailing bytes are rejected.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        match postcard::take_from_bytes::<Hello>(b) {
            Ok((h, [])) => Ok(h),
            _ => Err(WireError::MalformedPacket),
        }
    }
}

/// Copies `s` into a bounded string.
pub fn bounded<const N: usize>(s: &str) -> Result<String<N>, WireError> {
    let mut out = String::new();
    out.push_str(s).map_err(|_| WireError::FieldTooLong { limit: N })?;
    Ok(out)
}
