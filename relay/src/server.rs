//! Wires the relay together: listeners (plain, and TLS when configured), registry, prewarm
//! pulls, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::timeout_io::TimeoutListener;
use crate::http::{AppState, admin_router, playback_router, router};
use crate::hub::{CursorLimits, HubConfig};
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistrySettings};
use crate::rtmp::{self, RtmpSettings};
use surge_wire::ChunkLimits;

/// A running relay.
pub struct Relay {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// With `--rtmps-listen` / `--https-listen`.
    pub rtmps_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// With `--admin-listen`: where `/metrics`, `/api/v1/streams` and the probes answer.
    pub admin_addr: Option<SocketAddr>,
    pub registry: Arc<Registry>,
    shutdown: CancellationToken,
    http_task: tokio::task::JoinHandle<()>,
    https_task: Option<tokio::task::JoinHandle<()>>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

impl Relay {
    /// Binds the listeners and starts serving (prewarm pulls start at once). A TLS
    /// certificate pair that cannot be used stops the start with a one-line error.
    pub async fn start(cfg: &Config) -> anyhow::Result<Relay> {
        if !cfg.prewarm.is_empty() && cfg.upstreams.is_empty() {
            anyhow::bail!("--prewarm needs at least one --upstream to pull from");
        }
        crate::upstream::validate_upstreams(&cfg.upstreams).context("invalid --upstream")?;
        // rtmps:// upstreams: the system's CAs, and these when given.
        let upstream_tls = if cfg.upstream_ca.is_empty() {
            None
        } else {
            Some(crate::upstream::tls::connector(&cfg.upstream_ca)?)
        };
        let gate = cfg.room_gate()?;
        let publish_auth = Arc::new(crate::publish_auth::PublishAuth::from_config(cfg)?);
        let integrity =
            crate::integrity::IntegrityKeys::load(cfg.sign_key.as_deref(), &cfg.verify_keys)?;
        let tls = crate::tls::TlsAcceptors::from_config(cfg)?;
        crate::metrics::labels::check_distinct(&cfg.metrics_labels)
            .map_err(|e| anyhow::anyhow!("invalid --metrics-label: {e}"))?;
        let metrics = Arc::new(Metrics::with_labels(
            cfg.tier.as_str(),
            &cfg.region,
            &cfg.metrics_labels,
        ));
        let registry = Registry::new(
            RegistrySettings {
                upstreams: cfg.upstreams.clone(),
                upstream_linger: cfg.upstream_linger,
                capacity: cfg.capacity_limits(),
                hub: HubConfig {
                    cache_max_bytes: cfg.gop_cache_max_bytes,
                    cursor: CursorLimits {
                        max_backlog_bytes: cfg.viewer_backlog_bytes,
                        ..CursorLimits::default()
                    },
                    fanout_tasks: cfg.fanout_tasks,
                    max_write_delay: cfg.max_write_delay,
                },
            },
            metrics,
        );
        let rtmp_listener = crate::listen::bind(cfg.rtmp_listen)
            .with_context(|| format!("binding RTMP listener {}", cfg.rtmp_listen))?;
        let http_listener = crate::listen::bind(cfg.http_listen)
            .with_context(|| format!("binding HTTP listener {}", cfg.http_listen))?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let rtmps_listener = match cfg.rtmps_listen {
            Some(addr) => Some(
                crate::listen::bind(addr)
                    .with_context(|| format!("binding RTMPS listener {addr}"))?,
            ),
            None => None,
        };
        let https_listener = match cfg.https_listen {
            Some(addr) => Some(
                crate::listen::bind(addr)
                    .with_context(|| format!("binding HTTPS listener {addr}"))?,
            ),
            None => None,
        };
        let admin_listener = match cfg.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding admin listener {addr}"))?,
            ),
            None => None,
        };
        let admin_addr = admin_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let rtmps_addr = rtmps_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let https_addr = https_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let shutdown = CancellationToken::new();

