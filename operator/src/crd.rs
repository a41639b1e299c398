//! The `Stream` custom resource (group `surge.dev`, version `v1alpha1`).
//!
//! Validation lives in the schema itself (OpenAPI bounds and CEL `x-kubernetes-validations`) so
//! the API server rejects an invalid Stream naming the field; `validate.rs` repeats the same rules
//! in Rust for objects that reach the operator some other way (old CRD versions, tests).
//!
//! The kind is called `Stream`, which clashes with `futures::Stream`: code that needs both imports
//! the futures trait as `FuturesStream` (or only `StreamExt`).
//!
//! (Over 450 lines: the whole schema of the resource, types and their documented defaults, is
//! kept in one file so it reads in one place, as `kubectl explain` shows it.)

// Several printer columns share `type_ = "string"`; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use surge_planner::{ScalingSettings, TreeSettings};

/// Desired state of one broadcast: where it is ingested and in which regions it is played.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "surge.dev",
    version = "v1alpha1",
    kind = "Stream",
    plural = "streams",
    shortname = "st",
    namespaced,
    status = "StreamStatus",
    doc = "A live broadcast served by a geo-clustered tree of surge-relay pods.",
    printcolumn(
        name = "Viewers",
        type_ = "integer",
        description = "Viewers connected to the edges",
        json_path = ".status.viewers.total"
    ),
    printcolumn(
        name = "Growth/min",
        type_ = "number",
        description = "Viewer growth per minute",
        json_path = ".status.growthPerMinute"
    ),
    printcolumn(
        name = "Edges",
        type_ = "string",
        description = "Edge relays ready/desired, all regions",
        json_path = ".status.edges"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.placement) || !has(self.placement.overflow) || self.placement.overflow.all(o, o == 'tierAbove' || self.regions.exists(r, r.name == o))",
     "message": "overflow entries must be tierAbove or the name of a region in spec.regions",
     "fieldPath": ".placement.overflow"},
    {"rule": "!has(self.playback) || !has(self.playback.service) || !has(self.playback.service.externalTrafficPolicy) || (has(self.playback.serviceType) && self.playback.serviceType != 'ClusterIP')",
     "message": "externalTrafficPolicy needs playback.serviceType NodePort or LoadBalancer",
     "fieldPath": ".playback.service.externalTrafficPolicy"},
    {"rule": "!has(self.playback) || !has(self.playback.service) || !has(self.playback.service.loadBalancerClass) || (has(self.playback.serviceType) && self.playback.serviceType == 'LoadBalancer')",
     "message": "loadBalancerClass needs playback.serviceType LoadBalancer",
     "fieldPath": ".playback.service.loadBalancerClass"},
    {"rule": "self.regions.all(r, !has(r.playbackService) || !has(r.playbackService.externalTrafficPolicy) || (has(self.playback) && has(self.playback.serviceType) && self.playback.serviceType != 'ClusterIP'))",
     "message": "a region's playbackService.externalTrafficPolicy needs playback.serviceType NodePort or LoadBalancer",
     "fieldPath": ".regions"},
    {"rule": "self.regions.all(r, !has(r.playbackService) || !has(r.playbackService.loadBalancerClass) || (has(self.playback) && has(self.playback.serviceType) && self.playback.serviceType == 'LoadBalancer'))",
     "message": "a region's playbackService.loadBalancerClass needs playback.serviceType LoadBalancer",
     "fieldPath": ".regions"},
    {"rule": "has(self.origin) || (has(self.upstream) && size(self.upstream) > 0)",
     "message": "origin is required unless upstream names the external upstreams to pull from",
     "fieldPath": ".origin"},
    {"rule": "!has(self.origin) || !has(self.upstream) || size(self.upstream) == 0",
     "message": "origin must be left out with upstream: no origin runs in this cluster",
     "fieldPath": ".origin"},
    {"rule": "!has(self.upstream) || size(self.upstream) == 0 || !has(self.publish)",
     "message": "publish must be left out with upstream: this cluster takes no publisher",
     "fieldPath": ".publish"},
    {"rule": "!has(self.upstream) || size(self.upstream) == 0 || !has(self.integrity) || !has(self.integrity.signingKeySecretRef)",
     "message": "signingKeySecretRef must be left out with upstream: this cluster does not sign, it verifies with trustedKeys",
     "fieldPath": ".integrity.signingKeySecretRef"},
    {"rule": "!has(self.upstream) || size(self.upstream) == 0 || (has(self.integrity) && (!self.integrity.enabled || (has(self.integrity.trustedKeys) && size(self.integrity.trustedKeys) > 0)))",
     "message": "with upstream, list the remote origin's public key in integrity.trustedKeys (its Stream's status.integrity.publicKey), or set integrity.enabled: false to pull unverified",
     "fieldPath": ".integrity"}
]))]
pub struct StreamSpec {
    /// RTMP application name the broadcaster publishes to and viewers play from.
    #[serde(default = "default_app")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub app: String,

