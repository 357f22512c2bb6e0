//! Rates and ratios of measured work, as progress lines, reports and benches print them.
//!
//! A measured duration can be zero (a table of no rows, a clock too coarse for a tiny
//! step): a rate over it is 0 rather than infinite or NaN, and a ratio against a zero
//! baseline is 0, so that JSON output stays numbers.

use std::time::Duration;

/// `count` per second of `elapsed`; 0 when no time was measured.
pub fn per_second(count: f64, elapsed: Duration) -> f64 {
    ratio(count, elapsed.as_secs_f64())
}

/// `measured / baseline`; 0 when the baseline is 0 (or not a positive number).
pub fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_ratios_over_nothing_are_zero() {
        assert_eq!(per_second(500.0, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(500.0, Duration::ZERO), 0.0);
        assert_eq!(ratio(3.0, 1.5), 2.0);
        assert_eq!(ratio(3.0, 0.0), 0.0);
        assert_eq!(ratio(3.0, f64::NAN), 0.0);
    }
}
