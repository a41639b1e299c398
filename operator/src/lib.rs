//! surge-operator: reconciles `Stream` resources into geo-clustered relay trees.
//!
//! Where things are: the resource in [`crd`]; the pure steps in [`validate`], [`observe`],
//! [`sizing`] (the adapter to `surge-planner`, which makes every sizing decision), [`tree`],
//! [`build`] and [`status`]; the IO in [`scrape`], [`apply`], [`reconcile`], [`leader`],
//! [`metrics`] and [`controller`].

pub mod apply;
pub mod build;
pub mod config;
pub mod controller;
pub mod crd;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod scrape;
pub mod sizing;
pub mod status;
pub mod tree;
pub mod validate;
