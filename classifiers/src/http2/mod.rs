//! `http2`: not written yet (issue 3).
