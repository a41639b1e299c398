//! `surge-operator run`: metrics server, leader election, then the controller.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};

use crate::config::OperatorConfig;
use crate::crd::Stream;
use crate::leader::LeaderElector;
use crate::metrics::{self, Metrics};
use crate::reconcile::{Context, error_policy, reconcile};

/// How `run` is set up beyond the per-Stream defaults.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub metrics_addr: std::net::SocketAddr,
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    pub lease_duration: Duration,
    pub identity: String,
    /// Planner seconds per wall second (see `Context::with_speed`).
    pub speed: f64,
}

pub async fn run(cfg: OperatorConfig, opts: RunOptions) -> anyhow::Result<()> {
    let client = Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("cannot configure a Kubernetes client (KUBECONFIG or in-cluster): {e}")
    })?;
    let metrics = Arc::new(Metrics::new());
    let server = tokio::spawn(metrics::serve(opts.metrics_addr, metrics.clone()));

    let elector = if opts.leader_election {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &opts.lease_namespace);
        let e = LeaderElector::new(
            leases,
            &opts.lease_name,
            &opts.identity,
            opts.lease_duration,
        );
        tokio::select! {
            _ = e.acquire() => {}
            _ = shutdown_signal() => return Ok(()),
        }
        Some(e)
    } else {
        None
    };
    metrics.set_leading();

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "surge-operator".into(),
            instance: Some(opts.identity.clone()),
        },
    );
    let (streams, deployments, services): (Api<Stream>, Api<Deployment>, Api<Service>) =
        match &opts.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    let ctx = Arc::new(
        Context::new(client.clone(), cfg, recorder, metrics.clone()).with_speed(opts.speed),
    );

    // Status writes must not retrigger reconciles (viewer counts change every scrape): only
    // spec changes (generation) do; the periodic requeue does the rest.
    let (reader, writer) = reflector::store();
    let forget = ctx.clone();
    let trigger = watcher(streams, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(stream)) = event {
                forget.forget(
                    &stream.namespace().unwrap_or_default(),
                    &stream.name_any(),
                    stream.uid().as_deref().unwrap_or_default(),
                );
            }
        })
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let owner_filter =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=surge-operator");
    let controller = Controller::for_stream(trigger, reader)
        .owns(deployments, owner_filter.clone())
        .owns(services, owner_filter)
        .graceful_shutdown_on(shutdown_signal())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::trace!(stream = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile queue"),
            }
        });

    tracing::info!("controller running");
    let outcome = match &elector {
        Some(e) => {
            tokio::select! {
                _ = controller => Ok(()),
                _ = e.keep_renewing() => Err(anyhow::anyhow!("lost the leader lease; exiting so a restart rejoins the election")),
            }
        }
        None => {
            controller.await;
            Ok(())
        }
    };
    if let Some(e) = &elector {
        e.release().await;
    }
    server.abort();
    tracing::info!("stopped");
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
