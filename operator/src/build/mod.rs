//! Pure builders: one function per kind, from the tree plan to the objects to apply.

pub mod deployment;
pub mod integrity;
pub mod pdb;
pub mod pod_settings;
pub mod publish_keys;
pub mod secret_volume;
pub mod service;
pub mod service_settings;
pub mod tls;

pub use deployment::{build_deployment, relay_args};
pub use service::{build_peers_service, build_service};

/// Where objects go and who owns them.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub stream: String,
    pub namespace: String,
    pub app: String,
    pub owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
}

/// In-cluster DNS name of a Service.
pub fn service_host(service: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{service}.{namespace}.svc.{cluster_domain}")
}
