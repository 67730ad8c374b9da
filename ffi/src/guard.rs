//! The panic boundary: no Rust panic may unwind into C (undefined behaviour), so every
//! exported function runs its body through [`guard`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::MeshlinkResult;

/// Runs `f`, turning a panic into [`MeshlinkResult::Panic`]. `AssertUnwindSafe` is sound
/// here because a handle whose call panicked is only ever freed afterwards: the result
/// code tells the caller the handle's state is unknown.
pub(crate) fn guard(f: impl FnOnce() -> MeshlinkResult) -> MeshlinkResult {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(MeshlinkResult::Panic)
}

/// The same for functions that return a pointer: a panic gives NULL.
pub(crate) fn guard_ptr<T>(f: impl FnOnce() -> *mut T) -> *mut T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(std::ptr::null_mut())
}
