//! The managed layer: `meshlink_node_new` starts a meshlink-host node on a tokio runtime
//! of its own (one worker thread, "the driver thread"); every call blocks the calling
//! thread until the driver answers. Events (messages, connections, requests for served
//! subjects, publications) wait in one bounded queue per node
//! ([`MeshlinkConfig::event_capacity`]); a poller that falls behind loses the oldest-new
//! events and gets a `LAGGED` event with the count, memory never grows.
//!
//! Thread safety: a `meshlink_node *` may be used from any number of threads at once,
//! except `meshlink_node_free`, which must be the last call on it.

mod convert;
mod events;
mod node;
mod types;

pub use events::*;
pub use node::*;
pub use types::*;
