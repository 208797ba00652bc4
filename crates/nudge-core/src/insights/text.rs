//! A report in words and tables, for a terminal (`nudge report --format text`).

use std::fmt::Write;

use super::report::{Report, StepReport};

fn pct(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "-".into(),
    }
}

fn secs(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 90.0 => format!("{s:.0}s"),
        Some(s) if s < 5400.0 => format!("{:.0}m", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1}h", s / 3600.0),
        Some(s) => format!("{:.1}d", s / 86_400.0),
    }
}

fn steps(out: &mut String, indent: &str, steps: &[StepReport]) {
    for s in steps {
        let _ = writeln!(
            out,
            "{indent}{:<32} {:>8} users  {:>7} of previous  {:>7} of start  median {}",
            s.step,
            s.users,
            pct(s.rate_from_previous),
            pct(s.rate_from_start),
            secs(s.median_s_from_previous)
        );
    }
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Report {} to {}", r.period.from, r.period.to);
    let _ = writeln!(out, "{} events from about {} users\n", r.events, r.users);
    let _ = writeln!(out, "Triggers");
    let _ = writeln!(
        out,
        "  {:<28} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}  latency p50/p99",
        "trigger",
        "started",
        "cancelled",
        "waiting",
        "sent",
        "suppr.",
        "delivered",
        "clicked",
        "converted",
        "rate"
    );
    for t in &r.triggers {
        let c = &t.counts;
        let suppressed: i64 = c.suppressed.values().sum();
        let _ = writeln!(
            out,
            "  {:<28} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}  {}/{}",
            t.trigger,
            c.started,
            c.cancelled,
            t.waiting,
            c.sent,
            suppressed,
            c.delivered,
            c.clicked,
            c.converted,
            pct(c.conversion_rate),
            secs(t.latency_s.p50),
            secs(t.latency_s.p99)
        );
        if t.variants.len() > 1 {
            for v in &t.variants {
                let _ = writeln!(
                    out,
                    "    {:<26} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}",
                    v.variant,
                    "",
                    "",
                    "",
                    v.counts.sent,
                    v.counts.suppressed.values().sum::<i64>(),
                    v.counts.delivered,
                    v.counts.clicked,
                    v.counts.converted,
                    pct(v.counts.conversion_rate)
                );
            }
        }
    }
    for f in &r.funnels {
        let _ = writeln!(
            out,
            "\nFunnel {} (within {})",
            f.funnel,
            secs(Some(f.within_s as f64))
        );
        steps(&mut out, "  ", &f.steps);
        if let Some(b) = &f.breakdown {
            for v in &b.values {
                let _ = writeln!(out, "  {} = {}", b.by, v.value);
                steps(&mut out, "    ", &v.steps);
            }
        }
    }
    for e in &r.experiments {
        let goal = e.goal.as_deref().unwrap_or("no goal");
        let _ = writeln!(
            out,
            "\nExperiment {} (goal: {goal}; control {}; minimum detectable effect {})",
            e.experiment,
            e.control,
            pct(Some(e.min_detectable_effect))
        );
        for v in &e.variants {
            let ci = v.ci95.map_or_else(
                || "-".to_string(),
                |[lo, hi]| format!("{}..{}", pct(Some(lo)), pct(Some(hi))),
            );
            let per_user = match (v.value_per_user, v.value_per_user_ci95) {
                (Some(m), Some([lo, hi])) => format!(" ({m:.2}/user, 95% {lo:.2}..{hi:.2})"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<20} {:>8} users {:>8} converted {:>8} (95% {ci:<15})  value {}{per_user}",
                v.variant,
                v.users,
                v.converted,
                pct(v.rate),
                v.value
            );
        }
        for c in &e.comparisons {
            let diff =
                |x: Option<f64>| x.map_or_else(|| "-".into(), |d| format!("{:+.1} pts", d * 100.0));
            let ci = |ci: Option<[f64; 2]>| {
                ci.map_or_else(
                    || "-".to_string(),
                    |[lo, hi]| format!("{:+.1}..{:+.1}", lo * 100.0, hi * 100.0),
                )
            };
            let p = |p: Option<f64>| p.map_or_else(|| "-".into(), |p| format!("{p:.3}"));
            let _ = writeln!(
                out,
                "  {} vs {}: {} (95% {}, p {}; anytime 95% {}, p {}): {}",
                c.variant,
                c.against,
                diff(c.difference),
                ci(c.ci95),
                p(c.p_value),
                ci(c.anytime.ci95),
                p(c.anytime.p_value),
                c.verdict
            );
            if let Some(note) = &c.note {
                let _ = writeln!(out, "    note: {note}");
            }
        }
    }
    out
}
