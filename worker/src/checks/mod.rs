//! The checks a perspective runs. They know nothing about NATS or HTTP serving.

pub mod caa;
pub mod dns;
pub mod http;
pub mod tls_alpn;
