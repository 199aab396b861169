//! classifiers
