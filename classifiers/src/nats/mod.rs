//! `nats`: not written yet (issue 3).
