//! The bytes one request's response carries, bounded by `CONDUIT_MAX_RESPONSE_BYTES`.
//!
//! The large text fields (bodies, descriptions, titles, bios, image URLs) count their bytes as
//! they resolve, so an answer that would be too large stops being built as soon as it crosses
//! the bound, not once it has been serialized; the gateway then checks each operation's
//! serialized data against what is left. One meter serves every operation of a batch: the bound
//! is on the whole response.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::AppError;

/// What one response may still carry.
#[derive(Debug)]
pub struct ResponseMeter {
    maximum: usize,
    /// Serialized data of the operations already answered.
    sent: AtomicUsize,
    /// Text resolved so far by the operation running now.
    resolving: AtomicUsize,
}

impl ResponseMeter {
    /// A meter for a response of at most `maximum` bytes.
    pub fn new(maximum: usize) -> Self {
        Self {
            maximum,
            sent: AtomicUsize::new(0),
            resolving: AtomicUsize::new(0),
        }
    }

    /// The error of a response over the bound.
    pub fn too_large(&self) -> AppError {
        AppError::ResponseTooLarge {
            maximum: self.maximum as u64,
        }
    }

    /// Counts `bytes` of text the running operation resolved; the error once the response would
    /// be too large.
    pub fn carry(&self, bytes: usize) -> Result<(), AppError> {
        let resolving = self.resolving.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.sent.load(Ordering::Relaxed).saturating_add(resolving) > self.maximum {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// The bytes the running operation's data may still take.
    pub fn remaining(&self) -> usize {
        self.maximum
            .saturating_sub(self.sent.load(Ordering::Relaxed))
    }

    /// The running operation's text bytes resolved so far (its answer carries at least these).
    pub fn resolving(&self) -> usize {
        self.resolving.load(Ordering::Relaxed)
    }

    /// Ends the running operation with `data_bytes` of serialized data: whether they fit (then
    /// they count against what the next operations may carry).
    pub fn settle(&self, data_bytes: usize) -> bool {
        self.resolving.store(0, Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        if sent.saturating_add(data_bytes) > self.maximum {
            return false;
        }
        self.sent.store(sent + data_bytes, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_covers_every_operation_of_a_response() {
        let meter = ResponseMeter::new(100);
        assert!(meter.carry(60).is_ok());
        assert!(meter.settle(70));
        assert!(meter.carry(20).is_ok());
        assert!(meter.carry(20).is_err(), "70 sent + 40 resolving");
        assert!(!meter.settle(31));
        assert!(meter.settle(30));
    }
}
