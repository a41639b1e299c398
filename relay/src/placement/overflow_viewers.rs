//! Viewers a locator placed on this relay by overflow, counted by their own region. A locator
//! that sends a viewer past its region's edges puts `region=R` in the play URL it hands out
//! ([`REGION_PARAM`]); the relay serving the viewer counts it under R and reports the counts in
//! `/api/v1/streams` (`overflow_viewers`), so the operator adds them to R's demand instead of
//! losing them (on the origin or a reflector) or giving them to another region.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// The query parameter naming the viewer's own region.
pub const REGION_PARAM: &str = "region";

/// Longest region name taken (a DNS label, as Kubernetes names are).
const MAX_REGION_LEN: usize = 63;

/// Distinct regions counted per stream: the query comes from viewers, so a client inventing
/// names must not grow the stats answer without bound (past it, a viewer counts as untagged).
const MAX_REGIONS: usize = 32;

/// `region=R` of a play URL's query (`placed=1&region=eu-west`), when R is a plausible region
/// name (lowercase letters, digits and `-`, at most 63). Anything else is ignored rather than
/// refused: such a viewer counts for the serving relay's own region, as before tagging.
pub fn home_region(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(REGION_PARAM)?.strip_prefix('='))
        .filter(|r| {
            !r.is_empty()
                && r.len() <= MAX_REGION_LEN
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `url` with the viewer's region added to its query.
pub fn tag_url(url: &str, region: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{REGION_PARAM}={region}")
}

/// Per stream: its viewers placed here by overflow, by region.
#[derive(Debug, Default)]
pub struct OverflowViewers(Mutex<BTreeMap<String, u64>>);

impl OverflowViewers {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic elsewhere cannot leave a count half-written: keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a viewer of `region`; false (not counted) past [`MAX_REGIONS`] regions.
    pub fn arrive(&self, region: &str) -> bool {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(region) {
            *n += 1;
            return true;
        }
        if counts.len() >= MAX_REGIONS {
            return false;
        }
        counts.insert(region.to_string(), 1);
        true
    }

    /// A viewer counted by [`Self::arrive`] left.
    pub fn leave(&self, region: &str) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(region) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(region);
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_region_of_a_query_and_ignores_implausible_ones() {
        assert_eq!(home_region("placed=1&region=eu-west"), Some("eu-west"));
        assert_eq!(home_region("region=ap-south-1"), Some("ap-south-1"));
        assert_eq!(home_region("placed=1"), None);
        assert_eq!(home_region("regions=eu"), None);
        assert_eq!(home_region("region="), None);
        assert_eq!(home_region("region=EU"), None);
        assert_eq!(home_region("region=eu%20west"), None);
        assert_eq!(home_region(&format!("region={}", "a".repeat(64))), None);
    }

    #[test]
    fn tags_urls_with_and_without_a_query() {
        assert_eq!(
            tag_url("http://h:1/live/s.flv?placed=1", "eu"),
            "http://h:1/live/s.flv?placed=1&region=eu"
        );
        assert_eq!(
            tag_url("rtmp://h:1/live/s", "eu"),
            "rtmp://h:1/live/s?region=eu"
        );
        assert_eq!(home_region("placed=1&region=eu"), Some("eu"));
    }

    #[test]
    fn counts_come_and_go_and_distinct_regions_are_bounded() {
        let o = OverflowViewers::default();
        assert!(o.arrive("eu") && o.arrive("eu") && o.arrive("ap"));
        o.leave("eu");
        o.leave("ap");
        o.leave("nowhere");
        assert_eq!(o.snapshot(), BTreeMap::from([("eu".to_string(), 1)]));
        for i in 0..MAX_REGIONS - 1 {
            assert!(o.arrive(&format!("r{i}")));
        }
        assert!(!o.arrive("one-too-many"), "bounded");
        assert!(o.arrive("eu"), "a region already counted still counts");
        assert_eq!(o.snapshot().len(), MAX_REGIONS);
    }
}
