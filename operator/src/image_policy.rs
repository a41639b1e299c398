//! Which relay images a Stream may name (`--allowed-relay-images`). The operator runs relays
//! with its own rights, so without a list anyone who may create Streams could make it run any
//! image. The operator's own `--relay-image` (used when a Stream names none) is always allowed.
//!
//! An entry is one of:
//! - a repository, `registry.example/surge-relay`: that repository at any tag or digest
//!   (`...:1.2`, `...@sha256:...`), and not `registry.example/surge-relay-other`;
//! - a full reference with a tag or digest, `registry.example/surge-relay:1.2`: exactly that;
//! - a prefix ending in `*`, `registry.example/media/*`: anything starting with the prefix
//!   (`*` alone allows every image).

use crate::validate::FieldError;

/// Whether `entry` (a repository, a full reference or a `*` prefix) allows `image`.
pub fn entry_allows(entry: &str, image: &str) -> bool {
    if let Some(prefix) = entry.strip_suffix('*') {
        return image.starts_with(prefix);
    }
    if has_tag_or_digest(entry) {
        return image == entry;
    }
    match image.strip_prefix(entry) {
        Some("") => true,
        Some(rest) => rest.starts_with(':') || rest.starts_with('@'),
        None => false,
    }
}

/// Whether a reference names a tag or digest: a `@`, or a `:` after the last `/` (a `:` before
/// it is a registry's port).
fn has_tag_or_digest(reference: &str) -> bool {
    reference.contains('@')
        || reference
            .rsplit_once('/')
            .map_or(reference, |(_, last)| last)
            .contains(':')
}

/// The refusal of a Stream's `spec.relay.image`, if `allowed` is non-empty and no entry allows it.
pub fn image_error(image: Option<&str>, allowed: &[String]) -> Option<FieldError> {
    let image = image?;
    if allowed.is_empty() || allowed.iter().any(|e| entry_allows(e, image)) {
        return None;
    }
    Some(FieldError {
        field: "spec.relay.image".to_string(),
        message: format!(
            "image `{image}` is not allowed by the operator (--allowed-relay-images: {}); \
             use one of those images or leave spec.relay.image unset",
            allowed.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_allows_its_tags_and_digests_only() {
        let repo = "registry.example:5000/surge-relay";
        assert!(entry_allows(repo, "registry.example:5000/surge-relay"));
        assert!(entry_allows(repo, "registry.example:5000/surge-relay:1.2"));
        assert!(entry_allows(
            repo,
            "registry.example:5000/surge-relay@sha256:0123abcd"
        ));
        assert!(!entry_allows(
            repo,
            "registry.example:5000/surge-relay-evil:1.2"
        ));
        assert!(!entry_allows(repo, "registry.example:5000/surge-relay/x:1"));
        assert!(!entry_allows(
            repo,
            "evil.example/registry.example:5000/surge-relay"
        ));
    }

    #[test]
    fn a_tagged_reference_allows_exactly_itself() {
        let pinned = "ghcr.io/surge-dev/surge-relay:0.1.0";
        assert!(entry_allows(pinned, pinned));
        assert!(!entry_allows(pinned, "ghcr.io/surge-dev/surge-relay:0.1.1"));
        assert!(!entry_allows(
            pinned,
            "ghcr.io/surge-dev/surge-relay:0.1.0-evil"
        ));
    }

    #[test]
    fn a_star_allows_a_prefix() {
        assert!(entry_allows(
            "registry.example/media/*",
            "registry.example/media/relay:1"
        ));
        assert!(!entry_allows(
            "registry.example/media/*",
            "registry.example/other:1"
        ));
        assert!(entry_allows("*", "anything:latest"));
    }

    #[test]
    fn a_refusal_names_the_field_the_image_and_the_list() {
        let allowed = vec!["ghcr.io/surge-dev/surge-relay".to_string()];
        assert_eq!(image_error(None, &allowed), None, "the operator's default");
        assert_eq!(
            image_error(Some("ghcr.io/surge-dev/surge-relay:0.2.0"), &allowed),
            None
        );
        let e = image_error(Some("docker.io/evil/miner:1"), &allowed).expect("refused");
        assert_eq!(e.field, "spec.relay.image");
        assert!(e.message.contains("docker.io/evil/miner:1"), "{e}");
        assert!(e.message.contains("ghcr.io/surge-dev/surge-relay"), "{e}");
        assert_eq!(
            image_error(Some("docker.io/evil/miner:1"), &[]),
            None,
            "no list: any image"
        );
    }
}
