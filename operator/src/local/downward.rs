//! A relay container's environment with its Downward API values filled in, for a relay run
//! as a process (by `surge-operator local` and `surge-operator pods`). Pure.

use k8s_openapi::api::core::v1::Container;

/// The values the Downward API would give the pod.
#[derive(Clone, Copy, Debug)]
pub struct PodValues<'a> {
    /// `status.podIP(s)`.
    pub pod_ip: &'a str,
    /// `status.hostIP(s)`.
    pub host_ip: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
}

/// `container`'s environment as `(name, value)`: plain values as they are, Downward API
/// fields from `pod`. `Err(name)`: a variable this cannot fill (another field, a Secret or
/// ConfigMap reference), or `envFrom`.
pub fn fill_env(
    container: &Container,
    pod: &PodValues<'_>,
) -> Result<Vec<(String, String)>, String> {
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err("envFrom".to_string());
    }
    let mut env = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("status.podIP" | "status.podIPs") => pod.pod_ip.to_string(),
                Some("status.hostIP" | "status.hostIPs") => pod.host_ip.to_string(),
                Some("metadata.name") => pod.name.to_string(),
                Some("metadata.namespace") => pod.namespace.to_string(),
                _ => return Err(var.name.clone()),
            },
            (Some(value), None) => value.clone(),
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector,
    };

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const POD: PodValues<'static> = PodValues {
        pod_ip: "10.0.0.7",
        host_ip: "192.168.1.2",
        name: "edge-0",
        namespace: "live",
    };

    #[test]
    fn downward_fields_and_plain_values_are_filled_in_order() {
        let container = Container {
            env: Some(vec![
                EnvVar {
                    name: "PLAIN".into(),
                    value: Some("x".into()),
                    ..Default::default()
                },
                field("IP", "status.podIP"),
                field("HOST", "status.hostIP"),
                field("NAME", "metadata.name"),
                field("NS", "metadata.namespace"),
            ]),
            ..Default::default()
        };
        let env = fill_env(&container, &POD).expect("fillable");
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("PLAIN", "x"),
                ("IP", "10.0.0.7"),
                ("HOST", "192.168.1.2"),
                ("NAME", "edge-0"),
                ("NS", "live")
            ]
        );
    }

    #[test]
    fn unfillable_sources_name_the_variable() {
        let other_field = Container {
            env: Some(vec![field("NODE", "spec.nodeName")]),
            ..Default::default()
        };
        assert_eq!(fill_env(&other_field, &POD), Err("NODE".to_string()));
        let secret = Container {
            env: Some(vec![EnvVar {
                name: "KEY".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "keys".into(),
                        key: "k".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(fill_env(&secret, &POD), Err("KEY".to_string()));
        let env_from = Container {
            env_from: Some(vec![Default::default()]),
            ..Default::default()
        };
        assert_eq!(fill_env(&env_from, &POD), Err("envFrom".to_string()));
    }
}