    /// Expected ingest bitrate in kbit/s, used for capacity planning.
    #[serde(default = "default_bitrate_kbps")]
    #[schemars(range(min = 1, max = 200000))]
    pub bitrate_kbps: u32,

    /// Where the broadcaster publishes: the origin relay of this cluster. Required unless
    /// `upstream` is set, and left out then (no origin runs in this cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginSpec>,

    /// External upstreams, in order of preference: `rtmp://HOST[:PORT]/APP` or
    /// `rtmps://HOST[:PORT]/APP` (port 1935, or 443 for rtmps, when left out), e.g. the
    /// ingest or playback addresses of another cluster's Stream. Set, this cluster runs no
    /// origin (nor its Service and PodDisruptionBudget) and takes no publisher: each region's
    /// top tier pulls the stream, under this Stream's name, from the first of these that
    /// plays and fails over down the list; reflectors and edges are sized on this cluster's
    /// viewers. No credentials (`user:password@`), query or fragment: the URLs are shown in
    /// the status. At most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "upstream_schema")]
    pub upstream: Vec<String>,

    /// Regions that serve viewers; each gets its own edge tier (and reflectors when needed).
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(r, self.exists_one(o, o.name == r.name))",
         "message": "region names must be unique"}
    ]))]
    pub regions: Vec<RegionSpec>,

    /// Shape of the relay tree.
    #[serde(default)]
    pub tree: TreeSpec,

    /// How the planner sizes the tree from viewer counts.
    #[serde(default)]
    pub scaling: ScalingSpec,

    /// Relay container settings; unset fields come from the operator's defaults.
    #[serde(default)]
    pub relay: RelaySpec,

    /// Viewer-facing Services.
    #[serde(default)]
    pub playback: PlaybackSpec,

    /// How viewers are placed on edges: how edges are exposed and where viewers overflow.
    #[serde(default)]
    pub placement: PlacementSpec,

    /// Who may publish. Unset: the origin takes any publisher (only the origin tier ever
    /// takes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSpec>,

    /// TLS: RTMPS ingest at the origin (port 1936) and HTTPS playback at the edges (port
    /// 8443), on their Services next to the plain ports. Unset: plain RTMP and HTTP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Signed frames: the origin signs the media (unless the publisher signs itself) and
    /// every reflector and edge verifies what it pulls with the public keys the operator
    /// hands it (never a key from the stream). On by default, with a key the operator
    /// generates.
    #[serde(default, skip_serializing_if = "IntegritySpec::is_default")]
    pub integrity: IntegritySpec,
}

/// Signed frames (`spec.integrity`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.enabled || !has(self.signingKeySecretRef)",
     "message": "signingKeySecretRef needs enabled: true",
     "fieldPath": ".signingKeySecretRef"}
]))]
pub struct IntegritySpec {
    /// `false`: relays neither sign nor verify (frames pass unchecked). Default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A Secret in the Stream's namespace with the signing key: `signing.key`, an Ed25519
    /// private key as `openssl genpkey -algorithm ed25519` writes it (PKCS#8 PEM), and
    /// optionally `trusted.pem`, public keys (PEM blocks) the relays still accept while a
    /// key is rotated. Unset: the operator creates `<stream>-signing-key` (owned by the
    /// Stream, deleted with it, never replaced while it exists). Relays read the keys when
    /// they start; a change of the keys rolls the relays out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret_ref: Option<SecretRef>,
    /// More Ed25519 public keys (one PEM block each, as `openssl pkey -pubout` writes them)
    /// that reflectors and edges accept, e.g. a publisher that signs at the source. With
    /// `spec.upstream` this cluster does not sign: list the remote origin's key (its Stream's
    /// `status.integrity.publicKey`; during a rotation the old and the new one) or set
    /// `enabled: false`. At most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 1024)))]
    pub trusted_keys: Vec<String>,
}

impl Default for IntegritySpec {
    fn default() -> Self {
        IntegritySpec {
            enabled: true,
            signing_key_secret_ref: None,
            trusted_keys: Vec::new(),
        }
    }
}