        let settings = Arc::new(RtmpSettings {
            handshake_timeout: cfg.handshake_timeout,
            slow_viewer_timeout: cfg.slow_viewer_timeout,
            chunk_limits: ChunkLimits::default(),
            viewer_send_buffer: cfg.viewer_send_buffer_bytes,
            viewer_tcp_nodelay: cfg.viewer_tcp_nodelay,
            publish_auth,
        });
        tokio::spawn(accept_rtmp(
            rtmp_listener,
            None,
            registry.clone(),
            settings.clone(),
            shutdown.clone(),
        ));
        if let (Some(listener), Some(tls)) = (rtmps_listener, &tls) {
            tokio::spawn(accept_rtmp(
                listener,
                Some(tls.rtmps.clone()),
                registry.clone(),
                settings,
                shutdown.clone(),
            ));
        }

        let instance: Arc<str> = instance_id().into();
        // The peer view: kept when this relay places viewers (`--placement-peer`) or picks
        // its parent (`--parent-peer`).
        let places_viewers = !cfg.placement_peers.is_empty();
        let picks_parent = !cfg.parent_peers.is_empty();
        let locator = (places_viewers || picks_parent).then(|| {
            Arc::new(crate::placement::poller::Locator::with_parent_fanout(
                crate::placement::locate::LocatorPolicy {
                    me: instance.to_string(),
                    region: cfg.region.clone(),
                    overflow: cfg.overflow.clone(),
                    high_mark: cfg.ready_max_load,
                },
                cfg.parent_fanout as usize,
            ))
        });
        let mut state = AppState {
            registry: registry.clone(),
            tier: cfg.tier.as_str().into(),
            region: cfg.region.as_str().into(),
            prewarm: Arc::new(cfg.prewarm.clone()),
            gate: Arc::new(crate::http::readiness::SharedGate::new(gate)),
            instance,
            rtmp_port: rtmp_addr.port(),
            http_port: http_addr.port(),
            advertise_host: Arc::new(crate::http::advertise::AdvertisedHost::new(
                cfg.advertise_host.clone(),
                cfg.advertise_host_file.clone(),
            )),
            advertise_rtmp_port: cfg.advertise_rtmp_port,
            advertise_http_port: cfg.advertise_http_port,
            locator: None,
            https: false,
        };
        let resolver = crate::resolve::Resolver::new(cfg.hosts_file.clone());
        registry.set_resolver(resolver.clone());
        if let Some(tls) = upstream_tls {
            registry.set_upstream_tls(tls);
        }
        if let Some(k) = &integrity.sign {
            tracing::info!(key_id = %k.id(), "signing publishers' frames");
        }
        if let Some(ring) = &integrity.verify {
            let ids: Vec<String> = ring.ids().map(|id| id.to_string()).collect();
            tracing::info!(key_ids = ?ids, "verifying signed frames from upstream");
        }
        registry.set_integrity(integrity);
        if let Some(locator) = locator {
            let own = state.clone();
            crate::placement::poller::spawn_poller(
                locator.clone(),
                resolver,
                cfg.placement_peers.clone(),
                cfg.parent_peers.clone(),
                cfg.sibling_peers.clone(),
                move || crate::http::stats::own_report(&own, http_addr),
                shutdown.clone(),
            );
            if picks_parent {
                tracing::info!(parents = ?cfg.parent_peers, fanout = cfg.parent_fanout, "choosing a parent with room among the tier above");
                registry.set_parent_chooser(locator.clone());
            }
            if places_viewers {
                tracing::info!(peers = ?cfg.placement_peers, overflow = ?cfg.overflow, "placing viewers as this region's locator");
                state.locator = Some(locator);
            }
        }
        let timeout_listener = |inner| TimeoutListener {
            inner,
            timeout: cfg.slow_viewer_timeout,
            send_buffer: cfg.viewer_send_buffer_bytes,
            metrics: registry.metrics().clone(),
        };
        // The playback ports serve the admin paths too unless they have a port of their own.
        let separate_admin = admin_listener.is_some();
        let playback = move |state: AppState| {
            if separate_admin {
                playback_router(state)
            } else {
                router(state)
            }
        };
        // The same endpoints over TLS, stopped with the HTTP server.
        let https_task = match (https_listener, &tls) {
            (Some(inner), Some(tls)) => {
                let listener = crate::tls::https_listener::spawn(
                    timeout_listener(inner),
                    tls.https.clone(),
                    cfg.handshake_timeout,
                )?;
                let state = AppState {
                    https: true,
                    ..state.clone()
                };
                Some(tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, playback(state)).await {
                        tracing::error!(error = %e, "https server failed");
                    }
                }))
            }
            _ => None,
        };
        // Not slowed by the viewer timeouts: the kubelet and the operator are its clients.
        let admin_task = admin_listener.map(|listener| {
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, admin_router(state)).await {
                    tracing::error!(error = %e, "admin server failed");
                }
            })
        });
        // HTTP-FLV plays are served on the raw socket (fan-out groups), the rest by axum.
        let listener =
            crate::http::playback_listener::spawn(timeout_listener(http_listener), state.clone())?;
        // Not stopped by the drain (nor is the admin server): through the grace period /readyz
        // answers 503 (what a rollout waits for) and /healthz and /metrics keep answering; the
        // registry refuses new HTTP-FLV plays. The tasks are aborted when the grace ends.
        let http_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, playback(state)).await {
                tracing::error!(error = %e, "http server failed");
            }
        });

        for (app, name) in &cfg.prewarm {
            registry.prewarm(app, name);
        }
        let off = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
        tracing::info!(
            rtmp_addr = %rtmp_addr,
            http_addr = %http_addr,
            rtmps_addr = %off(rtmps_addr),
            https_addr = %off(https_addr),
            admin_addr = %off(admin_addr),
            tier = cfg.tier.as_str(),
            region = %cfg.region,
            upstreams = ?cfg.upstreams,
            "listening"
        );
        if admin_addr.is_none() {
            tracing::warn!(
                paths = ?crate::http::admin::PATHS,
                "admin endpoints are served on the playback port(s), where viewers (and a public \
                 Service) reach them; give them a port of their own with --admin-listen ADDR \
                 (SURGE_ADMIN_LISTEN)"
            );
        }
        Ok(Relay {
            rtmp_addr,
            http_addr,
            rtmps_addr,
            https_addr,
            admin_addr,
            registry,
            shutdown,
            http_task,
            https_task,
            admin_task,
            grace: cfg.shutdown_grace,
        })
    }

    /// Stops accepting, serves current viewers until they leave or the grace period ends.
    pub async fn shutdown(self) {
        let started = Instant::now();
        // Draining before the log line: whoever reads "draining" may rely on it (a new play refused).
        self.registry.start_draining();
        tracing::info!(viewers = self.registry.total_viewers(), grace = ?self.grace, "draining: no new viewers or publishers");
        self.shutdown.cancel();
        while self.registry.total_viewers() > 0 && started.elapsed() < self.grace {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.registry.stop_all_pulls();
        self.http_task.abort();
        for task in [self.https_task, self.admin_task].into_iter().flatten() {
            task.abort();
        }
        tracing::info!(
            viewers_left = self.registry.total_viewers(),
            after = ?started.elapsed(),
            "shutdown complete"
        );
    }
}

