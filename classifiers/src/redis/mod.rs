//! `redis`: not written yet (issue 3).
