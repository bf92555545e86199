//! Pieces shared by the detectors: configuration errors and the fixed-size
//! event queue behind every `poll_event()`.

use std::fmt;

/// A detector or generator was given a configuration it cannot honour.
///
/// The field names the offending setting; the detector is not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// Name of the configuration field that is out of range.
    pub field: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid detector configuration: {}", self.field)
    }
}

impl std::error::Error for ConfigError {}

/// Checks that `value` is finite and within `lo..=hi`.
pub(crate) fn check_range(
    value: f32,
    lo: f32,
    hi: f32,
    field: &'static str,
) -> Result<(), ConfigError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(ConfigError { field })
    }
}

/// A ring of at most `N` pending events. When full, the oldest event is
/// dropped and counted, so a caller that never polls cannot make a detector
/// allocate or stall.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue<T: Copy, const N: usize> {
    items: [Option<T>; N],
    head: usize,
    len: usize,
    dropped: u64,
}

impl<T: Copy, const N: usize> EventQueue<T, N> {
    pub(crate) fn new() -> Self {
        Self {
            items: [None; N],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        if self.len == N {
            self.head = (self.head + 1) % N;
            self.len -= 1;
            self.dropped += 1;
        }
        let tail = (self.head + self.len) % N;
        self.items[tail] = Some(item);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head].take();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_drops_oldest_when_full() {
        let mut q: EventQueue<u32, 3> = EventQueue::new();
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(
            [q.pop(), q.pop(), q.pop(), q.pop()],
            [Some(2), Some(3), Some(4), None]
        );
    }

    #[test]
    fn range_check() {
        assert!(check_range(1.0, 0.0, 2.0, "x").is_ok());
        assert_eq!(
            check_range(f32::NAN, 0.0, 2.0, "x"),
            Err(ConfigError { field: "x" })
        );
        assert!(check_range(3.0, 0.0, 2.0, "x").is_err());
    }
}
