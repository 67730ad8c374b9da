//! RPC (F26, PROTOCOL.md §15.5): named functions called over request/response, with one
//! small self-describing [`Value`] type for arguments and results.

pub mod value;

pub use value::{Limits, List, Map, Value, ValueError, ValueWriter, MAX_DEPTH, MAX_LEN, MAX_SIZE, MAX_TOTAL};
#[cfg(feature = "alloc")]
pub use value::OwnedValue;
