//! The fleet's hosts file: each Service's DNS name and the addresses it stands for now, which
//! every local relay reads on each lookup (`surge-relay --hosts-file`), so names follow the
//! fleet as cluster DNS follows pods. Pure, but for [`write_atomically`].
//!
//! Per Service, as cluster DNS answers for `<service>.<namespace>.svc.<domain>`:
//! - a normal Service: its stand-in address ([`super::service_proxy`]), as DNS gives the
//!   ClusterIP; without a stand-in, its Ready relays, else its running ones;
//! - a headless Service (`clusterIP: None`): its Ready relays, or with
//!   `publishNotReadyAddresses` every relay it selects but those told to stop (they leave at
//!   once, so locators drop them before they stop accepting). A Service with no relay is
//!   listed with no address, so it resolves to none.
//!
//! Format (the relay's): one `NAME [ADDRESS ...]` line per name.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use k8s_openapi::api::core::v1::Service;

use super::rewrite::{Endpoint, is_headless, publishes_not_ready, selected, service_key};

/// The DNS name of `service`.
pub fn dns_name(service: &Service, cluster_domain: &str) -> String {
    format!(
        "{}.{}.svc.{cluster_domain}",
        service.metadata.name.as_deref().unwrap_or_default(),
        service.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// What each Service's name resolves to, by name. `stand_ins` are the stand-in addresses
/// by [`service_key`].
pub fn entries(
    services: &[Service],
    endpoints: &[Endpoint<'_>],
    stand_ins: &BTreeMap<String, Ipv4Addr>,
    cluster_domain: &str,
) -> BTreeMap<String, Vec<Ipv4Addr>> {
    services
        .iter()
        .map(|service| {
            let relays = selected(service, endpoints);
            let serving: Vec<Ipv4Addr> = relays
                .iter()
                .filter(|e| e.serving())
                .map(|e| e.address)
                .collect();
            let addresses = if is_headless(service) {
                if publishes_not_ready(service) {
                    relays
                        .iter()
                        .filter(|e| !e.terminating)
                        .map(|e| e.address)
                        .collect()
                } else {
                    serving
                }
            } else if let Some(stand_in) = stand_ins.get(&service_key(service)) {
                vec![*stand_in]
            } else if serving.is_empty() {
                relays
                    .iter()
                    .filter(|e| !e.terminating)
                    .map(|e| e.address)
                    .collect()
            } else {
                serving
            };
            (dns_name(service, cluster_domain), addresses)
        })
        .collect()
}

/// The file's text.
pub fn render(entries: &BTreeMap<String, Vec<Ipv4Addr>>) -> String {
    let mut out = String::from("# surge-operator local: Service names and their relays now\n");
    for (name, addresses) in entries {
        out.push_str(name);
        for a in addresses {
            out.push(' ');
            out.push_str(&a.to_string());
        }
        out.push('\n');
    }
    out
}

/// Replaces `path` with `text` at once (a temporary file renamed over it), so a relay never
/// reads half a file.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn labels(tier: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("tier".to_string(), tier.to_string())])
    }

    fn service(name: &str, tier: &str, headless: bool, not_ready_too: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("media".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels(tier)),
                cluster_ip: headless.then(|| "None".to_string()),
                publish_not_ready_addresses: not_ready_too.then_some(true),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn names_stand_for_stand_ins_or_relays_as_cluster_dns_answers() {
        let (edge, origin) = (labels("edge"), labels("origin"));
        let e = |labels, last, ready, terminating| Endpoint {
            namespace: "media",
            labels,
            address: Ipv4Addr::new(127, 200, 1, last),
            ready,
            terminating,
        };
        let endpoints = [
            e(&edge, 2, false, false),
            e(&edge, 1, true, false),
            e(&edge, 3, false, true),
            e(&origin, 9, false, false),
        ];
        let services = [
            service("s-edge", "edge", false, false),
            service("s-origin", "origin", false, false),
            service("s-peers", "edge", true, true),
            service("s-ready-peers", "edge", true, false),
            service("s-nobody", "reflector", true, true),
        ];
        let stand_ins =
            BTreeMap::from([("media/s-edge".to_string(), Ipv4Addr::new(127, 200, 1, 0))]);
        let got = entries(&services, &endpoints, &stand_ins, "cluster.local");
        let ip = |last| Ipv4Addr::new(127, 200, 1, last);
        assert_eq!(got["s-edge.media.svc.cluster.local"], [ip(0)]);
        // No stand-in and none Ready: the running one.
        assert_eq!(got["s-origin.media.svc.cluster.local"], [ip(9)]);
        // Not Ready ones too, but not the draining .3.
        assert_eq!(got["s-peers.media.svc.cluster.local"], [ip(1), ip(2)]);
        assert_eq!(got["s-ready-peers.media.svc.cluster.local"], [ip(1)]);
        assert!(got["s-nobody.media.svc.cluster.local"].is_empty());
        assert_eq!(
            render(&got),
            "# surge-operator local: Service names and their relays now\n\
             s-edge.media.svc.cluster.local 127.200.1.0\n\
             s-nobody.media.svc.cluster.local\n\
             s-origin.media.svc.cluster.local 127.200.1.9\n\
             s-peers.media.svc.cluster.local 127.200.1.1 127.200.1.2\n\
             s-ready-peers.media.svc.cluster.local 127.200.1.1\n"
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("surge-local-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        write_atomically(&path, "a 127.0.0.1\n").unwrap();
        write_atomically(&path, "b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
