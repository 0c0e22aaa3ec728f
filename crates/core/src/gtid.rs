//! MariaDB GTID positions as the read-only listener uses them: the
//! protocol crate's [`Gtid`] and [`GtidPos`] (parse, format, `covers`), and
//! how many transactions one position lacks of another (the `behind` of
//! `/status`). Pure, a leaf.

pub use mysql_zk_proxy_protocol::gtid::{Gtid, GtidError, GtidPos};

/// Transactions of `ahead` that `have` lacks, summed over domains.
pub fn behind(have: &GtidPos, ahead: &GtidPos) -> u64 {
    ahead
        .gtids()
        .map(|g| {
            g.seq
                .saturating_sub(have.get(g.domain).map_or(0, |h| h.seq))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(t: &str) -> GtidPos {
        t.parse().unwrap()
    }

    #[test]
    fn behind_counts_missing_transactions() {
        assert_eq!(behind(&pos("0-1-7"), &pos("0-1-10")), 3);
        assert_eq!(behind(&pos("0-1-12"), &pos("0-1-10")), 0);
        assert_eq!(behind(&pos("0-1-7"), &pos("0-1-10,1-1-2")), 5);
        assert_eq!(behind(&pos(""), &pos("")), 0);
    }

    #[test]
    fn covers_compares_seq_per_domain_whichever_server() {
        assert!(pos("0-2-11").covers(&pos("0-1-10")));
        assert!(!pos("0-1-9").covers(&pos("0-1-10")));
        assert!(!pos("0-1-10").covers(&pos("0-1-10,1-1-1")));
    }
}