impl IntegritySpec {
    pub fn is_default(&self) -> bool {
        *self == IntegritySpec::default()
    }
}

impl StreamSpec {
    /// The origin's region; `None` with external upstreams (`spec.upstream`).
    pub fn origin_region(&self) -> Option<&str> {
        self.origin.as_ref().map(|o| o.region.as_str())
    }

    /// Whether the Stream pulls from external upstreams instead of running an origin.
    pub fn has_external_upstreams(&self) -> bool {
        !self.upstream.is_empty()
    }
}

/// Most entries of `spec.upstream` (matches the CRD schema).
pub const MAX_UPSTREAMS: usize = 8;
/// Longest `spec.upstream` entry (matches the CRD schema).
pub const MAX_UPSTREAM_LENGTH: usize = 512;

/// `spec.upstream`'s schema: the rules are on each entry so that the API server names
/// `spec.upstream[i]`, and they are CEL rules rather than a `pattern`, whose refusal would
/// repeat the value (credentials included) in the error.
fn upstream_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": MAX_UPSTREAMS,
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_UPSTREAM_LENGTH,
            "x-kubernetes-validations": [
                {"rule": "self.lowerAscii().startsWith('rtmp://') || self.lowerAscii().startsWith('rtmps://')",
                 "message": "must be an rtmp:// or rtmps:// URL"},
                {"rule": "!self.contains('@')",
                 "message": "must not carry credentials (user:password@): the URLs are shown in the status"},
                {"rule": "!self.contains('?') && !self.contains('#')",
                 "message": "must not have a query or fragment: the URLs are shown in the status"},
                {"rule": "self.matches('^[A-Za-z]+://([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|[[][0-9A-Fa-f:.]+[]])(:[0-9]+)?/[A-Za-z0-9_.-]+/?$')",
                 "message": "must be rtmp://HOST[:PORT]/APP: a host name or address, an optional port and one app path segment (A-Z a-z 0-9 _ . -)"},
                {"rule": "!self.matches('^[A-Za-z]+://[^/]*:[0-9]+/') || self.matches(':([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/')",
                 "message": "the port must be 1-65535"}
            ]
        }
    })
}

/// The ingest side of the tree.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.service) || !has(self.service.externalTrafficPolicy) || (has(self.serviceType) && self.serviceType != 'ClusterIP')",
     "message": "externalTrafficPolicy needs serviceType NodePort or LoadBalancer",
     "fieldPath": ".service.externalTrafficPolicy"},
    {"rule": "!has(self.service) || !has(self.service.loadBalancerClass) || (has(self.serviceType) && self.serviceType == 'LoadBalancer')",
     "message": "loadBalancerClass needs serviceType LoadBalancer",
     "fieldPath": ".service.loadBalancerClass"}
]))]
pub struct OriginSpec {
    /// Region the origin relay runs in (matched against the region node label).
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub region: String,
    /// Type of the ingest Service the broadcaster connects to.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Annotations, labels, externalTrafficPolicy and loadBalancerClass of the ingest Service.
    #[serde(default, skip_serializing_if = "ServiceSettings::is_empty")]
    pub service: ServiceSettings,
}

/// What a Stream may set on a Service the operator creates (the rest is the operator's).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    /// Added to the Service, e.g. a cloud's load-balancer options
    /// (`service.beta.kubernetes.io/aws-load-balancer-type: nlb`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: BTreeMap<String, String>,
    /// Added to the Service's labels; keys under `surge.dev/` and `app.kubernetes.io/` are the
    /// operator's and refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(k, !k.startsWith('surge.dev/') && !k.startsWith('app.kubernetes.io/'))",
         "message": "label keys under surge.dev/ and app.kubernetes.io/ are the operator's"}
    ]))]
    pub labels: BTreeMap<String, String>,
    /// `Local` keeps the viewer's (or broadcaster's) source address and skips the second hop
    /// between nodes; only for NodePort and LoadBalancer Services. Unset: the cluster's default
    /// (`Cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// The load-balancer implementation to use (only for LoadBalancer Services; the API server
    /// refuses to change it on an existing Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub load_balancer_class: Option<String>,
}

impl ServiceSettings {
    pub fn is_empty(&self) -> bool {
        *self == ServiceSettings::default()
    }
}

/// A Service's `externalTrafficPolicy`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

impl TrafficPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        }
    }
}

