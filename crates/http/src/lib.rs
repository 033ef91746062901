//! The HTTP listener (being written).
