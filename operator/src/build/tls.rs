//! TLS for a Stream (`spec.tls.secretRef`): a `kubernetes.io/tls` Secret (as cert-manager
//! writes it) mounted into the origin, which takes RTMPS publishers on [`RTMPS_PORT`], and into
//! the edges, which serve HTTP-FLV and the locator over HTTPS on [`HTTPS_PORT`]; their
//! Services expose those ports too. Reflectors only talk to other relays and get nothing.
//! The kubelet rewrites the mounted files when the Secret is renewed, and the relay serves the
//! new certificate to the next connection without a restart.

use k8s_openapi::api::core::v1::{ContainerPort, Service, ServicePort, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::StreamSpec;
use crate::labels::TierKind;
use crate::tree::TierPlan;

/// The origin's RTMPS port (container and Service).
pub const RTMPS_PORT: u16 = 1936;
/// The edges' HTTPS port (container and Service).
pub const HTTPS_PORT: u16 = 8443;
/// Where the Secret is mounted (a directory: a `subPath` mount would never be updated).
pub const TLS_DIR: &str = "/etc/surge-tls";
/// The relay flags that need the Secret (left out where there are no Secrets: local mode).
pub const TLS_FLAGS: [&str; 4] = [
    "--rtmps-listen",
    "--https-listen",
    "--tls-cert",
    "--tls-key",
];
const TLS_VOLUME: &str = "tls";
/// The data keys of a `kubernetes.io/tls` Secret, mounted under the same names.
const CERT_ITEM: &str = "tls.crt";
const KEY_ITEM: &str = "tls.key";

/// What a tier serves over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TlsListener {
    /// Port name (container and Service).
    name: &'static str,
    port: u16,
    flag: &'static str,
}

/// The Secret's name and the listener, for a tier that serves TLS.
fn tls_for<'s>(spec: &'s StreamSpec, tier: &TierPlan) -> Option<(&'s str, TlsListener)> {
    let secret = spec.tls.as_ref()?.secret_ref.name.as_str();
    let listener = match tier.kind {
        TierKind::Origin => TlsListener {
            name: "rtmps",
            port: RTMPS_PORT,
            flag: "--rtmps-listen",
        },
        TierKind::Edge => TlsListener {
            name: "https",
            port: HTTPS_PORT,
            flag: "--https-listen",
        },
        TierKind::Reflector(_) => return None,
    };
    Some((secret, listener))
}

/// `--rtmps-listen`/`--https-listen` and the certificate files, for a tier that serves TLS.
pub fn tls_args(spec: &StreamSpec, tier: &TierPlan) -> Vec<String> {
    let Some((_, l)) = tls_for(spec, tier) else {
        return Vec::new();
    };
    vec![
        l.flag.to_string(),
        format!("0.0.0.0:{}", l.port),
        "--tls-cert".to_string(),
        format!("{TLS_DIR}/{CERT_ITEM}"),
        "--tls-key".to_string(),
        format!("{TLS_DIR}/{KEY_ITEM}"),
    ]
}

/// The container port for the TLS listener.
pub fn tls_container_port(spec: &StreamSpec, tier: &TierPlan) -> Option<ContainerPort> {
    let (_, l) = tls_for(spec, tier)?;
    Some(ContainerPort {
        name: Some(l.name.to_string()),
        container_port: i32::from(l.port),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    })
}

/// The Secret volume (certificate and key only) and its read-only mount.
pub fn tls_volume(spec: &StreamSpec, tier: &TierPlan) -> Option<(Volume, VolumeMount)> {
    let (secret, _) = tls_for(spec, tier)?;
    Some(super::secret_volume::mounted(
        TLS_VOLUME,
        super::secret_volume::Source::Secret(secret),
        &[(CERT_ITEM, CERT_ITEM), (KEY_ITEM, KEY_ITEM)],
        TLS_DIR,
    ))
}

/// `service` with the tier's TLS port added (the origin's ingest Service: `rtmps`; a region's
/// playback Service: `https`).
pub fn with_tls_port(mut service: Service, spec: &StreamSpec, tier: &TierPlan) -> Service {
    if let (Some((_, l)), Some(svc)) = (tls_for(spec, tier), service.spec.as_mut()) {
        svc.ports.get_or_insert_with(Vec::new).push(ServicePort {
            name: Some(l.name.to_string()),
            port: i32::from(l.port),
            target_port: Some(IntOrString::String(l.name.to_string())),
            protocol: Some("TCP".to_string()),
            ..ServicePort::default()
        });
    }
    service
}

