//! Experiment statistics from counts (users assigned and converted per variant):
//!
//! - each variant's conversion rate with a 95% Wilson interval (statsmodels'
//!   `proportion_confint(method="wilson")`);
//! - a variant against another (the control, the holdout): the difference of rates with a 95%
//!   Wald interval (`confint_proportions_2indep(method="wald")`) and the two-sided p-value of
//!   the pooled two-proportion z-test (`proportions_ztest`): right for one look at a sample
//!   size fixed in advance;
//! - the same comparison made anytime-valid, for teams that look every day: the mixture
//!   sequential probability ratio test (mSPRT, Johari et al., "Always Valid Inference", 2017)
//!   with a normal mixture of standard deviation `tau` over the difference. Its confidence
//!   sequence covers the true difference at every look at once with 95% probability, and its
//!   p-value (`1 / likelihood ratio`, capped at 1) may be read at any time: stopping the first
//!   time it falls below 0.05 keeps false positives at 5%.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The error rate every interval and verdict is made for.
pub const ALPHA: f64 = 0.05;

/// The mixing standard deviation over the difference of rates when an experiment sets no
/// `min_detectable_effect`: 5 percentage points, the size of effect onboarding messages are
/// usually tested for.
pub const DEFAULT_TAU: f64 = 0.05;

/// The power a "needs about N more users" estimate is made for.
const POWER: f64 = 0.8;

/// Below this many conversions (or non-conversions) in a variant, normal approximations are
/// rough.
const SMALL: i64 = 5;

fn normal() -> Normal {
    Normal::standard()
}

/// The two-sided 95% quantile of the standard normal, 1.95996...
fn z95() -> f64 {
    normal().inverse_cdf(1.0 - ALPHA / 2.0)
}

/// Successes and trials of one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub converted: i64,
    pub users: i64,
}

impl Sample {
    fn rate(self) -> f64 {
        self.converted as f64 / self.users as f64
    }

    /// The variance of the rate's estimate, `p(1-p)/n`.
    fn variance(self) -> f64 {
        let p = self.rate();
        p * (1.0 - p) / self.users as f64
    }

    fn small(self) -> bool {
        self.converted < SMALL || self.users - self.converted < SMALL
    }
}

/// The 95% Wilson score interval of a rate; `None` without users.
pub fn wilson(s: Sample) -> Option<[f64; 2]> {
    if s.users <= 0 {
        return None;
    }
    let (n, p, z) = (s.users as f64, s.rate(), z95());
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Some([(center - half).max(0.0), (center + half).min(1.0)])
}

/// The 95% interval (normal) of the mean of a value over `n` users, from its sum and the sum
/// of its squares: `mean ± z * s / sqrt(n)` with the sample standard deviation `s`
/// (statsmodels' `DescrStatsW(values).zconfint_mean()`). `None` below two users.
pub fn mean_interval(sum: f64, squares: f64, n: i64) -> Option<[f64; 2]> {
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean = sum / nf;
    let variance = ((squares - nf * mean * mean) / (nf - 1.0)).max(0.0);
    let half = z95() * (variance / nf).sqrt();
    Some([mean - half, mean + half])
}

/// The anytime-valid side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anytime {
    /// The 95% confidence sequence of the difference at this look.
    pub ci95: Option<[f64; 2]>,
    /// The always-valid p-value at this look.
    pub p_value: Option<f64>,
    /// Whether the difference is settled: zero is outside the confidence sequence.
    pub conclusive: bool,
}

/// A variant against another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub variant: String,
    pub against: String,
    /// The variant's rate minus the other's.
    pub difference: Option<f64>,
    /// 95% Wald interval of the difference (one look, fixed sample size).
    pub ci95: Option<[f64; 2]>,
    /// Two-sided p-value of the pooled two-proportion z-test (one look, fixed sample size).
    pub p_value: Option<f64>,
    pub anytime: Anytime,
    /// In words: `b beats a`, `b is worse than a`, `no difference yet`, `needs about N more
    /// users per variant`.
    pub verdict: String,
    /// A caution, when the samples are too small for the normal approximation.
    pub note: Option<String>,
}

