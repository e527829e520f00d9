//! Rate limits: how many requests a caller may make, checked before the request is parsed and
//! before its token is looked up, so a flood costs no database work.
//!
//! Three token buckets, each refilled continuously and allowing a burst:
//! - per **token** (keyed by the token's SHA-256, never the secret): every request that
//!   carries a bearer token, over HTTP or as an operation on a WebSocket;
//! - per **address**, for requests without a token;
//! - per **address**, for tokens the server refused: a client that tries token after token is
//!   stopped before each new guess reaches the database.
//!
//! Buckets live in memory, per process (each replica limits on its own). Time is the
//! monotonic clock of the machine: a rate limit protects the server's resources in real
//! seconds, unlike legal time, which the service clock gives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use std::time::Instant;

/// A sustained rate and a burst. A rate of 0 switches the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests that may come at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// Whether the limit is on.
    fn enabled(self) -> bool {
        self.per_minute > 0 && self.burst > 0
    }

    /// Tokens regained per second.
    fn per_second(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

/// Whose requests a bucket counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A bearer token, by its SHA-256 (hex).
    Token(String),
    /// Requests without a token from one address.
    Anonymous(IpAddr),
    /// Refused tokens from one address.
    Refused(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The bucket refilled up to `now`.
    fn refilled(self, rate: Rate, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        Bucket {
            tokens: (self.tokens + elapsed * rate.per_second()).min(f64::from(rate.burst)),
            at: now,
        }
    }

    /// How long until one whole token is there.
    fn wait(self, rate: Rate) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / rate.per_second())
    }
}

/// A refusal: the caller may try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds to wait (at least 1): the `Retry-After` header.
    pub retry_after_seconds: u64,
}

