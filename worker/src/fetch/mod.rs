//! Safe fetching for the HTTP-based DCV checks and the TLS-ALPN check.
//!
//! - [`guard`]: the address guard that every outgoing connection consults, so that targets
//!   named by certificate applicants cannot reach the CA's own network.

pub mod guard;

pub use guard::{AddressGuard, AddressPolicy, BlockedAddress};
