//! Placement: how much room this relay has, when it stops counting as Ready, and which relay a
//! new viewer or child relay should use. The pure rules live here; the locator's polling and
//! HTTP answers call them.

pub mod capacity;
pub mod choose;
pub mod locate;
pub mod overflow_viewers;
pub mod poller;
pub mod room_gate;
pub mod view;

pub use capacity::{CapacityLimits, Room, StreamLoad};
pub use choose::{OverflowStep, Placement, RelayView, choose_parent, place_viewer};
pub use room_gate::{RoomGate, RoomGateError};
pub use view::{PeerReport, PeerView};
