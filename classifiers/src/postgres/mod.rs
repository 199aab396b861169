//! `postgres`: not written yet (issue 3).
