//! surge-operator: reconciles `Stream` resources into geo-clustered relay trees.
//!
//! Where things are: the resource in [`crd`]; a reconcile's driver in [`reconcile`] (gather →
//! decide → apply → settle → report); the pure steps in [`decide`], which calls [`validate`]
//! and [`image_policy`],
//! [`observe`] (with [`region_viewers`], what a region's demand counts), [`advertise`] (the host a `hostPort` edge advertises), [`sizing`] (the adapter
//! to `surge-planner`, which makes every sizing decision; [`policy`] swaps in another
//! autoscaler), [`tree`], [`build`] and [`status`]; the IO in [`gather`], [`scrape`], [`apply`], [`report`],
//! [`context`], [`leader`], [`metrics`] and [`controller`].

pub mod advertise;
pub mod apply;
pub mod build;
pub mod config;
pub mod context;
pub mod controller;
pub mod crd;
pub mod decide;
pub mod gather;
pub mod image_policy;
pub mod integrity;
pub mod labels;
pub mod leader;
pub mod local;
pub mod lost_viewers;
pub mod metrics;
pub mod observe;
pub mod pods;
pub mod policy;
pub mod quality;
pub mod ready_timer;
pub mod reconcile;
pub mod region_viewers;
pub mod report;
pub mod scrape;
pub mod signing_secret;
pub mod sizing;
pub mod status;
pub mod tree;
pub mod upstream;
pub mod validate;