/// Kubernetes Service types a Stream may ask for.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// One viewer region.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.minEdges <= self.maxEdges",
     "message": "minEdges must be less than or equal to maxEdges",
     "fieldPath": ".minEdges"}
]))]
pub struct RegionSpec {
    /// Region name, e.g. `eu-west`; also the default value of the region node label.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Node labels that pin this region's relays; default `topology.kubernetes.io/region: <name>`
    /// (the label key comes from the operator's `--region-label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Fewest edge relays kept in this region, even with no viewers.
    #[serde(default = "default_min_edges")]
    #[schemars(range(min = 1, max = 10000))]
    pub min_edges: u32,
    /// Most edge relays this region may grow to.
    #[serde(default = "default_max_edges")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_edges: u32,
    /// This region's playback Service settings, over `spec.playback.service`: annotations and
    /// labels are added (this region's value wins for a key), externalTrafficPolicy and
    /// loadBalancerClass replace.
    #[serde(default, skip_serializing_if = "ServiceSettings::is_empty")]
    pub playback_service: ServiceSettings,
}

/// Shape of the multicast tree. Read and written as [`TreeFields`] (the CRD schema), so that an
/// unset `viewersPerEdge` stays distinguishable from an explicit one: the effective edge size is
/// `sizing::viewers_per_edge`, never this struct's field alone.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(from = "TreeFields", into = "TreeFields")]
pub struct TreeSpec {
    /// Children one relay feeds; a reflector tier is added when a region's edges exceed it.
    pub fanout: u32,
    /// `viewersPerEdge` as given, or the planner's default when unset (kept as a plain number
    /// for code that reads or overrides it; set it with [`TreeSpec::set_viewers_per_edge`] so
    /// the override also wins over `edgeEgressMbps`).
    pub viewers_per_edge: u32,
    /// Whether `viewersPerEdge` was given (an explicit value wins over `edgeEgressMbps`).
    pub viewers_per_edge_given: bool,
    /// Egress budget of one edge in Mbit/s (`edgeEgressMbps`), if given.
    pub edge_egress_mbps: Option<u32>,
}

impl TreeSpec {
    /// An explicit edge size, as if `viewersPerEdge` had been written in the manifest.
    pub fn set_viewers_per_edge(&mut self, viewers: u32) {
        self.viewers_per_edge = viewers;
        self.viewers_per_edge_given = true;
    }
}

impl Default for TreeSpec {
    fn default() -> Self {
        TreeFields::default().into()
    }
}

/// `spec.tree` as the API stores it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TreeFields {
    /// Children one relay feeds; a reflector tier is added when a region's edges exceed it.
    #[serde(default = "default_fanout")]
    #[schemars(range(min = 2, max = 1000))]
    pub fanout: u32,
    /// Viewers one edge relay serves at the stream's bitrate (the planner's edge size; each
    /// edge also refuses viewers past twice this, `--max-viewers`). When set it wins. When
    /// unset: floor(edgeEgressMbps * 1000 / bitrateKbps), at least 1, if edgeEgressMbps is set;
    /// otherwise 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub viewers_per_edge: Option<u32>,
    /// Egress bandwidth one edge relay may send, in Mbit/s (> 0). Each edge gets
    /// `--max-egress-mbps` (it then holds at most this divided by the stream's measured
    /// bitrate, never less than bitrateKbps, in viewers), and an unset viewersPerEdge is derived
    /// from it: floor(edgeEgressMbps * 1000 / bitrateKbps), at least 1. Unset: no egress limit
    /// and viewersPerEdge (or its default 2000) alone sizes the edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub edge_egress_mbps: Option<u32>,
}

impl Default for TreeFields {
    fn default() -> Self {
        TreeFields {
            fanout: default_fanout(),
            viewers_per_edge: None,
            edge_egress_mbps: None,
        }
    }
}

impl From<TreeFields> for TreeSpec {
    fn from(f: TreeFields) -> Self {
        TreeSpec {
            fanout: f.fanout,
            viewers_per_edge: f.viewers_per_edge.unwrap_or_else(default_viewers_per_edge),
            viewers_per_edge_given: f.viewers_per_edge.is_some(),
            edge_egress_mbps: f.edge_egress_mbps,
        }
    }
}

impl From<TreeSpec> for TreeFields {
    fn from(t: TreeSpec) -> Self {
        TreeFields {
            fanout: t.fanout,
            viewers_per_edge: t.viewers_per_edge_given.then_some(t.viewers_per_edge),
            edge_egress_mbps: t.edge_egress_mbps,
        }
    }
}

impl JsonSchema for TreeSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        TreeFields::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        TreeFields::json_schema(generator)
    }
}