impl Limited {
    fn after(wait: Duration) -> Limited {
        Limited {
            retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

/// Buckets kept before idle ones are swept.
const SWEEP_ABOVE: usize = 10_000;

/// The rates in force and the buckets.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_token: Rate,
    anonymous: Rate,
    refused: Rate,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl RateLimiter {
    /// A limiter with these rates.
    pub(crate) fn new(per_token: Rate, anonymous: Rate, refused: Rate) -> RateLimiter {
        RateLimiter {
            per_token,
            anonymous,
            refused,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request carrying `token_hash` (a token's SHA-256) or none, from `address`
    /// (unknown when the transport does not say). Counts it against its bucket.
    pub(crate) fn admit(
        &self,
        token_hash: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<(), Limited> {
        self.admit_at(token_hash, address, Instant::now())
    }

    /// `admit` at a given instant.
    fn admit_at(
        &self,
        token_hash: Option<&str>,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Limited> {
        match token_hash {
            Some(hash) => {
                if let Some(address) = address {
                    // An address that keeps sending refused tokens waits before the next one.
                    self.peek(&Key::Refused(address), self.refused, now)?;
                }
                self.take(Key::Token(hash.to_owned()), self.per_token, now)
            }
            None => match address {
                Some(address) => self.take(Key::Anonymous(address), self.anonymous, now),
                None => Ok(()),
            },
        }
    }

    /// Records that a token from `address` was refused.
    pub(crate) fn refused(&self, address: Option<IpAddr>) {
        self.refused_at(address, Instant::now());
    }

    fn refused_at(&self, address: Option<IpAddr>, now: Instant) {
        if let Some(address) = address {
            // A refusal over the limit is already counted: nothing to report here.
            let _ = self.take(Key::Refused(address), self.refused, now);
        }
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one token from the bucket of `key`, or says how long to wait.
    fn take(&self, key: Key, rate: Rate, now: Instant) -> Result<(), Limited> {
        if !rate.enabled() {
            return Ok(());
        }
        let mut buckets = self.buckets();
        if buckets.len() > SWEEP_ABOVE {
            self.sweep(&mut buckets, now);
        }
        let bucket = buckets
            .get(&key)
            .copied()
            .unwrap_or(Bucket {
                tokens: f64::from(rate.burst),
                at: now,
            })
            .refilled(rate, now);
        if bucket.tokens >= 1.0 {
            buckets.insert(
                key,
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    at: now,
                },
            );
            Ok(())
        } else {
            let wait = bucket.wait(rate);
            buckets.insert(key, bucket);
            Err(Limited::after(wait))
        }
    }

    /// Whether the bucket of `key` has a token, without taking it.
    fn peek(&self, key: &Key, rate: Rate, now: Instant) -> Result<(), Limited> {
        if !rate.enabled() {
            return Ok(());
        }
        match self.buckets().get(key) {
            Some(bucket) => {
                let bucket = bucket.refilled(rate, now);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(Limited::after(bucket.wait(rate)))
                }
            }
            None => Ok(()),
        }
    }

    /// Drops the buckets that have refilled completely (forgetting them changes nothing).
    fn sweep(&self, buckets: &mut HashMap<Key, Bucket>, now: Instant) {
        buckets.retain(|key, bucket| {
            let rate = match key {
                Key::Token(_) => self.per_token,
                Key::Anonymous(_) => self.anonymous,
                Key::Refused(_) => self.refused,
            };
            bucket.refilled(rate, now).tokens < f64::from(rate.burst)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_SECOND: Rate = Rate {
        per_minute: 60,
        burst: 3,
    };
    const OFF: Rate = Rate {
        per_minute: 0,
        burst: 0,
    };

    fn address() -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, 7]))
    }

    #[test]
    fn a_burst_passes_then_the_caller_waits_for_the_refill() {
        let limiter = RateLimiter::new(EVERY_SECOND, OFF, OFF);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit_at(Some("abc"), address(), t0), Ok(()));
        }
        assert_eq!(
            limiter.admit_at(Some("abc"), address(), t0),
            Err(Limited {
                retry_after_seconds: 1
            })
        );
        // Another token has its own bucket.
        assert_eq!(limiter.admit_at(Some("def"), address(), t0), Ok(()));
        let t1 = t0 + Duration::from_millis(1_000);
        assert_eq!(limiter.admit_at(Some("abc"), address(), t1), Ok(()));
        assert!(limiter.admit_at(Some("abc"), address(), t1).is_err());
    }

    #[test]
    fn refused_tokens_stop_an_address_before_the_next_guess() {
        let limiter = RateLimiter::new(OFF, OFF, EVERY_SECOND);
        let t0 = Instant::now();
        for guess in 0..3 {
            assert_eq!(
                limiter.admit_at(Some(&format!("g{guess}")), address(), t0),
                Ok(())
            );
            limiter.refused_at(address(), t0);
        }
        assert!(limiter.admit_at(Some("g4"), address(), t0).is_err());
        // Another address is not affected, nor a request without a token.
        assert!(
            limiter
                .admit_at(Some("g4"), Some(IpAddr::from([192, 0, 2, 8])), t0)
                .is_ok()
        );
        assert!(limiter.admit_at(None, address(), t0).is_ok());
        // A second later one more guess is allowed.
        assert!(
            limiter
                .admit_at(Some("g5"), address(), t0 + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn anonymous_calls_are_limited_per_address() {
        let limiter = RateLimiter::new(OFF, EVERY_SECOND, OFF);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit_at(None, address(), t0).is_ok());
        }
        assert_eq!(
            limiter.admit_at(None, address(), t0),
            Err(Limited {
                retry_after_seconds: 1
            })
        );
        assert!(
            limiter
                .admit_at(None, Some(IpAddr::from([198, 51, 100, 1])), t0)
                .is_ok()
        );
    }

    #[test]
    fn full_buckets_are_forgotten_when_the_map_grows() {
        let limiter = RateLimiter::new(EVERY_SECOND, OFF, OFF);
        let t0 = Instant::now();
        for n in 0..=SWEEP_ABOVE {
            assert!(limiter.admit_at(Some(&n.to_string()), None, t0).is_ok());
        }
        let later = t0 + Duration::from_secs(10);
        assert!(limiter.admit_at(Some("last"), None, later).is_ok());
        assert!(limiter.buckets().len() <= 2, "{}", limiter.buckets().len());
    }
}
