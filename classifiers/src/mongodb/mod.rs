//! `mongodb`: not written yet (issue 3).
