//! `memcached`: not written yet (issue 3).