/// Compares `variant` (sample `b`) with `against` (sample `a`), with the mixture's standard
/// deviation `tau` (also the smallest difference worth detecting).
pub fn compare(variant: &str, b: Sample, against: &str, a: Sample, tau: f64) -> Comparison {
    let some_users = b.users > 0 && a.users > 0;
    let note = (some_users && (b.small() || a.small())).then(|| {
        format!(
            "fewer than {SMALL} conversions or non-conversions in `{variant}` or `{against}`: \
             the normal approximation is rough; wait for more users"
        )
    });
    if !some_users {
        return Comparison {
            variant: variant.into(),
            against: against.into(),
            difference: None,
            ci95: None,
            p_value: None,
            anytime: Anytime {
                ci95: None,
                p_value: None,
                conclusive: false,
            },
            verdict: "no users yet".into(),
            note,
        };
    }
    let z = z95();
    let difference = b.rate() - a.rate();
    let v = b.variance() + a.variance();
    let half = z * v.sqrt();
    let anytime = msprt(difference, v, tau);
    let verdict = if anytime.conclusive && difference > 0.0 {
        format!("{variant} beats {against}")
    } else if anytime.conclusive {
        format!("{variant} is worse than {against}")
    } else {
        let have = a.users.min(b.users).max(0).unsigned_abs();
        match users_needed(a.rate(), tau) {
            Some(n) if n > have => format!("needs about {} more users per variant", n - have),
            _ => "no difference yet".into(),
        }
    };
    Comparison {
        variant: variant.into(),
        against: against.into(),
        difference: Some(difference),
        ci95: Some([difference - half, difference + half]),
        p_value: z_test(b, a),
        anytime,
        verdict,
        note,
    }
}

/// The pooled two-proportion z-test's two-sided p-value; `None` when every user, or none,
/// converted (no variance to test against).
pub fn z_test(b: Sample, a: Sample) -> Option<f64> {
    let pooled = (b.converted + a.converted) as f64 / (b.users + a.users) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / b.users as f64 + 1.0 / a.users as f64)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return None;
    }
    let z = (b.rate() - a.rate()) / se;
    Some(2.0 * normal().sf(z.abs()))
}

/// mSPRT with a normal mixture N(0, tau^2) over the difference, whose estimate has variance
/// `v`: the likelihood ratio is `sqrt(v / (v + tau^2)) * exp(d^2 tau^2 / (2 v (v + tau^2)))`;
/// the confidence sequence is the set of differences it does not reject at `ALPHA`.
pub fn msprt(difference: f64, v: f64, tau: f64) -> Anytime {
    let t2 = tau * tau;
    if v <= 0.0 || !v.is_finite() || t2 <= 0.0 {
        return Anytime {
            ci95: None,
            p_value: None,
            conclusive: false,
        };
    }
    let log_ratio = 0.5 * (v / (v + t2)).ln() + difference * difference * t2 / (2.0 * v * (v + t2));
    let p_value = (-log_ratio).exp().min(1.0);
    let half = half_width(v, t2);
    Anytime {
        ci95: Some([difference - half, difference + half]),
        p_value: Some(p_value),
        conclusive: p_value <= ALPHA,
    }
}

/// Half the width of the confidence sequence where the estimate's variance is `v`.
fn half_width(v: f64, t2: f64) -> f64 {
    (v * (v + t2) / t2 * (2.0 * (1.0 / ALPHA).ln() + ((v + t2) / v).ln())).sqrt()
}

