//! Harness for legato end-to-end tests.
