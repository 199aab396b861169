//! Conformance checks for classifier authors (feature `testing`), modelled on Vector's
//! component compliance tests.
