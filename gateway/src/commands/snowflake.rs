//! Snowflake message ids minted by the gateway that accepts a send.

use missive_core::MessageId;
use missive_core::ids::MAX_SEQUENCE;
use missive_infra::Clock;
use parking_lot::Mutex;

pub struct Snowflakes {
    node: u16,
    clock: Clock,
    last: Mutex<(i64, u16)>,
}

impl Snowflakes {
    pub fn new(node: u16, clock: Clock) -> Snowflakes {
        Snowflakes { node, clock, last: Mutex::new((0, 0)) }
    }

    /// A new id, strictly greater than every id this generator returned.
    /// Within one millisecond up to 4,096 ids; beyond that it borrows the
    /// next millisecond rather than wait or repeat.
    pub fn next(&self) -> MessageId {
        let now = self.clock.now_ms();
        let mut last = self.last.lock();
        let (mut ms, mut sequence) = *last;
        if now > ms {
            ms = now;
            sequence = 0;
        } else if sequence >= MAX_SEQUENCE {
            ms += 1;
            sequence = 0;
        } else {
            sequence += 1;
        }
        *last = (ms, sequence);
        MessageId::from_parts(ms, self.node, sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_infra::Clock;

    #[test]
    fn ids_are_strictly_increasing_even_in_bursts() {
        let flakes = Snowflakes::new(3, Clock::system());
        let mut previous = flakes.next();
        for _ in 0..20_000 {
            let next = flakes.next();
            assert!(next > previous);
            previous = next;
        }
    }
}
