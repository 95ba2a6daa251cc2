//! The checks a perspective runs. They know nothing about NATS or HTTP serving.

pub mod caa;
pub mod dns;
pub mod http;
pub mod tls_alpn;

use mpic_shared::dcv::{DcvCheckParameters, MethodFamily};
use mpic_shared::target::Target;

use crate::fetch::{HTTP_PORT, HTTPS_PORT};

/// Returns why a DCV request cannot be run, or `None` when it can. It runs the same planning
/// step each check starts with, without any I/O, so the coordinator can reject such a request
/// with a 400 instead of collecting a not-completed reply from every perspective.
pub fn dcv_request_problem(target: &str, parameters: &DcvCheckParameters) -> Option<String> {
    match parameters {
        DcvCheckParameters::WebsiteChange(website) => {
            let target = Target::parse(target).ok()?;
            http::ChallengeRequest::website_change(&target, website, standard_ports())
                .err()
                .map(|problem| problem.to_string())
        }
        DcvCheckParameters::AcmeHttp01(acme) => {
            let target = Target::parse(target).ok()?;
            http::ChallengeRequest::acme_http_01(&target, acme, standard_ports())
                .err()
                .map(|problem| problem.to_string())
        }
        DcvCheckParameters::AcmeTlsAlpn01(hash) => {
            tls_alpn::TlsAlpnRequest::new(target, &hash.key_authorization_hash)
                .err()
                .map(|problem| problem.to_string())
        }
        _ if parameters.method().family() == MethodFamily::Dns => {
            dns::request_problem(target, parameters)
        }
        _ => None,
    }
}

/// The protocol ports; the planning step checks URLs, not where they lead.
fn standard_ports() -> http::ChallengePorts {
    http::ChallengePorts {
        http: HTTP_PORT,
        https: HTTPS_PORT,
    }
}
