//! The streams this relay serves: who feeds each hub (a local publisher or an upstream pull),
//! on-demand pulls, linger after the last viewer, prewarming and admission (the relay's
//! capacity: viewer count and egress budget, see [`crate::placement::capacity`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, HubConfig, Subscription};
use crate::metrics::Metrics;
use crate::placement::overflow_viewers::OverflowViewers;
use crate::placement::{CapacityLimits, Room, StreamLoad};
use crate::protocol::Protocol;
use crate::upstream::{MediaSink, PullerConfig, UpstreamState, spawn_puller_with};

pub type StreamKey = (String, String);

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub upstreams: Vec<String>,
    pub upstream_linger: Duration,
    pub capacity: CapacityLimits,
    pub hub: HubConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Publisher,
    Upstream,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Publisher => "publisher",
            Source::Upstream => "upstream",
        }
    }
}

pub struct StreamEntry {
    pub hub: Arc<Hub>,
    pub source: Source,
    pub prewarm: bool,
    pull_cancel: Option<CancellationToken>,
    /// Bumped whenever a viewer arrives, so a pending linger timer knows it is stale.
    linger_generation: AtomicU64,
    /// Viewers admitted and not yet gone; counted under the registry lock, so admission of
    /// concurrent viewers never overshoots the relay's capacity.
    admitted: AtomicUsize,
    /// Of those, the viewers a locator placed here by overflow, by their own region.
    pub overflow: OverflowViewers,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("stream {0}/{1} is already being published")]
    AlreadyPublishing(String, String),
    #[error("stream {0}/{1} is pulled from upstream on this relay")]
    PulledFromUpstream(String, String),
    #[error("relay is shutting down")]
    ShuttingDown,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlayError {
    #[error("stream {0}/{1} not found")]
    NotFound(String, String),
    /// No room: `viewers` admitted of the `capacity` the relay has at its streams' bitrates.
    #[error("relay full: {viewers} of {capacity} viewers")]
    Full { viewers: usize, capacity: usize },
    #[error("relay draining: not taking new viewers")]
    ShuttingDown,
}

impl PlayError {
    /// The `reason` label of `surge_relay_viewers_refused_total` for a refusal for lack of
    /// room (`full`, `draining`); `None` for an unknown stream.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        match self {
            PlayError::Full { .. } => Some("full"),
            PlayError::ShuttingDown => Some("draining"),
            PlayError::NotFound(..) => None,
        }
    }
}

pub struct Registry {
    settings: RegistrySettings,
    metrics: Arc<Metrics>,
    streams: Mutex<HashMap<StreamKey, Arc<StreamEntry>>>,
    viewers: AtomicUsize,
    draining: AtomicBool,
    me: Weak<Registry>,
    /// Set once at start-up with `--parent-peer`: pullers ask it which parent to pull from.
    parent: std::sync::OnceLock<Arc<dyn crate::upstream::ParentChooser>>,
    /// Set once at start-up: how pullers resolve upstream names (`--hosts-file`).
    resolver: std::sync::OnceLock<crate::resolve::Resolver>,
    /// Set once at start-up: `--sign-key` for publishers' media, `--verify-key` for pulls.
    integrity: std::sync::OnceLock<crate::integrity::IntegrityKeys>,
    /// Set once at start-up with `--upstream-ca`: the TLS client of rtmps:// pulls.
    upstream_tls: std::sync::OnceLock<tokio_rustls::TlsConnector>,
}

