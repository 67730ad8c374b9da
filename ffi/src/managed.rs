//! The managed layer (to be built).
