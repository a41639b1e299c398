//! The Secret holding a Stream's signing key, read for every reconcile; the operator's own
//! (`<stream>-signing-key`) is created with a new key when it does not exist. IO. It is never
//! replaced or updated: a Secret that exists keeps its key (whoever made it), and the Stream
//! owns the one it creates, so it goes when the Stream goes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use surge_integrity::SigningKey;

use crate::build::Target;
use crate::integrity::{KeySecret, SIGNING_ITEM, SecretRead};
use crate::labels::{LABEL_COMPONENT, stream_selector};
use crate::reconcile::describe_kube_error;

/// The data of `key`'s Secret, creating the operator's own when it is missing. Errors of
/// the API server are part of the answer (the status names them), not of the reconcile.
pub async fn read_or_create(client: &Client, target: &Target, key: &KeySecret) -> SecretRead {
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    match api.get_opt(&key.name).await {
        Ok(Some(secret)) => return data_of(&secret),
        Ok(None) if !key.generated => return SecretRead::Missing,
        Ok(None) => {}
        Err(e) => return SecretRead::Failed(describe_kube_error(&e)),
    }
    let pem = match SigningKey::generate_pem() {
        Ok(pem) => pem,
        Err(e) => return SecretRead::Failed(e.to_string()),
    };
    let secret = generated_secret(target, &key.name, pem);
    match api.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            tracing::info!(secret = %key.name, "generated the signing key Secret");
            data_of(&created)
        }
        // Made by someone else in between: theirs stands.
        Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&key.name).await {
            Ok(Some(secret)) => data_of(&secret),
            Ok(None) => SecretRead::Missing,
            Err(e) => SecretRead::Failed(describe_kube_error(&e)),
        },
        Err(e) => SecretRead::Failed(describe_kube_error(&e)),
    }
}

/// A new Secret `name` holding `pem` as `signing.key`, owned by the Stream.
pub fn generated_secret(target: &Target, name: &str, pem: String) -> Secret {
    let mut labels = stream_selector(&target.stream);
    labels.insert(LABEL_COMPONENT.to_string(), "signing-key".to_string());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(target.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            SIGNING_ITEM.to_string(),
            ByteString(pem.into_bytes()),
        )])),
        ..Secret::default()
    }
}

fn data_of(secret: &Secret) -> SecretRead {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    // stringData is write-only on the server, but a Secret read from a manifest may carry it.
    for (k, v) in secret.string_data.iter().flatten() {
        data.entry(k.clone())
            .or_insert_with(|| v.clone().into_bytes());
    }
    SecretRead::Data(data)
}
