//! Loopback addresses of local relays. Pure.
//!
//! Scheme: relay `n` of tier `t` in region `r` listens on `127.<B + r>.<t>.<n>`, with the
//! standard relay ports, where
//! - `B` is the first region octet ([`DEFAULT_FIRST_REGION_OCTET`] = 200: above the kwok
//!   test cluster's pod networks, `127.10.x.x`, and the e2e scripts' `127.40`–`127.119`), and
//!   `r` numbers regions in the order the fleet first sees them (the planned objects' order:
//!   the origin's region first, then the spec's order), so at most `255 - B` regions;
//! - `t` is 0 for the origin, 1 for the edges and `1 + L` for reflector level `L`, so an
//!   address says what the relay is (`127.200.1.3`: an edge of the first region);
//! - `n` is the lowest number in 1..=254 that no relay process of that tier holds, so
//!   addresses are deterministic and a removed relay's address is reused only once the
//!   fleet has [released](AddressBook::release) it, i.e. after its process is gone.
//!
//! A tier's Service has a stand-in ([`super::service_proxy`], as kube-proxy gives a ClusterIP)
//! at `127.<B + r>.<t>.0`, the address no relay gets: `127.200.1.0` is the first region's
//! playback Service, `127.200.0.0` the ingest (the origin's Service).
//!
//! Linux routes all of 127.0.0.0/8 to `lo`, so binding any of these needs no setup.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::labels::TierKind;

/// Second octet of the first region's addresses.
pub const DEFAULT_FIRST_REGION_OCTET: u8 = 200;

/// Highest relay number in a tier (`.255` is left out, `.0` too).
const MAX_RELAY: u8 = 254;

/// Why no address could be handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("region {region}: more than {max} regions do not fit in 127.{first}-254.x.x")]
    TooManyRegions {
        region: String,
        first: u8,
        max: usize,
    },
    #[error("reflector level {0} is too deep for the address scheme (at most 254)")]
    LevelTooDeep(u32),
    #[error("region {region} {tier}: all {MAX_RELAY} addresses are in use")]
    TierFull { region: String, tier: TierKind },
    #[error("region {region}: {address} is numbered for another region")]
    Claimed { region: String, address: Ipv4Addr },
}

/// The third octet of a tier's addresses.
pub fn tier_octet(tier: TierKind) -> Result<u8, AddressError> {
    match tier {
        TierKind::Origin => Ok(0),
        TierKind::Edge => Ok(1),
        TierKind::Reflector(level) => u8::try_from(level)
            .ok()
            .and_then(|l| l.checked_add(1))
            .filter(|_| level >= 1)
            .ok_or(AddressError::LevelTooDeep(level)),
    }
}

/// The addresses handed out, and the region numbering.
#[derive(Clone, Debug)]
pub struct AddressBook {
    first_region_octet: u8,
    /// Region names, by index.
    regions: Vec<String>,
    in_use: BTreeSet<Ipv4Addr>,
}

impl Default for AddressBook {
    fn default() -> Self {
        AddressBook::new(DEFAULT_FIRST_REGION_OCTET)
    }
}

impl AddressBook {
    /// A book whose first region gets `127.<first_region_octet>.x.x`.
    pub fn new(first_region_octet: u8) -> AddressBook {
        AddressBook {
            first_region_octet,
            regions: Vec::new(),
            in_use: BTreeSet::new(),
        }
    }

    /// The second octet of `region`'s addresses, numbering it if it is new (in the first
    /// number no region has, see [`Self::claim`]).
    pub fn region_octet(&mut self, region: &str) -> Result<u8, AddressError> {
        let index = match self.regions.iter().position(|r| r == region) {
            Some(i) => i,
            None => match self.regions.iter().position(String::is_empty) {
                Some(free) => {
                    self.regions[free] = region.to_string();
                    free
                }
                None => {
                    self.regions.push(region.to_string());
                    self.regions.len() - 1
                }
            },
        };
        let octet = u8::try_from(index)
            .ok()
            .and_then(|i| self.first_region_octet.checked_add(i))
            .filter(|o| *o < 255);
        match octet {
            Some(o) => Ok(o),
            None => {
                // Do not keep a region that got no address.
                self.regions.pop_if(|r| r.as_str() == region);
                Err(AddressError::TooManyRegions {
                    region: region.to_string(),
                    first: self.first_region_octet,
                    max: usize::from(255 - self.first_region_octet),
                })
            }
        }
    }

