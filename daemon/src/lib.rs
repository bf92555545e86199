//! legato daemon
