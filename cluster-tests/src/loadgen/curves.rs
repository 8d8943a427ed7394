//! Realistic training curves for `loadgen points --shape curves`.
//!
//! A training job logs several metrics at every step, all at once, with float32 values
//! (what PyTorch and JAX hand to a tracker, widened to f64 on the wire) and wall-clock
//! times that drift by a few milliseconds from step to step. This module makes such a
//! series deterministically from (run, step) so that metacenter and VictoriaMetrics get
//! byte-identical values: loss and accuracy with noise, a warm-up then cosine learning
//! rate, a decaying gradient norm, and GPU utilisation as whole percents.

/// The metrics one step logs, in the order a batch carries them.
pub const METRICS: [&str; 5] = [
    "loss",
    "accuracy",
    "learning_rate",
    "grad_norm",
    "gpu_utilization",
];

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat};

use super::points::Sink;

/// Milliseconds between two steps, before jitter.
const STEP_MS: i64 = 200;

/// Steps of the whole schedule (the cosine's period).
const SCHEDULE_STEPS: f64 = 1_000_000.0;

/// A uniform number in [-1, 1) from `(run, step, metric)` (splitmix64).
fn noise(run: u64, step: u64, metric: u64) -> f64 {
    let mut z = run
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(metric);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// The value of metric `m` (an index into [`METRICS`]) of `run` at `step`, a float32
/// widened to f64.
pub fn value(run: u64, step: u64, m: usize) -> f64 {
    let s = step as f64;
    let n = noise(run, step, m as u64);
    let v = match m {
        0 => 2.5 * (-s / 20_000.0).exp() + 0.3 + 0.05 * n,
        1 => 1.0 - 0.9 * (-s / 15_000.0).exp() + 0.01 * n,
        2 => {
            let warm = (s / 2_000.0).min(1.0);
            3e-4 * warm * 0.5 * (1.0 + (std::f64::consts::PI * s / SCHEDULE_STEPS).cos())
        }
        3 => 1.0 + 5.0 * (-s / 5_000.0).exp() + 0.3 * n.abs(),
        _ => (95.0 + 3.0 * n).round(),
    };
    f64::from(v as f32)
}

/// The time of `step` of `run` in milliseconds after `t0_ms`: 200 ms a step plus a
/// jitter of 0–39 ms.
pub fn time_ms(t0_ms: i64, run: u64, step: u64) -> i64 {
    let jitter = ((noise(run, step, 99) + 1.0) * 20.0) as i64;
    t0_ms + step as i64 * STEP_MS + jitter
}

/// Steps per batch of `batch` points (at least one).
pub fn steps_per_batch(batch: usize) -> usize {
    (batch / METRICS.len()).max(1)
}

/// A number for `run` (a UUID) to seed its noise.
fn run_seed(run: &str) -> u64 {
    run.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The request body of batch `seq` of `run` for `sink`: steps `seq * k + 1 ..= seq * k + k`
/// (`k` = [`steps_per_batch`]) of every metric.
pub fn body(sink: Sink, run: &str, seq: u64, batch: usize, t0_ms: i64) -> String {
    let k = steps_per_batch(batch) as u64;
    let steps = seq * k + 1..=seq * k + k;
    let seed = run_seed(run);
    let mut b = String::with_capacity(batch * 120);
    match sink {
        Sink::Metacenter => {
            b.push_str(r#"{"metrics":["#);
            let mut sep = "";
            for step in steps {
                let time = DateTime::from_timestamp_millis(time_ms(t0_ms, seed, step))
                    .unwrap_or_default()
                    .to_rfc3339_opts(SecondsFormat::Millis, true);
                for (m, name) in METRICS.iter().enumerate() {
                    let v = value(seed, step, m);
                    let _ = write!(
                        b,
                        r#"{sep}{{"run_id":"{run}","metric_name":"{name}","step":{step},"value":{v},"time":"{time}"}}"#
                    );
                    sep = ",";
                }
            }
            b.push_str("]}");
        }
        Sink::VictoriaMetrics => {
            for (m, name) in METRICS.iter().enumerate() {
                let _ = write!(
                    b,
                    r#"{{"metric":{{"__name__":"{name}","run_id":"{run}"}},"values":["#
                );
                for (i, step) in steps.clone().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(b, "{sep}{}", value(seed, step, m));
                }
                b.push_str(r#"],"timestamps":["#);
                for (i, step) in steps.clone().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(b, "{sep}{}", time_ms(t0_ms, seed, step));
                }
                b.push_str("]}\n");
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_float32s_and_deterministic() {
        for m in 0..METRICS.len() {
            for step in [1, 10, 1_000, 100_000] {
                let v = value(3, step, m);
                assert_eq!(v, f64::from(v as f32));
                assert_eq!(v.to_bits(), value(3, step, m).to_bits());
            }
        }
        assert_ne!(value(1, 5, 0), value(2, 5, 0));
    }

    #[test]
    fn both_sinks_carry_the_same_points() {
        let mc: serde_json::Value =
            serde_json::from_str(&body(Sink::Metacenter, "r", 2, 10, 0)).unwrap();
        let items = mc["metrics"].as_array().unwrap();
        assert_eq!(items.len(), 10);
        assert_eq!(items[0]["step"], 5);
        assert_eq!(items[9]["metric_name"], "gpu_utilization");
        let vm = body(Sink::VictoriaMetrics, "r", 2, 10, 0);
        let lines: Vec<serde_json::Value> = vm
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), METRICS.len());
        assert_eq!(lines[1]["metric"]["__name__"], "accuracy");
        // Step 6 of accuracy: the second step (items 5..10), the second metric.
        assert_eq!(lines[1]["values"][1], items[6]["value"]);
    }

    #[test]
    fn times_rise_with_jitter_below_a_step() {
        let mut last = i64::MIN;
        for step in 1..1000 {
            let t = time_ms(0, 7, step);
            assert!(t > last);
            assert!((t - step as i64 * STEP_MS) < 40);
            last = t;
        }
    }
}
