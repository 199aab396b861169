//! Benchmarks of the hot paths live in `benches/`; this crate holds only what they share.

use std::time::Duration;

use criterion::Criterion;

/// The criterion settings every benchmark uses (short warm-up, 30 samples), measuring each
/// function for `measure`: quick enough to run them all on a small shared machine.
pub fn config(measure: Duration) -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measure)
        .sample_size(30)
}
