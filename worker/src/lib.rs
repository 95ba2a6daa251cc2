//! Open MPIC perspective worker (crate map filled in as modules land).

pub mod checks;
pub mod config;
pub mod fetch;
pub mod handler;
pub mod http_api;
pub mod resolver;
pub mod service;
