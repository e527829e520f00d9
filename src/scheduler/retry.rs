//! When to try a transiently failed delivery again. Pure: the jitter comes from a seed.
//!
//! Exponential backoff with "equal jitter": the n-th retry waits between half and all of
//! `base · 2ⁿ⁻¹` (capped at `max`). The seed (e.g. a hash of the delivery id) spreads retries of
//! many deliveries that failed together, while the same (attempt, seed) always gives the same
//! delay, so a test — or an operator reading the log — can predict it.

use std::time::Duration;

/// The delay before retry number `attempt` (1 = first retry; 0 = no wait).
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter_seed: u64) -> Duration {
    if attempt == 0 || base.is_zero() || max.is_zero() {
        return Duration::ZERO;
    }
    let doublings = attempt.saturating_sub(1).min(63);
    let factor = 1u64 << doublings;
    let ceiling = u32::try_from(factor)
        .ok()
        .and_then(|factor| base.checked_mul(factor))
        .map_or(max, |delay| delay.min(max));
    let half = ceiling / 2;
    let spread = ceiling.saturating_sub(half);
    let fraction = unit_interval(mix(
        jitter_seed ^ u64::from(attempt).wrapping_mul(0x9E37_79B9)
    ));
    half + spread.mul_f64(fraction)
}

/// SplitMix64 finaliser: a well-spread 64-bit hash of the input.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// Maps a hash to [0, 1) using its top 53 bits.
fn unit_interval(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(30);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn attempt_zero_does_not_wait() {
        assert_eq!(backoff(0, BASE, MAX, 7), Duration::ZERO);
    }

    #[test]
    fn each_delay_lies_between_half_and_all_of_the_doubled_base() {
        for seed in 0..200u64 {
            for attempt in 1..=6u32 {
                let ceiling = BASE * (1 << (attempt - 1));
                let delay = backoff(attempt, BASE, MAX, seed);
                assert!(
                    delay >= ceiling / 2,
                    "attempt {attempt} seed {seed}: {delay:?}"
                );
                assert!(delay <= ceiling, "attempt {attempt} seed {seed}: {delay:?}");
            }
        }
    }

    #[test]
    fn the_delay_is_capped_even_for_absurd_attempts() {
        for attempt in [8, 20, 64, 65, u32::MAX] {
            let delay = backoff(attempt, BASE, MAX, 3);
            assert!(
                delay <= MAX && delay >= MAX / 2,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn same_seed_same_delay_different_seeds_spread() {
        assert_eq!(backoff(3, BASE, MAX, 42), backoff(3, BASE, MAX, 42));
        let distinct: std::collections::BTreeSet<Duration> =
            (0..50u64).map(|seed| backoff(3, BASE, MAX, seed)).collect();
        assert!(
            distinct.len() > 40,
            "only {} distinct delays",
            distinct.len()
        );
    }

    #[test]
    fn the_average_grows_exponentially_until_the_cap() {
        let average = |attempt: u32| {
            (0..500u64)
                .map(|seed| backoff(attempt, BASE, MAX, seed).as_secs_f64())
                .sum::<f64>()
                / 500.0
        };
        let (first, second, third) = (average(1), average(2), average(3));
        assert!((second / first - 2.0).abs() < 0.2, "{first} → {second}");
        assert!((third / second - 2.0).abs() < 0.2, "{second} → {third}");
    }
}