/// Users per variant after which a true difference of `effect` over a control converting at
/// `base` is settled by the anytime-valid test with probability [`POWER`]: the smallest `n`
/// where `effect - z_power * sd(n)` lies beyond the confidence sequence's half width.
pub fn users_needed(base: f64, effect: f64) -> Option<u64> {
    if effect <= 0.0 {
        return None;
    }
    // With no conversions seen yet, plan for one in a hundred.
    let p0 = base.clamp(0.01, 0.99);
    let p1 = (p0 + effect).min(0.999);
    let per_user = p0 * (1.0 - p0) + p1 * (1.0 - p1);
    let z_power = normal().inverse_cdf(POWER);
    let settled = |n: f64| {
        let v = per_user / n;
        effect - z_power * v.sqrt() > half_width(v, effect * effect)
    };
    let (mut lo, mut hi) = (1.0_f64, 2.0_f64);
    while !settled(hi) {
        if hi > 1e12 {
            return None;
        }
        lo = hi;
        hi *= 2.0;
    }
    while hi - lo > 1.0 {
        let mid = ((lo + hi) / 2.0).floor();
        if settled(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(converted: i64, users: i64) -> Sample {
        Sample { converted, users }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn wilson_matches_the_closed_form_and_stays_in_0_1() {
        // statsmodels: proportion_confint(30, 100, method="wilson")
        let [lo, hi] = wilson(s(30, 100)).unwrap();
        assert!(close(lo, 0.2189488529), "{lo}");
        assert!(close(hi, 0.3958485463), "{hi}");
        let [lo, hi] = wilson(s(0, 10)).unwrap();
        assert!(lo.abs() < 1e-12, "{lo}");
        assert!(hi > 0.2 && hi < 0.35);
        assert_eq!(wilson(s(0, 0)), None);
    }

    #[test]
    fn the_z_test_is_two_sided_and_undefined_without_variance() {
        let p = z_test(s(60, 200), s(40, 200)).unwrap();
        let q = z_test(s(40, 200), s(60, 200)).unwrap();
        assert!(close(p, q) && p < 0.05 && p > 0.01, "{p}");
        assert_eq!(z_test(s(0, 50), s(0, 50)), None);
        assert_eq!(z_test(s(50, 50), s(50, 50)), None);
    }

    #[test]
    fn the_confidence_sequence_is_wider_than_the_one_look_interval() {
        let c = compare("b", s(130, 1000), "a", s(100, 1000), DEFAULT_TAU);
        let [lo, hi] = c.ci95.unwrap();
        let [alo, ahi] = c.anytime.ci95.unwrap();
        assert!(alo < lo && ahi > hi);
        assert_eq!(c.anytime.conclusive, alo > 0.0 || ahi < 0.0);
        assert_eq!(
            c.anytime.conclusive,
            c.anytime.p_value.unwrap() <= ALPHA,
            "the sequence excludes 0 exactly when the p-value is below alpha"
        );
    }

    #[test]
    fn verdicts_name_the_winner_or_what_is_missing() {
        let clear = compare("b", s(300, 1000), "a", s(100, 1000), DEFAULT_TAU);
        assert_eq!(clear.verdict, "b beats a");
        let worse = compare("b", s(100, 1000), "a", s(300, 1000), DEFAULT_TAU);
        assert_eq!(worse.verdict, "b is worse than a");
        let early = compare("b", s(12, 100), "a", s(10, 100), DEFAULT_TAU);
        assert!(
            early.verdict.starts_with("needs about "),
            "{}",
            early.verdict
        );
        let small = compare("b", s(2, 10), "a", s(1, 10), DEFAULT_TAU);
        assert!(small.note.is_some());
        assert_eq!(
            compare("b", s(0, 0), "a", s(1, 10), DEFAULT_TAU).verdict,
            "no users yet"
        );
    }

    #[test]
    fn the_mean_interval_uses_the_sample_variance() {
        // Values 0, 0, 10, 30: mean 10, sample sd 14.142; z * sd / 2 = 13.859.
        let [lo, hi] = mean_interval(40.0, 1000.0, 4).unwrap();
        assert!(close(lo, 10.0 - 13.859038243496777), "{lo}");
        assert!(close(hi, 10.0 + 13.859038243496777), "{hi}");
        assert_eq!(mean_interval(5.0, 25.0, 1), None);
    }

    #[test]
    fn users_needed_shrinks_as_the_effect_grows() {
        let small = users_needed(0.1, 0.02).unwrap();
        let large = users_needed(0.1, 0.1).unwrap();
        assert!(small > large && large > 10, "{small} {large}");
        assert_eq!(users_needed(0.1, 0.0), None);
    }
}
