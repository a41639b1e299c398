//! The acknowledgement window: after every `window` bytes received, the receiver sends an
//! Acknowledgement carrying the total received (modulo 2^32, as RTMP defines).

/// Counts received bytes against the peer's Window Acknowledgement Size.
#[derive(Debug, Default, Clone)]
pub struct AckCounter {
    received: u64,
    unacked: u64,
    window: Option<u32>,
}

impl AckCounter {
    /// Applies a Window Acknowledgement Size message; a malformed one is ignored and a zero
    /// window turns acknowledgements off.
    pub fn on_window_ack_size(&mut self, payload: &[u8]) {
        if let Some(w) = crate::message::read_u32(payload) {
            self.window = (w > 0).then_some(w);
        }
    }

    /// Counts `n` bytes; returns the sequence number to acknowledge when a window is full.
    pub fn on_bytes(&mut self, n: usize) -> Option<u32> {
        self.received = self.received.wrapping_add(n as u64);
        self.unacked += n as u64;
        let window = self.window?;
        if self.unacked < u64::from(window) {
            return None;
        }
        self.unacked = 0;
        Some(self.received as u32)
    }

    /// Like [`on_bytes`](Self::on_bytes), appending the Acknowledgement message to `out`.
    pub fn on_bytes_into(&mut self, n: usize, out: &mut Vec<u8>) {
        if let Some(seq) = self.on_bytes(n) {
            out.extend_from_slice(&crate::message::acknowledgement(seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledges_each_full_window_only() {
        let mut c = AckCounter::default();
        assert_eq!(c.on_bytes(5000), None, "no window yet");
        c.on_window_ack_size(&1000u32.to_be_bytes());
        // Bytes before the window was known count towards the first acknowledgement.
        assert_eq!(c.on_bytes(0), Some(5000));
        assert_eq!(c.on_bytes(999), None);
        assert_eq!(c.on_bytes(1), Some(6000));
        assert_eq!(c.on_bytes(2500), Some(8500));
        c.on_window_ack_size(&[0, 1]);
        assert_eq!(c.on_bytes(1000), Some(9500), "malformed size ignored");
        c.on_window_ack_size(&0u32.to_be_bytes());
        assert_eq!(c.on_bytes(1 << 20), None, "zero turns acks off");
    }
}