impl Registry {
    pub fn new(settings: RegistrySettings, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics
            .max_viewers
            .set(settings.capacity.max_viewers as i64);
        Arc::new_cyclic(|me| Registry {
            settings,
            metrics,
            streams: Mutex::new(HashMap::new()),
            viewers: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            me: me.clone(),
            parent: std::sync::OnceLock::new(),
            resolver: std::sync::OnceLock::new(),
            integrity: std::sync::OnceLock::new(),
            upstream_tls: std::sync::OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamKey, Arc<StreamEntry>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn max_viewers(&self) -> usize {
        self.settings.capacity.max_viewers
    }

    pub fn capacity_limits(&self) -> &CapacityLimits {
        &self.settings.capacity
    }

    /// How full this relay is now (viewers, capacity at the current bitrates, load 0..1).
    pub fn room(&self) -> Room {
        self.settings.capacity.room(&stream_loads(&self.lock()))
    }

    pub fn has_upstreams(&self) -> bool {
        !self.settings.upstreams.is_empty()
    }

    pub fn total_viewers(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }

    /// Pullers started from now on resolve upstream names with `resolver` (set once).
    pub fn set_resolver(&self, resolver: crate::resolve::Resolver) {
        let _ = self.resolver.set(resolver);
    }

    /// Pullers started from now on reach rtmps:// upstreams with `tls` (set once).
    pub fn set_upstream_tls(&self, tls: tokio_rustls::TlsConnector) {
        let _ = self.upstream_tls.set(tls);
    }

    /// Pullers started from now on choose their parent with `chooser` (set once).
    pub fn set_parent_chooser(&self, chooser: Arc<dyn crate::upstream::ParentChooser>) {
        let _ = self.parent.set(chooser);
    }

    /// Publishers accepted and pullers started from now on sign and verify with `keys`
    /// (set once).
    pub fn set_integrity(&self, keys: crate::integrity::IntegrityKeys) {
        let _ = self.integrity.set(keys);
    }

    /// The signing and verifying keys (none unless set).
    pub fn integrity(&self) -> Option<&crate::integrity::IntegrityKeys> {
        self.integrity.get()
    }

    /// Stop admitting viewers and publishers (SIGTERM).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn entries(&self) -> Vec<(StreamKey, Arc<StreamEntry>)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn get(&self, app: &str, name: &str) -> Option<Arc<StreamEntry>> {
        self.lock()
            .get(&(app.to_string(), name.to_string()))
            .cloned()
    }

    fn new_hub(&self, app: &str, name: &str) -> Arc<Hub> {
        Hub::new(app, name, self.settings.hub, Some(self.metrics.clone()))
    }

    /// Claims `app/name` for a local publisher. Dropping the guard ends the stream.
    pub fn start_publish(&self, app: &str, name: &str) -> Result<PublishGuard, PublishError> {
        if self.is_draining() {
            return Err(PublishError::ShuttingDown);
        }
        let key = (app.to_string(), name.to_string());
        let mut streams = self.lock();
        if let Some(e) = streams.get(&key) {
            return Err(match e.source {
                Source::Publisher => PublishError::AlreadyPublishing(key.0, key.1),
                Source::Upstream => PublishError::PulledFromUpstream(key.0, key.1),
            });
        }
        let entry = Arc::new(StreamEntry {
            hub: self.new_hub(app, name),
            source: Source::Publisher,
            prewarm: false,
            pull_cancel: None,
            linger_generation: AtomicU64::new(0),
            admitted: AtomicUsize::new(0),
            overflow: OverflowViewers::default(),
        });
        streams.insert(key.clone(), entry.clone());
        Ok(PublishGuard {
            registry: self.me.clone(),
            key,
            entry,
        })
    }

    fn spawn_pull_entry(&self, app: &str, name: &str, prewarm: bool) -> Arc<StreamEntry> {
        let hub = self.new_hub(app, name);
        let cancel = CancellationToken::new();
        hub.on_upstream_state(UpstreamState::Connecting);
        let sink: Arc<dyn MediaSink> = hub.clone();
        let cfg = PullerConfig {
            upstreams: self.settings.upstreams.clone(),
            app: app.to_string(),
            stream: name.to_string(),
        };
        tracing::info!(app, stream = name, prewarm, upstreams = ?cfg.upstreams, "starting upstream pull");
        let opts = crate::upstream::PullerOptions {
            parent: self.parent.get().cloned(),
            resolver: self.resolver.get().cloned().unwrap_or_default(),
            verify: self.integrity.get().and_then(|k| k.verify.clone()),
            tls: self.upstream_tls.get().cloned(),
            ..Default::default()
        };
        spawn_puller_with(cfg, opts, sink, cancel.clone());
        Arc::new(StreamEntry {
            hub,
            source: Source::Upstream,
            prewarm,
            pull_cancel: Some(cancel),
            linger_generation: AtomicU64::new(0),
            admitted: AtomicUsize::new(0),
            overflow: OverflowViewers::default(),
        })
    }

    /// Starts pulling `app/name` now and keeps it even without viewers.
    pub fn prewarm(&self, app: &str, name: &str) -> Arc<StreamEntry> {
        let key = (app.to_string(), name.to_string());
        let mut streams = self.lock();
        if let Some(e) = streams.get(&key) {
            return e.clone();
        }
        let e = self.spawn_pull_entry(app, name, true);
        streams.insert(key, e.clone());
        e
    }

    /// A new viewer of `app/name`; pulls it from upstream on demand when configured.
    pub fn subscribe(
        &self,
        app: &str,
        name: &str,
        protocol: Protocol,
    ) -> Result<Subscription, PlayError> {
        self.subscribe_from(app, name, protocol, None)
    }

    /// [`Self::subscribe`] for a viewer a locator placed here by overflow from region `home`
    /// (the play URL's `region=`), counted under that region while it plays.
    pub fn subscribe_from(
        &self,
        app: &str,
        name: &str,
        protocol: Protocol,
        home: Option<&str>,
    ) -> Result<Subscription, PlayError> {
        if self.is_draining() {
            return Err(self.refused(protocol, PlayError::ShuttingDown));
        }
        let key = (app.to_string(), name.to_string());
        let entry = {
            let mut streams = self.lock();
            let loads = stream_loads(&streams);
            let kbps = streams
                .get(&key)
                .map_or(0, |e| e.hub.snapshot().ingest_kbps);
            let at_count_limit =
                self.viewers.load(Ordering::SeqCst) >= self.settings.capacity.max_viewers;
            if at_count_limit || !self.settings.capacity.admits(&loads, kbps) {
                let room = self.settings.capacity.room(&loads);
                let full = PlayError::Full {
                    viewers: room.viewers,
                    capacity: room.capacity,
                };
                return Err(self.refused(protocol, full));
            }
            let entry = match streams.get(&key) {
                Some(e) => e.clone(),
                None if self.has_upstreams() => {
                    let e = self.spawn_pull_entry(app, name, false);
                    streams.insert(key.clone(), e.clone());
                    e
                }
                None => return Err(PlayError::NotFound(key.0, key.1)),
            };
            self.viewers.fetch_add(1, Ordering::SeqCst);
            entry.admitted.fetch_add(1, Ordering::SeqCst);
            entry.linger_generation.fetch_add(1, Ordering::SeqCst);
            entry
        };
        let home = home
            .filter(|region| entry.overflow.arrive(region))
            .map(str::to_string);
        let mut sub = entry.hub.subscribe(protocol);
        sub.set_guard(Box::new(ViewerGuard {
            registry: self.me.clone(),
            key,
            entry,
            home,
        }));
        Ok(sub)
    }

    /// Counts a viewer refused for lack of room.
    fn refused(&self, protocol: Protocol, e: PlayError) -> PlayError {
        if let Some(reason) = e.refusal_reason() {
            self.metrics.viewer_refused(protocol, reason);
        }
        e
    }

    fn viewer_left(&self, key: &StreamKey, entry: &Arc<StreamEntry>) {
        self.viewers.fetch_sub(1, Ordering::SeqCst);
        entry.admitted.fetch_sub(1, Ordering::SeqCst);
        if entry.source != Source::Upstream || entry.prewarm || entry.hub.viewers() > 0 {
            return;
        }
        let generation = entry.linger_generation.load(Ordering::SeqCst);
        let linger = self.settings.upstream_linger;
        let registry = self.me.clone();
        let key = key.clone();
        let entry = entry.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            tokio::time::sleep(linger).await;
            let Some(registry) = registry.upgrade() else {
                return;
            };
            let mut streams = registry.lock();
            let current = streams.get(&key).is_some_and(|e| Arc::ptr_eq(e, &entry));
            if current
                && entry.hub.viewers() == 0
                && entry.linger_generation.load(Ordering::SeqCst) == generation
            {
                streams.remove(&key);
                drop(streams);
                tracing::info!(app = %key.0, stream = %key.1, linger = ?linger, "no viewers left: stopping upstream pull");
                if let Some(c) = &entry.pull_cancel {
                    c.cancel();
                }
                entry.hub.end_stream();
            }
        });
    }

