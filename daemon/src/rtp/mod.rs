//! RTP/RTCP wire formats (RFC 3550) as borrowed views: parsing never copies
//! and never panics on hostile bytes, and header rewriting works in place.

mod header;

pub(crate) use header::{RtpHeader, is_rtcp, rewrite_header, valid_rtcp};
