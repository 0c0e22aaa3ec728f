//! MariaDB global transaction ids: one `domain-server-seq` GTID and a
//! position (a `@@gtid_binlog_pos` / `@@gtid_current_pos` list: the last
//! GTID of each replication domain). Within a domain sequence numbers only
//! grow (gtid_strict_mode), so a position contains a GTID when its domain's
//! sequence number is at least the GTID's, whichever server wrote it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why a GTID or position did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtidError {
    #[error("{0:?} is not a GTID (domain-server-seq)")]
    Gtid(String),
    #[error("{0:?} names domain {1} twice")]
    DuplicateDomain(String, u32),
}

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl FromStr for Gtid {
    type Err = GtidError;
    fn from_str(s: &str) -> Result<Gtid, GtidError> {
        let bad = || GtidError::Gtid(s.to_string());
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let (d, sv, sq) = (next()?, next()?, next()?);
        Ok(Gtid {
            domain: d.parse().map_err(|_| bad())?,
            server: sv.parse().map_err(|_| bad())?,
            seq: sq.parse().map_err(|_| bad())?,
        })
    }
}

impl Gtid {
    /// Parse the bytes of a tracked `last_gtid` value.
    pub fn from_bytes(b: &[u8]) -> Option<Gtid> {
        std::str::from_utf8(b).ok()?.parse().ok()
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A GTID position: the highest GTID per replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    domains: BTreeMap<u32, Gtid>,
}

impl GtidPos {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The GTID of each domain, by domain.
    pub fn gtids(&self) -> impl Iterator<Item = &Gtid> {
        self.domains.values()
    }

    /// The position's GTID in `domain`.
    pub fn get(&self, domain: u32) -> Option<&Gtid> {
        self.domains.get(&domain)
    }

    /// Raise `g`'s domain to `g` unless it is already at or past it.
    /// Returns whether the position moved.
    pub fn advance(&mut self, g: Gtid) -> bool {
        match self.domains.get(&g.domain) {
            Some(have) if have.seq >= g.seq => false,
            _ => {
                self.domains.insert(g.domain, g);
                true
            }
        }
    }

    /// The highest of both in every domain.
    pub fn merge(&mut self, other: &GtidPos) {
        for g in other.gtids() {
            self.advance(*g);
        }
    }

    /// The transaction `g` is at or before this position in its domain.
    pub fn contains(&self, g: &Gtid) -> bool {
        self.domains.get(&g.domain).is_some_and(|h| h.seq >= g.seq)
    }

    /// Every domain of `other` is contained in this position.
    pub fn covers(&self, other: &GtidPos) -> bool {
        other.gtids().all(|g| self.contains(g))
    }

    /// Transactions of `ahead` that this position lacks, summed over
    /// domains (the `behind` of the proxy's `/status`).
    pub fn behind(&self, ahead: &GtidPos) -> u64 {
        ahead
            .gtids()
            .map(|g| {
                g.seq
                    .saturating_sub(self.get(g.domain).map_or(0, |h| h.seq))
            })
            .sum()
    }
}

impl FromStr for GtidPos {
    type Err = GtidError;
    /// A comma-separated list (whitespace and newlines allowed); empty is
    /// the empty position.
    fn from_str(s: &str) -> Result<GtidPos, GtidError> {
        let mut pos = GtidPos::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: Gtid = part.parse()?;
            if pos.domains.insert(g.domain, g).is_some() {
                return Err(GtidError::DuplicateDomain(s.to_string(), g.domain));
            }
        }
        Ok(pos)
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.gtids().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Gtid {
        s.parse().unwrap()
    }

    #[test]
    fn a_gtid_parses_and_prints_back() {
        assert_eq!(
            g("0-1-15"),
            Gtid {
                domain: 0,
                server: 1,
                seq: 15
            }
        );
        assert_eq!(
            g(" 7-4294967295-18446744073709551615").to_string(),
            "7-4294967295-18446744073709551615"
        );
        assert_eq!(Gtid::from_bytes(b"1-2-3"), Some(g("1-2-3")));
        for bad in ["", "0-1", "0-1-x", "a-1-2", "0--1", "-1-1-1", "0-1-2-3"] {
            assert!(bad.parse::<Gtid>().is_err(), "{bad:?}");
        }
        assert_eq!(Gtid::from_bytes(b"\xff"), None);
    }

    #[test]
    fn a_position_parses_sorted_and_prints_as_mariadb_lists_it() {
        let p: GtidPos = "1-2-30,\n0-1-15".parse().unwrap();
        assert_eq!(p.to_string(), "0-1-15,1-2-30");
        assert_eq!("".parse::<GtidPos>().unwrap(), GtidPos::new());
        assert!(matches!(
            "0-1-1,0-2-2".parse::<GtidPos>(),
            Err(GtidError::DuplicateDomain(_, 0))
        ));
        assert!("0-1-1,x".parse::<GtidPos>().is_err());
    }

    #[test]
    fn contains_compares_sequence_numbers_within_the_domain_only() {
        let p: GtidPos = "0-1-15,1-2-30".parse().unwrap();
        assert!(p.contains(&g("0-1-15")));
        assert!(p.contains(&g("0-2-3")), "another server, same domain");
        assert!(!p.contains(&g("0-1-16")));
        assert!(!p.contains(&g("2-1-1")), "a domain the position lacks");
        assert!(p.covers(&"0-9-10,1-2-30".parse().unwrap()));
        assert!(!p.covers(&"0-1-10,1-2-31".parse().unwrap()));
        assert!(p.covers(&GtidPos::new()));
        assert!(!GtidPos::new().covers(&p));
    }

    #[test]
    fn advance_keeps_the_highest_per_domain() {
        let mut p = GtidPos::new();
        assert!(p.advance(g("0-1-5")));
        assert!(!p.advance(g("0-1-4")));
        assert!(!p.advance(g("0-2-5")));
        assert!(p.advance(g("0-2-6")));
        assert!(p.advance(g("3-1-1")));
        assert_eq!(p.to_string(), "0-2-6,3-1-1");
        let mut q: GtidPos = "0-1-9,1-1-1".parse().unwrap();
        q.merge(&p);
        assert_eq!(q.to_string(), "0-1-9,1-1-1,3-1-1");
        assert_eq!(q.get(3), Some(&g("3-1-1")));
    }

    #[test]
    fn behind_counts_missing_transactions() {
        let pos = |t: &str| t.parse::<GtidPos>().unwrap();
        assert_eq!(pos("0-1-7").behind(&pos("0-1-10")), 3);
        assert_eq!(pos("0-1-12").behind(&pos("0-1-10")), 0);
        assert_eq!(pos("0-1-7").behind(&pos("0-1-10,1-1-2")), 5);
        assert_eq!(pos("").behind(&pos("")), 0);
        assert!(pos("0-2-11").covers(&pos("0-1-10")), "whichever server");
    }
}
