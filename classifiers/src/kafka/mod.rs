//! `kafka`: not written yet (issue 3).