/// Scaling knobs, passed to the planner (`surge_planner::ScalingSettings`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingSpec {
    /// How far ahead the planner forecasts (metric delay plus relay start-up time).
    #[serde(default = "default_lead_time_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub lead_time_seconds: u32,
    /// Spare capacity on top of the forecast, as a fraction (0.2 = 20 %).
    #[serde(default = "default_headroom")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub headroom: f64,
    /// No scale-down until a lower recommendation held this long, nor this long after a
    /// scale-up.
    #[serde(default = "default_scale_down_stabilization_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_stabilization_seconds: u32,
    /// Largest fraction of a region's edges removed in one scale-down step (at least one).
    #[serde(default = "default_max_scale_down_fraction")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub max_scale_down_fraction: f64,
    /// Least time between two scale-down steps in a region.
    #[serde(default = "default_scale_down_step_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_step_seconds: u32,
    /// Viewer samples older than this are ignored by the growth estimate.
    #[serde(default = "default_estimation_window_seconds")]
    #[schemars(range(min = 5, max = 3600))]
    pub estimation_window_seconds: u32,
    /// Multiplicative scale-up when viewers grow explosively.
    #[serde(default)]
    pub flash_crowd: FlashCrowdSpec,
    /// Announced events (a match, a show, election night): capacity for each event's expected
    /// audience is Ready at its start and held until it ends, never below the forecast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub schedule: Vec<ScheduledEventSpec>,
    /// Ready edges kept per region beyond what the forecast asks for: a warm pool that serves
    /// a sudden step while new relays start (slow image pulls, node autoscaling). Each one
    /// costs a relay all the time.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub warm_edges: u32,
    /// Quality as a second signal: when the edges' measured load says an edge holds fewer
    /// viewers than viewersPerEdge (a mis-set edge size, a heavier bitrate), size with what
    /// they hold; never scale down edges that run hot.
    #[serde(default)]
    pub quality: QualitySpec,
}

/// `spec.scaling.quality`: the edges' measured load as a second sizing signal.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualitySpec {
    /// Whether the edges' load may size the region at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mean load (0..1 of what the edges hold) at which the edges run hot: no scale-down
    /// leaves them above it.
    #[serde(default = "default_hot_load")]
    #[schemars(range(min = 0.1, max = 1.0))]
    pub hot_load: f64,
}

impl Default for QualitySpec {
    fn default() -> Self {
        QualitySpec {
            enabled: true,
            hot_load: default_hot_load(),
        }
    }
}

/// One announced event of `spec.scaling.schedule`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledEventSpec {
    /// When the audience arrives, RFC 3339 (e.g. `2026-12-05T20:00:00Z`). The edges are asked
    /// for one forecast horizon earlier (metric delay + measured relay-ready time, at least
    /// leadTimeSeconds), so they are Ready by then.
    #[schemars(extend("format" = "date-time"))]
    pub start: String,
    /// Viewers expected over the event's regions together.
    #[schemars(range(min = 1))]
    pub expected_viewers: u64,
    /// Regions of spec.regions the audience is in (default: all). The audience is split by
    /// each listed region's share of the viewers there when the edges are asked for (equally
    /// when there are none yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// How long the event lasts; its capacity is held until start + duration. Without it,
    /// for 15 minutes after start (by then the crowd is there and the forecast covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10080))]
    pub duration_minutes: Option<u32>,
}

impl Default for ScalingSpec {
    fn default() -> Self {
        ScalingSpec {
            lead_time_seconds: default_lead_time_seconds(),
            headroom: default_headroom(),
            scale_down_stabilization_seconds: default_scale_down_stabilization_seconds(),
            max_scale_down_fraction: default_max_scale_down_fraction(),
            scale_down_step_seconds: default_scale_down_step_seconds(),
            estimation_window_seconds: default_estimation_window_seconds(),
            flash_crowd: FlashCrowdSpec::default(),
            schedule: Vec::new(),
            warm_edges: 0,
            quality: QualitySpec::default(),
        }
    }
}

