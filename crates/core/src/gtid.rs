//! MariaDB GTID positions (`domain-server-seq` lists such as
//! `@@gtid_binlog_pos`): parse, format, merge and the `covers` order the
//! read-only listener's lag check and causal reads use. Pure, a leaf.

use std::collections::BTreeMap;
use std::fmt;

/// One GTID, `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

/// A position: the last GTID of each replication domain. MariaDB orders
/// GTIDs of one domain by `seq` alone; domains are independent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    domains: BTreeMap<u32, (u32, u64)>,
}

/// Text that is not a GTID position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a GTID position (domain-server-seq[,...])")]
pub struct GtidError(pub String);

impl Gtid {
    /// Parse `domain-server-seq`.
    pub fn parse(text: &str) -> Result<Gtid, GtidError> {
        let bad = || GtidError(text.to_owned());
        let mut parts = text.trim().split('-');
        let (Some(d), Some(s), Some(q), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Gtid {
            domain: d.parse().map_err(|_| bad())?,
            server: s.parse().map_err(|_| bad())?,
            seq: q.parse().map_err(|_| bad())?,
        })
    }
}

impl GtidPos {
    /// Parse a comma-separated list (empty text = the empty position).
    pub fn parse(text: &str) -> Result<GtidPos, GtidError> {
        let mut pos = GtidPos::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            pos.record(Gtid::parse(part)?);
        }
        Ok(pos)
    }

    /// Take `gtid` into the position unless its domain is already further.
    pub fn record(&mut self, gtid: Gtid) {
        let e = self.domains.entry(gtid.domain).or_insert((gtid.server, 0));
        if gtid.seq >= e.1 {
            *e = (gtid.server, gtid.seq);
        }
    }

    /// Take every domain of `other` that is further than this position.
    pub fn merge(&mut self, other: &GtidPos) {
        for (&domain, &(server, seq)) in &other.domains {
            self.record(Gtid {
                domain,
                server,
                seq,
            });
        }
    }

    /// Does this position include everything `other` names (every domain of
    /// `other` present here with a seq at least as high)?
    pub fn covers(&self, other: &GtidPos) -> bool {
        other
            .domains
            .iter()
            .all(|(d, (_, seq))| self.domains.get(d).is_some_and(|(_, have)| have >= seq))
    }

    /// Transactions of `ahead` this position lacks, summed over domains.
    pub fn behind(&self, ahead: &GtidPos) -> u64 {
        ahead
            .domains
            .iter()
            .map(|(d, (_, seq))| seq.saturating_sub(self.domains.get(d).map_or(0, |v| v.1)))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (d, (s, q)) in &self.domains {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{d}-{s}-{q}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(t: &str) -> GtidPos {
        GtidPos::parse(t).unwrap()
    }

    #[test]
    fn parse_and_format_round_trip() {
        assert_eq!(pos("0-1-42,1-2-7").to_string(), "0-1-42,1-2-7");
        assert_eq!(pos(" 1-2-7 , 0-1-42 ").to_string(), "0-1-42,1-2-7");
        assert_eq!(pos("").to_string(), "");
        assert!(pos("").is_empty());
        for bad in ["0-1", "0-1-2-3", "a-1-2", "0-1-x", "-1-2"] {
            assert!(GtidPos::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn covers_compares_seq_per_domain() {
        assert!(pos("0-1-10").covers(&pos("0-1-10")));
        assert!(pos("0-2-11").covers(&pos("0-1-10")));
        assert!(!pos("0-1-9").covers(&pos("0-1-10")));
        assert!(!pos("0-1-10").covers(&pos("0-1-10,1-1-1")));
        assert!(pos("0-1-10,1-1-1").covers(&pos("0-1-3")));
        assert!(pos("").covers(&pos("")));
        assert!(!pos("").covers(&pos("0-1-1")));
    }

    #[test]
    fn record_and_merge_never_go_back() {
        let mut p = pos("0-1-10");
        p.record(Gtid::parse("0-1-5").unwrap());
        assert_eq!(p.to_string(), "0-1-10");
        p.merge(&pos("0-2-12,3-1-1"));
        assert_eq!(p.to_string(), "0-2-12,3-1-1");
    }

    #[test]
    fn behind_counts_missing_transactions() {
        assert_eq!(pos("0-1-7").behind(&pos("0-1-10")), 3);
        assert_eq!(pos("0-1-12").behind(&pos("0-1-10")), 0);
        assert_eq!(pos("0-1-7").behind(&pos("0-1-10,1-1-2")), 5);
    }
}