    /// The lowest free address of `tier` in `region`, now in use until [`Self::release`].
    pub fn allocate(&mut self, region: &str, tier: TierKind) -> Result<Ipv4Addr, AddressError> {
        let t = tier_octet(tier)?;
        let r = self.region_octet(region)?;
        let free = (1..=MAX_RELAY)
            .map(|n| Ipv4Addr::new(127, r, t, n))
            .find(|a| !self.in_use.contains(a));
        let Some(address) = free else {
            return Err(AddressError::TierFull {
                region: region.to_string(),
                tier,
            });
        };
        self.in_use.insert(address);
        Ok(address)
    }

    /// The stand-in address of the Service in front of `tier` in `region`.
    pub fn service_address(
        &mut self,
        region: &str,
        tier: TierKind,
    ) -> Result<Ipv4Addr, AddressError> {
        let t = tier_octet(tier)?;
        let r = self.region_octet(region)?;
        Ok(Ipv4Addr::new(127, r, t, 0))
    }

    /// Marks `address`, which a relay of `region` already holds (one adopted from a previous
    /// run), as in use, numbering `region` by the address's second octet. Fails when that
    /// number is another region's.
    pub fn claim(&mut self, region: &str, address: Ipv4Addr) -> Result<(), AddressError> {
        let conflict = || AddressError::Claimed {
            region: region.to_string(),
            address,
        };
        let index = address.octets()[1]
            .checked_sub(self.first_region_octet)
            .map(usize::from)
            .ok_or_else(conflict)?;
        if region.is_empty() {
            return Err(conflict());
        }
        match self.regions.iter().position(|r| r == region) {
            Some(i) if i != index => return Err(conflict()),
            Some(_) => {}
            None => {
                if self.regions.len() <= index {
                    self.regions.resize(index + 1, String::new());
                }
                if !self.regions[index].is_empty() {
                    return Err(conflict());
                }
                self.regions[index] = region.to_string();
            }
        }
        self.in_use.insert(address);
        Ok(())
    }

    /// Frees `address` for reuse: call it only once the process that held it is gone.
    pub fn release(&mut self, address: Ipv4Addr) {
        self.in_use.remove(&address);
    }

    pub fn is_in_use(&self, address: Ipv4Addr) -> bool {
        self.in_use.contains(&address)
    }
}

