//! Open MPIC coordinator (crate map filled in as modules land).

pub mod api;
pub mod config;
pub mod orchestration;
pub mod transport;
