//! RTP/RTCP wire formats (RFC 3550) as borrowed views: parsing never copies
//! and never panics on hostile bytes, and header rewriting works in place.

mod header;

#[allow(
    unreachable_pub,
    reason = "reachable through legato_daemon::internals with the internals feature"
)]
pub use header::{RtpHeader, is_rtcp, rewrite_header, valid_rtcp};