/// A local relay's pod-like name: `<deployment>-<serial>`, the serial counting up per
/// Deployment from 1 and never reused, so names are stable and unique over a run (pod
/// deletion costs are keyed by these names).
pub fn relay_name(deployment: &str, serial: u64) -> String {
    format!("{deployment}-{serial}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_addresses_keep_their_regions_numbers_and_are_not_handed_out_again() {
        let mut book = AddressBook::default();
        // Adopted relays of the second and third regions; the first region had none.
        book.claim("eu", Ipv4Addr::new(127, 201, 1, 2)).unwrap();
        book.claim("ap", Ipv4Addr::new(127, 202, 1, 1)).unwrap();
        assert!(book.is_in_use(Ipv4Addr::new(127, 201, 1, 2)));
        assert_eq!(
            book.allocate("eu", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 201, 1, 1)
        );
        assert_eq!(
            book.allocate("eu", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 201, 1, 3),
            "the claimed address is skipped"
        );
        // A region new to the book takes the number nobody claimed.
        assert_eq!(book.region_octet("us").unwrap(), 200);
        assert_eq!(book.region_octet("sa").unwrap(), 203);
        // An address numbered for another region, or below the first, is refused.
        assert!(book.claim("eu", Ipv4Addr::new(127, 202, 1, 9)).is_err());
        assert!(book.claim("xx", Ipv4Addr::new(127, 201, 1, 9)).is_err());
        assert!(book.claim("eu", Ipv4Addr::new(127, 100, 1, 9)).is_err());
    }

    #[test]
    fn addresses_follow_region_tier_and_replica() {
        let mut book = AddressBook::default();
        let origin = book.allocate("us", TierKind::Origin).unwrap();
        assert_eq!(origin, Ipv4Addr::new(127, 200, 0, 1));
        assert_eq!(
            book.allocate("us", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 200, 1, 1)
        );
        assert_eq!(
            book.allocate("us", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 200, 1, 2)
        );
        assert_eq!(
            book.allocate("eu", TierKind::Reflector(2)).unwrap(),
            Ipv4Addr::new(127, 201, 3, 1)
        );
        // A known region keeps its number.
        assert_eq!(
            book.allocate("us", TierKind::Reflector(1)).unwrap(),
            Ipv4Addr::new(127, 200, 2, 1)
        );
        assert_eq!(
            book.allocate("eu", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 201, 1, 1)
        );
    }

    #[test]
    fn an_address_is_reused_only_after_release_lowest_first() {
        let mut book = AddressBook::default();
        let a: Vec<Ipv4Addr> = (0..3)
            .map(|_| book.allocate("us", TierKind::Edge).unwrap())
            .collect();
        // Still held (its process may be draining): the next one is new.
        assert_eq!(
            book.allocate("us", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 200, 1, 4)
        );
        book.release(a[1]);
        book.release(a[0]);
        assert!(!book.is_in_use(a[0]));
        assert_eq!(book.allocate("us", TierKind::Edge).unwrap(), a[0]);
        assert_eq!(book.allocate("us", TierKind::Edge).unwrap(), a[1]);
        assert_eq!(
            book.allocate("us", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 200, 1, 5)
        );
    }

    #[test]
    fn every_address_is_unique_loopback_and_bounded() {
        let mut book = AddressBook::new(250);
        let mut seen = BTreeSet::new();
        for region in ["a", "b", "c", "d", "e"] {
            for tier in [TierKind::Origin, TierKind::Edge, TierKind::Reflector(1)] {
                for _ in 0..MAX_RELAY {
                    let a = book.allocate(region, tier).unwrap();
                    assert!(a.is_loopback() && a.octets()[1] < 255 && a.octets()[3] != 0);
                    assert!(seen.insert(a), "{a} handed out twice");
                }
                assert_eq!(
                    book.allocate(region, tier),
                    Err(AddressError::TierFull {
                        region: region.into(),
                        tier
                    })
                );
            }
        }
        // 250..=254: five regions fit, a sixth does not (127.255.x.x is not used).
        assert!(matches!(
            book.allocate("f", TierKind::Edge),
            Err(AddressError::TooManyRegions { .. })
        ));
        assert!(matches!(
            book.allocate("f", TierKind::Edge),
            Err(AddressError::TooManyRegions { .. })
        ));
    }

    #[test]
    fn a_tiers_service_is_its_dot_zero_which_no_relay_gets() {
        let mut book = AddressBook::default();
        book.allocate("us", TierKind::Origin).unwrap();
        assert_eq!(
            book.service_address("eu", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 201, 1, 0)
        );
        assert_eq!(
            book.service_address("us", TierKind::Origin).unwrap(),
            Ipv4Addr::new(127, 200, 0, 0)
        );
        assert_eq!(
            book.allocate("eu", TierKind::Edge).unwrap(),
            Ipv4Addr::new(127, 201, 1, 1)
        );
    }

    #[test]
    fn tier_octets() {
        assert_eq!(tier_octet(TierKind::Origin), Ok(0));
        assert_eq!(tier_octet(TierKind::Edge), Ok(1));
        assert_eq!(tier_octet(TierKind::Reflector(1)), Ok(2));
        assert_eq!(tier_octet(TierKind::Reflector(254)), Ok(255));
        assert_eq!(
            tier_octet(TierKind::Reflector(255)),
            Err(AddressError::LevelTooDeep(255))
        );
        assert_eq!(
            tier_octet(TierKind::Reflector(0)),
            Err(AddressError::LevelTooDeep(0))
        );
        assert_eq!(relay_name("s-us-edge", 3), "s-us-edge-3");
    }
}
