//! `/readyz`: whether this relay should get new viewers now. Not while draining, not before
//! every prewarmed stream is connected upstream and holds a keyframe, and not while full — load
//! at or above `--ready-max-load`, until it falls below `--ready-resume-load` — so a Service or
//! load balancer stops sending viewers to a full relay while it keeps serving the ones it has.

use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::placement::RoomGate;
use crate::upstream::UpstreamState;

/// Why the relay is not Ready (or that it is).
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready,
    Draining,
    /// A prewarmed stream is not ready to play yet.
    Warming(String),
    Full {
        load: f64,
    },
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        *self == Readiness::Ready
    }
}

/// The readiness gate shared by `/readyz` and the room report (one hysteresis state).
pub struct SharedGate(Mutex<RoomGate>);

impl SharedGate {
    pub fn new(gate: RoomGate) -> Self {
        SharedGate(Mutex::new(gate))
    }

    /// Feeds the current load; whether the relay counts as full.
    pub fn observe(&self, load: f64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(load)
    }
}

pub fn readiness(state: &AppState) -> Readiness {
    if state.registry.is_draining() {
        return Readiness::Draining;
    }
    for (app, name) in state.prewarm.iter() {
        let Some(entry) = state.registry.get(app, name) else {
            return Readiness::Warming(format!("{app}/{name}: not pulling"));
        };
        let snap = entry.hub.snapshot();
        let connected = matches!(snap.upstream, Some(UpstreamState::Connected { .. }));
        if !connected || !snap.has_keyframe {
            return Readiness::Warming(format!(
                "{app}/{name}: upstream connected={connected}, keyframe={}",
                snap.has_keyframe
            ));
        }
    }
    let load = state.registry.room().load;
    if state.gate.observe(load) {
        return Readiness::Full { load };
    }
    Readiness::Ready
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match readiness(&state) {
        Readiness::Ready => (StatusCode::OK, "ready\n").into_response(),
        Readiness::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response(),
        Readiness::Warming(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
        }
        Readiness::Full { load } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("full (load {load:.2})\n"),
        )
            .into_response(),
    }
}