    /// Cancels every pull (process exit).
    pub fn stop_all_pulls(&self) {
        for (_, e) in self.entries() {
            if let Some(c) = &e.pull_cancel {
                c.cancel();
            }
        }
    }
}

/// Held by a publishing connection; dropping it ends the stream for its viewers.
pub struct PublishGuard {
    registry: Weak<Registry>,
    key: StreamKey,
    entry: Arc<StreamEntry>,
}

impl PublishGuard {
    pub fn hub(&self) -> &Arc<Hub> {
        &self.entry.hub
    }
}

impl Drop for PublishGuard {
    fn drop(&mut self) {
        if let Some(r) = self.registry.upgrade() {
            let mut streams = r.lock();
            if streams
                .get(&self.key)
                .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
            {
                streams.remove(&self.key);
            }
        }
        self.entry.hub.end_stream_after_writes();
    }
}

struct ViewerGuard {
    registry: Weak<Registry>,
    key: StreamKey,
    entry: Arc<StreamEntry>,
    /// The region it was counted under in `entry.overflow`, if any.
    home: Option<String>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        if let Some(region) = &self.home {
            self.entry.overflow.leave(region);
        }
        if let Some(r) = self.registry.upgrade() {
            r.viewer_left(&self.key, &self.entry);
        }
    }
}