/// `args` without the TLS flags and their values, and whether any was there:
/// `surge-operator local` has no Secrets (nor the ports to spare), so its relays serve plain
/// RTMP and HTTP only.
pub fn without_tls(args: Vec<String>) -> (Vec<String>, bool) {
    let mut out = Vec::with_capacity(args.len());
    let mut found = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if TLS_FLAGS.contains(&a.as_str()) {
            found = true;
            it.next();
        } else if TLS_FLAGS
            .iter()
            .any(|f| a.strip_prefix(f).is_some_and(|rest| rest.starts_with('=')))
        {
            found = true;
        } else {
            out.push(a);
        }
    }
    (out, found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ServiceType;
    use k8s_openapi::api::core::v1::ServiceSpec;

    fn spec(tls: Option<&str>) -> StreamSpec {
        let mut v = serde_json::json!({
            "origin": {"region": "eu"},
            "regions": [{"name": "eu"}],
        });
        if let Some(name) = tls {
            v["tls"] = serde_json::json!({"secretRef": {"name": name}});
        }
        serde_json::from_value(v).expect("a Stream spec")
    }

    fn tier(kind: TierKind) -> TierPlan {
        TierPlan {
            kind,
            region: "eu".into(),
            name: format!("s-{}", kind.tier_name()),
            replicas: 1,
            upstreams: vec![],
            external: Vec::new(),
            node_selector: Default::default(),
            service_type: ServiceType::default(),
            placement: None,
            parents: None,
        }
    }

    fn service() -> Service {
        Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn port_names(s: &Service) -> Vec<(String, i32)> {
        s.spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| (p.name.clone().unwrap_or_default(), p.port))
            .collect()
    }

    #[test]
    fn the_origin_takes_rtmps_and_the_edges_serve_https_from_the_mounted_secret() {
        let s = spec(Some("live-tls"));
        let origin = tier(TierKind::Origin);
        assert_eq!(
            tls_args(&s, &origin).join(" "),
            "--rtmps-listen 0.0.0.0:1936 --tls-cert /etc/surge-tls/tls.crt \
             --tls-key /etc/surge-tls/tls.key"
        );
        let edge = tier(TierKind::Edge);
        assert_eq!(tls_args(&s, &edge)[..2], ["--https-listen", "0.0.0.0:8443"]);
        assert_eq!(
            port_names(&with_tls_port(service(), &s, &origin)),
            [("rtmps".to_string(), 1936)]
        );
        assert_eq!(
            port_names(&with_tls_port(service(), &s, &edge)),
            [("https".to_string(), 8443)]
        );
        assert_eq!(
            tls_container_port(&s, &edge).map(|p| p.container_port),
            Some(8443)
        );
        let (volume, mount) = tls_volume(&s, &edge).expect("volume");
        let secret = volume.secret.expect("a Secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("live-tls"));
        let items: Vec<_> = secret.items.iter().flatten().map(|i| &i.key).collect();
        assert_eq!(items, ["tls.crt", "tls.key"]);
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            (TLS_DIR, Some(true))
        );
        assert_eq!(mount.sub_path, None, "a subPath mount is never updated");
    }

    #[test]
    fn reflectors_and_streams_without_tls_get_nothing() {
        let s = spec(Some("live-tls"));
        let reflector = tier(TierKind::Reflector(1));
        assert!(tls_args(&s, &reflector).is_empty());
        assert!(tls_volume(&s, &reflector).is_none());
        assert!(port_names(&with_tls_port(service(), &s, &reflector)).is_empty());
        let plain = spec(None);
        for kind in [TierKind::Origin, TierKind::Edge] {
            assert!(tls_args(&plain, &tier(kind)).is_empty());
            assert!(tls_container_port(&plain, &tier(kind)).is_none());
        }
    }

    #[test]
    fn an_invalid_secret_name_is_refused_naming_the_field() {
        let errors = crate::validate::validate("s", &spec(Some("Not_A_Name")));
        assert!(
            errors.iter().any(|e| e.field == "spec.tls.secretRef.name"),
            "{errors:?}"
        );
        assert!(crate::validate::validate("s", &spec(Some("live-tls"))).is_empty());
    }

    #[test]
    fn local_mode_drops_the_tls_flags_and_their_values_only() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            without_tls(args(
                "--tier origin --rtmps-listen 0.0.0.0:1936 --tls-cert=/c --tls-key /k --region eu"
            )),
            (args("--tier origin --region eu"), true)
        );
        assert_eq!(
            without_tls(args("--tier edge --http-listen 0.0.0.0:8080")),
            (args("--tier edge --http-listen 0.0.0.0:8080"), false)
        );
    }
}
