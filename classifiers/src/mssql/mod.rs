//! `mssql`: not written yet (issue 3).
