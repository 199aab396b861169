//! Benchmarks of the hot paths live in `benches/`; this crate has no library code.
