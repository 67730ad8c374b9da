//! RPC (F26, PROTOCOL.md §15.5): named functions called over request/response, with one
//! small self-describing [`Value`] type for arguments and results.

mod api;
pub mod stream;
pub mod value;

pub use api::{
    call_result, CallError, FnId, FnSlot, IncomingCall, RpcError, BAD_ARGUMENTS, GET_FUNCS, GET_PEERS, MAX_NAME,
    PREFIX, UNKNOWN_FUNCTION,
};
pub(crate) use api::{Builtin, RpcStep};

pub(crate) use api::{decide as api_decide, incoming as api_incoming};
#[cfg(feature = "alloc")]
pub use value::OwnedValue;
pub use value::{Limits, List, Map, Value, ValueError, ValueWriter, MAX_DEPTH, MAX_LEN, MAX_SIZE, MAX_TOTAL};
