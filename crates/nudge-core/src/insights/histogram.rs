//! Durations as log-scaled histogram buckets, so a latency distribution is a handful of
//! counters that add up across hours and shards: bucket 0 is under a second, then eight
//! buckets per doubling. A quantile read back is the bucket's geometric middle, within 4.5%
//! of the true value.

use crate::time::Millis;

/// Buckets per doubling.
const PER_DOUBLING: f64 = 8.0;
/// Highest bucket (about 11 years).
const MAX_BUCKET: u16 = 280;

/// The bucket of a duration.
pub fn bucket(d: Millis) -> u16 {
    if d < 1000 {
        return 0;
    }
    let secs = d as f64 / 1000.0;
    let b = 1.0 + (PER_DOUBLING * secs.log2()).floor();
    (b as u16).min(MAX_BUCKET)
}

/// The seconds a bucket stands for: its geometric middle.
pub fn seconds(b: u16) -> f64 {
    if b == 0 {
        return 0.5;
    }
    let s = 2f64.powf((f64::from(b) - 1.0 + 0.5) / PER_DOUBLING);
    // Tenths of a second: more digits would claim a precision buckets do not have.
    (s * 10.0).round() / 10.0
}

/// The `q` quantile (0..=1) of a histogram given as (bucket, count) pairs, in seconds;
/// `None` when empty.
pub fn quantile(counts: &[(u16, i64)], q: f64) -> Option<f64> {
    let total: i64 = counts.iter().map(|(_, n)| (*n).max(0)).sum();
    if total <= 0 {
        return None;
    }
    let mut sorted: Vec<(u16, i64)> = counts.to_vec();
    sorted.sort_unstable();
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (b, n) in sorted {
        seen += n.max(0);
        if seen >= rank {
            return Some(seconds(b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_is_within_five_percent_of_its_bucket() {
        for secs in [
            1.0f64,
            1.5,
            2.0,
            59.0,
            600.0,
            3600.0,
            86_400.0,
            30.0 * 86_400.0,
        ] {
            let got = seconds(bucket((secs * 1000.0) as i64));
            // Half a bucket, plus the rounding to tenths of a second.
            assert!(
                (got - secs).abs() <= secs * 0.045 + 0.05,
                "{secs}s read back as {got}s"
            );
        }
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(i64::MAX), MAX_BUCKET);
    }

    #[test]
    fn quantiles_walk_the_buckets_in_order() {
        // 98 sends after a minute, 2 after a day: the median is a minute, p99 a day.
        let minute = bucket(60_000);
        let day = bucket(86_400_000);
        let h = [(day, 2), (minute, 98)];
        let p50 = quantile(&h, 0.5).unwrap();
        let p99 = quantile(&h, 0.99).unwrap();
        assert!((p50 - 60.0).abs() / 60.0 < 0.1, "{p50}");
        assert!((p99 - 86_400.0).abs() / 86_400.0 < 0.1, "{p99}");
        assert_eq!(quantile(&[], 0.5), None);
    }
}
