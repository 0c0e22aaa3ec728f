//! The drill's time series: operations grouped in 100 ms buckets by the
//! time they completed (throughput, latency percentiles, errors), and the
//! percentile helpers the report uses.

use std::time::Duration;

use serde::Serialize;

use super::load::{Op, OpKind};

/// Width of one bucket.
pub(crate) const BUCKET: Duration = Duration::from_millis(100);

/// One bucket of the timeline. Connection attempts count as errors when
/// they fail but are not operations.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, seconds since the drill started.
    pub t_s: f64,
    /// Operations completed successfully.
    pub ok: u64,
    pub errors: u64,
    /// `ok` per second.
    pub ops_per_s: f64,
    /// Latency of the operations completed here (successful or not).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// p50 / p99 / max of a set of values (milliseconds).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50 / p99 / max, `None` for no values.
pub fn spread(mut values: Vec<f64>) -> Option<Spread> {
    values.sort_by(f64::total_cmp);
    Some(Spread {
        p50: percentile(&values, 0.50)?,
        p99: percentile(&values, 0.99)?,
        max: *values.last()?,
    })
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Group `ops` into buckets from 0 to `until`.
pub fn buckets(ops: &[Op], until: Duration) -> Vec<Bucket> {
    let n = (until.as_nanos() / BUCKET.as_nanos()) as usize + 1;
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut ok = vec![0u64; n];
    let mut err = vec![0u64; n];
    for op in ops {
        let i = ((op.end().as_nanos() / BUCKET.as_nanos()) as usize).min(n - 1);
        if op.error.is_some() {
            err[i] += 1;
        }
        if op.kind == OpKind::Connect {
            continue;
        }
        if op.error.is_none() {
            ok[i] += 1;
        }
        lat[i].push(ms(op.latency));
    }
    (0..n)
        .map(|i| {
            let s = spread(std::mem::take(&mut lat[i]));
            Bucket {
                t_s: (i as f64) * BUCKET.as_secs_f64(),
                ok: ok[i],
                errors: err[i],
                ops_per_s: ok[i] as f64 / width(i, until),
                p50_ms: s.map(|s| s.p50),
                p99_ms: s.map(|s| s.p99),
                max_ms: s.map(|s| s.max),
            }
        })
        .collect()
}

/// Seconds bucket `i` covers (the last one may be cut short by `until`).
fn width(i: usize, until: Duration) -> f64 {
    let start = BUCKET.as_secs_f64() * i as f64;
    (until.as_secs_f64() - start).clamp(0.001, BUCKET.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::ErrKind;

    fn op(start_ms: u64, lat_ms: u64, error: Option<ErrKind>) -> Op {
        Op {
            kind: OpKind::Read,
            start: Duration::from_millis(start_ms),
            latency: Duration::from_millis(lat_ms),
            error,
            wrote: false,
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(spread(vec![]), None);
        let s = spread(vec![5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (3.0, 5.0, 5.0));
    }

    #[test]
    fn ops_land_in_the_bucket_where_they_completed() {
        let ops = [
            op(10, 20, None),
            op(50, 100, None),
            op(120, 5, Some(ErrKind::Timeout)),
        ];
        let b = buckets(&ops, Duration::from_millis(250));
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].ok, b[0].errors, b[0].max_ms), (1, 0, Some(20.0)));
        assert_eq!((b[1].ok, b[1].errors, b[1].max_ms), (1, 1, Some(100.0)));
        assert_eq!(b[1].ops_per_s, 10.0);
        assert_eq!((b[2].ok, b[2].p99_ms), (0, None));
        let b = buckets(&ops[..1], Duration::from_millis(40));
        assert_eq!(b[0].ops_per_s, 25.0, "the last bucket is 40 ms wide");
    }
}
