//! Recording tests.
