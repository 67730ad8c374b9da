//! The sans-IO layer (to be built).
