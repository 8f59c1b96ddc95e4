//! Simultaneous WebSocket connections per source address: a count, not a rate. Each admitted
//! connection holds an [`OpenSlot`] for its whole life; dropping it frees the place.
//!
//! The table holds one entry per source with a connection open now (entries at zero are
//! removed), so its size is bounded by the relay's own connection limit. In memory only, like
//! every other limit: a restart has no connections open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Limited, SOURCE_OPEN_CONNECTIONS, source_key};
use crate::metrics::Metrics;

/// The counts of open connections by source (see the module docs).
#[derive(Debug)]
pub struct OpenConnections {
    most: usize,
    /// A std Mutex: held for a counter update only.
    open: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

/// One open connection's place in its source's count, freed on drop.
#[derive(Debug)]
pub struct OpenSlot {
    table: Arc<OpenConnections>,
    source: IpAddr,
}

impl OpenConnections {
    /// At most `most` connections per source, refusals counted in `metrics`.
    pub fn new(most: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            most: most.max(1),
            open: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Takes a place for a connection from `source` (counted by its key: IPv4 address,
    /// IPv6 /64).
    ///
    /// # Errors
    /// [`Limited`] (and counted) if the source holds its most connections already; a place
    /// frees up when one of them closes, so the wait given is one second.
    pub fn open(self: &Arc<Self>, source: IpAddr) -> Result<OpenSlot, Limited> {
        let source = source_key(source);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(source).or_insert(0);
        if *n >= self.most {
            drop(open);
            self.metrics.limited.inc(SOURCE_OPEN_CONNECTIONS);
            return Err(Limited::new(
                SOURCE_OPEN_CONNECTIONS,
                Duration::from_secs(1),
            ));
        }
        *n += 1;
        Ok(OpenSlot {
            table: Arc::clone(self),
            source,
        })
    }

    /// Connections open now from `source`.
    pub fn count(&self, source: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&source_key(source)).copied().unwrap_or(0)
    }

    /// Sources with a connection open now.
    pub fn sources(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_source_holds_at_most_its_connections_and_a_close_frees_one() {
        let table = OpenConnections::new(2, Arc::new(Metrics::new()));
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let first = table.open(a).unwrap();
        let _second = table.open(a).unwrap();
        let refused = table.open(a).unwrap_err();
        assert_eq!(refused.limit, SOURCE_OPEN_CONNECTIONS);
        assert_eq!(refused.retry_after_secs(), 1);
        // Another source is not held back.
        let other = table.open(b).unwrap();
        assert_eq!((table.count(a), table.count(b)), (2, 1));
        drop(first);
        let _third = table.open(a).unwrap();
        // A source with nothing open leaves no entry behind.
        drop(other);
        assert_eq!(table.count(b), 0);
        assert_eq!(table.sources(), 1);
    }

    #[test]
    fn ipv6_sources_are_counted_by_prefix() {
        let table = OpenConnections::new(1, Arc::new(Metrics::new()));
        let _one = table.open("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(table.open("2001:db8:1:2::ffff".parse().unwrap()).is_err());
        assert!(table.open("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }
}