/// Viewers and measured bitrate of every stream, for admission and the room report.
fn stream_loads(streams: &HashMap<StreamKey, Arc<StreamEntry>>) -> Vec<StreamLoad> {
    streams
        .values()
        .map(|e| StreamLoad {
            viewers: e.admitted.load(Ordering::SeqCst),
            ingest_kbps: e.hub.snapshot().ingest_kbps,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn registry(upstreams: Vec<String>, max_viewers: usize) -> Arc<Registry> {
        Registry::new(
            RegistrySettings {
                upstreams,
                upstream_linger: Duration::from_millis(50),
                capacity: CapacityLimits::viewers_only(max_viewers),
                hub: HubConfig::default(),
            },
            Arc::new(Metrics::new("edge", "test")),
        )
    }

    #[test]
    fn second_publisher_is_rejected_until_first_leaves() {
        let r = registry(vec![], 10);
        let g = r.start_publish("live", "a").expect("first");
        assert_eq!(
            r.start_publish("live", "a").err(),
            Some(PublishError::AlreadyPublishing("live".into(), "a".into()))
        );
        drop(g);
        assert!(r.start_publish("live", "a").is_ok());
    }

    #[test]
    fn unknown_stream_without_upstream_is_not_found_and_limit_applies() {
        let r = registry(vec![], 1);
        assert!(matches!(
            r.subscribe("live", "x", Protocol::Flv),
            Err(PlayError::NotFound(..))
        ));
        let _g = r.start_publish("live", "x").expect("publish");
        let v = r
            .subscribe("live", "x", Protocol::Flv)
            .expect("first viewer");
        let full = r.subscribe("live", "x", Protocol::Rtmp).err();
        assert_eq!(
            full,
            Some(PlayError::Full {
                viewers: 1,
                capacity: 1
            })
        );
        assert_eq!(
            full.map(|e| e.to_string()).as_deref(),
            Some("relay full: 1 of 1 viewers")
        );
        drop(v);
        assert_eq!(r.total_viewers(), 0);
        r.start_draining();
        assert!(matches!(
            r.subscribe("live", "x", Protocol::Rtmp),
            Err(PlayError::ShuttingDown)
        ));
        let text = r.metrics().encode();
        for sample in [
            r#"surge_relay_viewers_refused_total{tier="edge",region="test",protocol="rtmp",reason="full"} 1"#,
            r#"surge_relay_viewers_refused_total{tier="edge",region="test",protocol="rtmp",reason="draining"} 1"#,
        ] {
            assert!(text.contains(sample), "{sample} missing in:\n{text}");
        }
        // The counters start at 0; an unknown stream moves none of them.
        for sample in [
            r#"surge_relay_viewers_refused_total{tier="edge",region="test",protocol="flv",reason="full"} 0"#,
            r#"surge_relay_viewers_refused_total{tier="edge",region="test",protocol="flv",reason="draining"} 0"#,
        ] {
            assert!(
                text.contains(sample),
                "an unknown stream is not a refusal for room: {sample} missing in:\n{text}"
            );
        }
    }

    #[test]
    fn overflow_viewers_count_under_their_region_while_they_play() {
        let r = registry(vec![], 10);
        let _g = r.start_publish("live", "x").expect("publish");
        let own = r.subscribe("live", "x", Protocol::Flv).expect("own");
        let eu = r
            .subscribe_from("live", "x", Protocol::Rtmp, Some("eu-west"))
            .expect("eu");
        let eu2 = r
            .subscribe_from("live", "x", Protocol::Flv, Some("eu-west"))
            .expect("eu 2");
        let entry = r.get("live", "x").expect("entry");
        assert_eq!(r.total_viewers(), 3);
        assert_eq!(
            entry.overflow.snapshot(),
            BTreeMap::from([("eu-west".to_string(), 2)])
        );
        drop(eu);
        drop(own);
        assert_eq!(
            entry.overflow.snapshot(),
            BTreeMap::from([("eu-west".to_string(), 1)])
        );
        drop(eu2);
        assert!(entry.overflow.snapshot().is_empty());
    }

    #[tokio::test]
    async fn one_pull_per_stream_and_linger_removes_it() {
        let r = registry(vec!["rtmp://127.0.0.1:9/live".into()], 10);
        let a = r.subscribe("live", "x", Protocol::Rtmp).expect("a");
        let b = r.subscribe("live", "x", Protocol::Flv).expect("b");
        assert_eq!(r.entries().len(), 1);
        assert!(Arc::ptr_eq(a.hub(), b.hub()));
        drop(a);
        drop(b);
        assert!(r.get("live", "x").is_some());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(r.get("live", "x").is_none());
    }

    #[tokio::test]
    async fn returning_viewer_cancels_linger_and_prewarm_stays() {
        let r = registry(vec!["rtmp://127.0.0.1:9/live".into()], 10);
        drop(r.subscribe("live", "x", Protocol::Rtmp).expect("a"));
        let again = r.subscribe("live", "x", Protocol::Rtmp).expect("b");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(r.get("live", "x").is_some());
        drop(again);
        r.prewarm("live", "p");
        drop(r.subscribe("live", "p", Protocol::Rtmp).expect("c"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(r.get("live", "p").is_some());
    }
}