/// Flash-crowd mode: entered when growth crosses both thresholds, left after a calm period.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlashCrowdSpec {
    /// Whether flash-crowd mode may be entered at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Growth (viewers per minute, per region) needed to enter the mode.
    #[serde(default = "default_flash_min_growth")]
    #[schemars(range(min = 0.0, max = 100000000.0))]
    pub min_growth_per_minute: f64,
    /// Growth relative to the current audience (fraction per minute) also needed.
    #[serde(default = "default_flash_relative_growth")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub relative_growth_per_minute: f64,
    /// While in the mode, each scale-up is at least this factor of the current edges.
    #[serde(default = "default_flash_scale_up_factor")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub scale_up_factor: f64,
    /// While in the mode, the forecast horizon is stretched by this factor.
    #[serde(default = "default_flash_lead_time_factor")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub lead_time_factor: f64,
    /// Leave the mode after growth stayed below the thresholds this long.
    #[serde(default = "default_flash_exit_after_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub exit_after_seconds: u32,
}

impl Default for FlashCrowdSpec {
    fn default() -> Self {
        FlashCrowdSpec {
            enabled: true,
            min_growth_per_minute: default_flash_min_growth(),
            relative_growth_per_minute: default_flash_relative_growth(),
            scale_up_factor: default_flash_scale_up_factor(),
            lead_time_factor: default_flash_lead_time_factor(),
            exit_after_seconds: default_flash_exit_after_seconds(),
        }
    }
}

/// Relay container settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelaySpec {
    /// Container image; default from the operator's `--relay-image`. When the operator has
    /// `--allowed-relay-images`, an image outside that list is refused (Ready=False, reason
    /// InvalidSpec, naming spec.relay.image) and nothing is built from the Stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Container resources; default from the operator's flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The latency budget, in milliseconds: how long a relay may hold a new frame for the
    /// frames after it, so each viewer gets several in one write (less CPU per viewer, at most
    /// this much more lag per relay hop). Unset or 0: every frame leaves at once (an
    /// interactive stream); a few hundred for a broadcast where a fraction of a second does
    /// not matter. At most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub max_write_delay_ms: Option<u32>,
    /// Extra command-line arguments appended to every relay of this Stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub extra_args: Vec<String>,
    /// Secrets (in the Stream's namespace) for pulling the relay image. Unset: the operator's
    /// `--relay-image-pull-secrets`; set (even to `[]`): these replace them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Tolerations of every relay pod. Unset: the operator's `--relay-tolerations`; set
    /// (even to `[]`): these replace them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity of every relay pod, on top of the region's nodeSelector (both must hold).
    /// Unset: the operator's `--relay-affinity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread of each reflector and edge tier (not the origin, a single relay). A
    /// constraint without labelSelector gets the tier's pod labels. Unset: the operator's
    /// `--relay-topology-spread-constraints`, by default each tier spread over the zones and
    /// then the nodes of its region (maxSkew 1, whenUnsatisfiable ScheduleAnyway); `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// Publish authentication.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishSpec {
    /// A Secret in the Stream's namespace holding the publish keys, one per line (`#` starts
    /// a comment; list the old and the new key while rotating). It is mounted into the origin
    /// (the kubelet updates the file when the Secret changes, and the relay re-reads it
    /// without cutting the live broadcaster); the broadcaster publishes with the stream key
    /// `NAME?key=SECRET`. Unset: any publisher is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
}

/// One key of a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as the Stream).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key within the Secret's data holding the keys file; default `keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
}

/// The Secret data key read when `keySecretRef.key` is unset.
pub const DEFAULT_PUBLISH_KEYS_ITEM: &str = "keys";

impl SecretKeyRef {
    /// The data key holding the keys file.
    pub fn item(&self) -> &str {
        self.key.as_deref().unwrap_or(DEFAULT_PUBLISH_KEYS_ITEM)
    }
}

/// TLS for ingest and playback.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret in the Stream's namespace (`tls.crt`, `tls.key`; the
    /// Secret a cert-manager Certificate writes). It is mounted into the origin and the edges;
    /// when it is renewed the kubelet updates the files and the relays serve the new
    /// certificate to new connections without a restart.
    pub secret_ref: SecretRef,
}

/// A Secret, by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret (same namespace as the Stream).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// Viewer-facing Service settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackSpec {
    /// Type of each region's playback Service.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Annotations, labels, externalTrafficPolicy and loadBalancerClass of every region's
    /// playback Service; a region's `playbackService` adds to them and wins.
    #[serde(default, skip_serializing_if = "ServiceSettings::is_empty")]
    pub service: ServiceSettings,
}

