//! `tls`: not written yet (issue 3).