/// Accepts RTMP connections, or RTMPS ones with `tls` (each handshake in the connection's own
/// task, bounded by the handshake timeout).
async fn accept_rtmp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    registry: Arc<Registry>,
    settings: Arc<RtmpSettings>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => {
                tracing::info!("rtmp listener closed");
                return;
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                match &tls {
                    None => {
                        tokio::spawn(rtmp::serve(
                            stream,
                            registry.clone(),
                            settings.clone(),
                            shutdown.clone(),
                        ));
                    }
                    Some(tls) => {
                        tokio::spawn(serve_rtmps(
                            tls.clone(),
                            stream,
                            peer,
                            registry.clone(),
                            settings.clone(),
                            shutdown.clone(),
                        ));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The TLS handshake, then the same RTMP connection code as a plain socket.
async fn serve_rtmps(
    tls: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    registry: Arc<Registry>,
    settings: Arc<RtmpSettings>,
    shutdown: CancellationToken,
) {
    let timeout = settings.handshake_timeout;
    let handshake = tokio::select! {
        r = tokio::time::timeout(timeout, tls.accept(stream)) => r,
        _ = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => rtmp::serve(stream, registry, settings, shutdown).await,
        Ok(Err(e)) => tracing::info!(peer = %peer, error = %e, "rtmps handshake failed"),
        Err(_) => {
            tracing::info!(peer = %peer, "rtmps handshake not completed within {timeout:?}")
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// An id unique to this relay process: pid and start time.
fn instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos)
}