/// How viewers reach the edges and are spread over them.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    /// `service`: viewers reach edges only through their region's playback Service, which
    /// stops sending new viewers to a full edge (its /readyz answers 503); relays are not
    /// locators (a redirect would name a pod IP viewers cannot reach) and `overflow` is not
    /// used. `hostPort`: every edge's RTMP and HTTP ports are also opened on its node (one edge
    /// per node) and advertised at the node's external host: its `surge.dev/external-host`
    /// annotation, else its first ExternalIP, else `status.hostIP` (which must then be
    /// reachable by viewers); every edge is its region's locator: a play is redirected to the least-loaded
    /// Ready edge, `/api/v1/locate` answers, and full regions overflow along `overflow`.
    #[serde(default)]
    pub exposure: Exposure,
    /// Where viewers go when every edge of their region is full (`hostPort` only), in order:
    /// `tierAbove` (the region's reflectors, or the origin) or a region of spec.regions (its
    /// edges). In `hostPort` mode `tierAbove` also exposes the tier feeding the edges on node
    /// ports of its own (the relay ports plus one for a reflector level, plus two for the
    /// origin) so viewers can be sent there.
    #[serde(default = "default_overflow")]
    #[schemars(length(max = 33))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(regex(pattern = r"^(tierAbove|[a-z]([-a-z0-9]*[a-z0-9])?)$")))]
    pub overflow: Vec<String>,
}

impl Default for PlacementSpec {
    fn default() -> Self {
        PlacementSpec {
            exposure: Exposure::default(),
            overflow: default_overflow(),
        }
    }
}

/// The `spec.placement.overflow` entry for the tier above a region's edges.
pub const OVERFLOW_TIER_ABOVE: &str = "tierAbove";

/// How edges are reachable from viewers.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Exposure {
    /// Only through the region's playback Service.
    #[default]
    Service,
    /// Each edge on its node's address (hostPort), placed by the edges' locators.
    HostPort,
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, `FlashCrowd`. `Ready` is True (reason `TreeReady`)
    /// when every planned Deployment and Service was applied and every tier has a Ready relay;
    /// otherwise False with reason `InvalidSpec`, `NotPlanned`, `ApplyFailed` (the API server
    /// refused a Service or Deployment, named in the message) or `TiersNotReady`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Viewers connected to the edges.
    #[serde(default)]
    pub viewers: ViewerCounts,
    /// Viewer growth per minute, all regions.
    #[serde(default)]
    pub growth_per_minute: f64,
    /// Viewers the planner expects one lead time ahead, all regions.
    #[serde(default)]
    pub forecast_viewers: u64,
    /// Edge relays `ready/desired`, all regions (for `kubectl get streams`).
    #[serde(default)]
    pub edges: String,
    /// The origin tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<TierStatus>,
    /// Per region: its tiers from the top reflector level down to the edges.
    #[serde(default)]
    pub regions: Vec<RegionStatus>,
    /// Where to publish and where to play.
    #[serde(default)]
    pub endpoints: Endpoints,
    /// The key the stream is signed with, for viewers that verify (`spec.integrity`);
    /// absent when signing is off or the key could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<IntegrityStatus>,
    /// The external upstreams (`spec.upstream`) and which of them the relays pull from now;
    /// absent without `spec.upstream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamStatus>,
}

/// Which external upstreams the relays pull from, as they report it on `/api/v1/streams`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamStatus {
    /// The upstream most relays pulling from outside the cluster use now (the more preferred
    /// one on a tie), as `rtmp://HOST:PORT/APP`; absent while none is connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<String>,
    /// Relays of this Stream connected to an external upstream now.
    #[serde(default)]
    pub relays: u32,
    /// `spec.upstream` in order of preference, each with the relays connected to it now
    /// (relays that disagree show up as counts on more than one entry).
    #[serde(default)]
    pub urls: Vec<UpstreamUse>,
}

/// One external upstream and the relays pulling from it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamUse {
    /// As `spec.upstream` names it, with the port written out (`rtmp://HOST:PORT/APP`).
    pub url: String,
    /// Relays connected to it now.
    pub relays: u32,
}

/// The key a Stream is signed with.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrityStatus {
    /// Who signs: `origin` (this cluster's origin, with the key of `secret`) or `upstream`
    /// (the external upstream's origin: the relays here only verify, with
    /// `spec.integrity.trustedKeys`, and `publicKey` is the first of those).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signer: String,
    /// The public half of the signing key, as `openssl pkey -pubout` writes it.
    pub public_key: String,
    /// Its key id, as signatures carry it: the first 8 bytes of SHA-256 over the raw
    /// 32-byte public key, in hex.
    pub key_id: String,
    /// Every key id the relays accept (the signing key first, then `trusted.pem`'s).
    #[serde(default)]
    pub trusted_key_ids: Vec<String>,
    /// The Secret holding the signing key (absent when this cluster does not sign).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
}

