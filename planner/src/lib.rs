//! Forecasting and tree sizing for Surge. Pure: no IO, no async, no Kubernetes types.
