//! `mysql`: not written yet (issue 3).