/// Viewer counts, in total and per region.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewerCounts {
    pub total: u64,
    #[serde(default)]
    pub regions: BTreeMap<String, u64>,
}

/// One region's tiers.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionStatus {
    pub name: String,
    pub viewers: u64,
    pub forecast_viewers: u64,
    /// Tiers from the top down: the highest reflector level (fed by the origin), ..., level 1
    /// (feeding the edges), then `edge`.
    pub tiers: Vec<TierStatus>,
}

/// Desired and ready relays of one tier.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierStatus {
    /// `origin`, `reflector`, or `edge`.
    pub tier: String,
    /// Reflector level: 1 feeds the edges, each higher level feeds the one below, and the
    /// highest is fed by the origin; 0 for origin and edge.
    #[serde(default)]
    pub level: u32,
    /// The Deployment that runs this tier.
    pub deployment: String,
    pub desired: i32,
    pub ready: i32,
}

/// Ingest and playback URLs.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// RTMP URL the broadcaster publishes to; empty with `spec.upstream` (publish to the
    /// origin outside this cluster).
    #[serde(default)]
    pub ingest: String,
    #[serde(default)]
    pub playback: Vec<PlaybackEndpoint>,
}

/// Where the viewers of one region play.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackEndpoint {
    pub region: String,
    pub rtmp: String,
    pub http_flv: String,
    /// The region's locator, `http://HOST:PORT/api/v1/locate?app=APP&stream=STREAM`: answers
    /// `{url, relay, region, load, overflow}` for the relay a viewer should play from. Only
    /// with `spec.placement.exposure: hostPort` (otherwise the relays are not locators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locate: Option<String>,
}

fn default_app() -> String {
    "live".to_string()
}
fn default_bitrate_kbps() -> u32 {
    2500
}
// Tree and scaling defaults are the planner's own (`surge_planner::TreeSettings` and
// `ScalingSettings`), so a Stream that sets nothing plans exactly as docs/PLANNER.md and the
// simulator describe; the planner's settings are the one place they are written.
fn planner_tree() -> TreeSettings {
    TreeSettings::default()
}
fn planner_scaling() -> ScalingSettings {
    ScalingSettings::default()
}
/// Whole seconds of a planner default (the CRD counts seconds as integers).
fn seconds(s: f64) -> u32 {
    s.round() as u32
}
fn default_min_edges() -> u32 {
    planner_tree().min_edges
}
fn default_max_edges() -> u32 {
    planner_tree().max_edges
}
fn default_fanout() -> u32 {
    planner_tree().fanout
}
fn default_viewers_per_edge() -> u32 {
    u32::try_from(planner_tree().viewers_per_edge).unwrap_or(u32::MAX)
}
fn default_overflow() -> Vec<String> {
    vec![OVERFLOW_TIER_ABOVE.to_string()]
}
fn default_lead_time_seconds() -> u32 {
    seconds(planner_scaling().lead_time_seconds)
}
fn default_headroom() -> f64 {
    planner_scaling().headroom
}
fn default_scale_down_stabilization_seconds() -> u32 {
    seconds(planner_scaling().scale_down_stabilization_seconds)
}
fn default_max_scale_down_fraction() -> f64 {
    planner_scaling().max_scale_down_fraction
}
fn default_scale_down_step_seconds() -> u32 {
    seconds(planner_scaling().scale_down_step_seconds)
}
fn default_estimation_window_seconds() -> u32 {
    seconds(planner_scaling().estimation_window_seconds)
}
fn default_hot_load() -> f64 {
    planner_scaling().quality.hot_load
}
fn default_true() -> bool {
    true
}
fn default_flash_min_growth() -> f64 {
    planner_scaling().flash_crowd.min_growth_per_minute
}
fn default_flash_relative_growth() -> f64 {
    planner_scaling().flash_crowd.relative_growth_per_minute
}
fn default_flash_scale_up_factor() -> f64 {
    planner_scaling().flash_crowd.scale_up_factor
}
fn default_flash_lead_time_factor() -> f64 {
    planner_scaling().flash_crowd.lead_time_factor
}
fn default_flash_exit_after_seconds() -> u32 {
    seconds(planner_scaling().flash_crowd.exit_after_seconds)
}

/// The CRD as YAML, exactly what `surge-operator crd` prints and `crds/stream.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&Stream::crd())?;
    Ok(format!(
        "# Generated by `surge-operator crd`; do not edit by hand.\n---\n{body}"
    ))
}
