//! API key authentication of the REST API through a real listener: the coordinator runs the
//! quick-start perspectives in process, with their resolvers pointed at a local DNS authority,
//! and API keys configured.

use std::time::Duration;

use mpic_coordinator::api::auth::ApiKeys;
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::{CoordinatorConfig, DEFAULT_LISTEN_ADDRESS};
use mpic_coordinator::orchestration::HashSecret;
use mpic_coordinator::transport::Transports;
use mpic_shared::appconf::AppConf;
use mpic_testkit::dns::{TestDns, Zone};
use mpic_worker::config::WorkerConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The keys the coordinator accepts.
const KEYS: [&str; 2] = ["ca-one-api-key-0123456789", "ca-two-api-key-9876543210"];

/// A running coordinator and the authority its perspectives resolve against.
struct Api {
    _dns: TestDns,
    base_url: String,
    client: reqwest::Client,
}

/// Starts the coordinator with [`KEYS`] on a free loopback port.
async fn start() -> Api {
    let dns = TestDns::start([
        Zone::new("example.com.", "@ CAA 0 issue \"ca.example\""),
        Zone::new("com.", ""),
    ])
    .await;
    let mut config =
        CoordinatorConfig::quick_start(DEFAULT_LISTEN_ADDRESS, HashSecret::new(b"s").unwrap())
            .unwrap();
    config.api_keys = ApiKeys::new(KEYS);
    let settings = format!(
        "perspective_code=test\nhttp_listen=127.0.0.1:0\nnameservers={}\n",
        dns.addr()
    );
    let worker = WorkerConfig::from_appconf(&AppConf::parse(&settings).unwrap()).unwrap();
    let transports = Transports::connect(&config, Some(&worker)).await.unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = api::app(AppState::new(&config, transports).unwrap());
    tokio::spawn(async move {
        api::serve(listener, app, std::future::pending())
            .await
            .unwrap()
    });
    Api {
        _dns: dns,
        base_url,
        client: plain_http_client(),
    }
}

/// The credentials a request presents.
#[derive(Clone, Copy, Debug)]
enum Presented {
    Nothing,
    ApiKeyHeader(&'static str),
    Bearer(&'static str),
    Authorization(&'static str),
}

/// A response's status, `WWW-Authenticate` and content type, and its body as JSON.
struct Answer {
    status: u16,
    challenge: Option<String>,
    content_type: Option<String>,
    body: Value,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, presented: Presented) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .timeout(Duration::from_secs(30));
        request = match presented {
            Presented::Nothing => request,
            Presented::ApiKeyHeader(key) => request.header("x-api-key", key),
            Presented::Bearer(key) => request.header("authorization", format!("Bearer {key}")),
            Presented::Authorization(value) => request.header("authorization", value),
        };
        if path == "/mpic" {
            let body = json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                              "caa_check_parameters": {"caa_domains": ["ca.example"]}});
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }

        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        let status = response.status().as_u16();
        let challenge = header("www-authenticate");
        let content_type = header("content-type");
        let bytes = response.bytes().await.unwrap();
        Answer {
            status,
            challenge,
            content_type,
            body: serde_json::from_slice(&bytes).unwrap(),
        }
    }

    async fn post_mpic(&self, presented: Presented) -> Answer {
        self.send(reqwest::Method::POST, "/mpic", presented).await
    }
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let api = start().await;
    let cases = [
        ("no key", Presented::Nothing),
        (
            "wrong x-api-key",
            Presented::ApiKeyHeader("not-the-api-key-0123456789"),
        ),
        (
            "wrong bearer token",
            Presented::Bearer("not-the-api-key-0123456789"),
        ),
        ("prefix of a key", Presented::ApiKeyHeader("ca-one-api-key")),
        (
            "key with a suffix",
            Presented::ApiKeyHeader("ca-one-api-key-0123456789-extra"),
        ),
        (
            "key under basic authentication",
            Presented::Authorization("Basic Y2Etb25lOng="),
        ),
        ("bearer without token", Presented::Authorization("Bearer")),
    ];
    for (name, presented) in cases {
        let answer = api.post_mpic(presented).await;

        assert_eq!(answer.status, 401, "{name}: {}", answer.body);
        assert_eq!(
            answer.body["error"], "unauthorized",
            "{name}: {}",
            answer.body
        );
        assert!(
            answer.body["message"].is_string(),
            "{name}: {}",
            answer.body
        );
        assert_eq!(
            answer.body.as_object().unwrap().len(),
            2,
            "{name}: only error and message: {}",
            answer.body
        );
        assert_eq!(answer.challenge.as_deref(), Some("Bearer"), "{name}");
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/json"),
            "{name}"
        );
        let text = answer.body.to_string();
        for key in KEYS {
            assert!(!text.contains(key), "{name}: the body names a key: {text}");
        }
    }
}

#[tokio::test]
async fn both_headers_carry_a_key() {
    let api = start().await;
    let cases = [
        ("x-api-key, first key", Presented::ApiKeyHeader(KEYS[0])),
        ("x-api-key, second key", Presented::ApiKeyHeader(KEYS[1])),
        ("bearer token", Presented::Bearer(KEYS[0])),
        (
            "bearer in lower case",
            Presented::Authorization("bearer ca-two-api-key-9876543210"),
        ),
    ];
    for (name, presented) in cases {
        let answer = api.post_mpic(presented).await;

        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        assert_eq!(answer.body["is_valid"], true, "{name}: {}", answer.body);
    }
}

#[tokio::test]
async fn health_stays_open_and_routes_stay_hidden() {
    let api = start().await;

    let health = api
        .send(reqwest::Method::GET, "/healthz", Presented::Nothing)
        .await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body, json!({"status": "ok"}));

    let unknown = api
        .send(reqwest::Method::GET, "/admin", Presented::Nothing)
        .await;
    assert_eq!(
        unknown.status, 401,
        "an unknown route without a key is rejected before routing: {}",
        unknown.body
    );
    let known = api
        .send(
            reqwest::Method::GET,
            "/admin",
            Presented::ApiKeyHeader(KEYS[0]),
        )
        .await;
    assert_eq!(known.status, 404, "{}", known.body);
    let wrong_method = api
        .send(reqwest::Method::GET, "/mpic", Presented::Nothing)
        .await;
    assert_eq!(wrong_method.status, 401, "{}", wrong_method.body);
}

#[tokio::test]
async fn api_without_keys_needs_loopback() {
    let directory = std::env::temp_dir().join(format!("mpic-api-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&directory).unwrap();
    let catalogue = format!(
        "{}/../available_perspectives.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let key_file = directory.join("api-keys");
    std::fs::write(&key_file, format!("# the CA\n{}\n", KEYS[0])).unwrap();
    let base = format!(
        "perspectives=[\"us-east-1\",\"eu-west-2\"]\ndefault_perspective_count=2\n\
         hash_secret=s\nnats_url=nats://127.0.0.1:4222\nreply_signatures=off\n\
         perspective_catalogue={catalogue}\n"
    );
    let load = |extra: &str| {
        let path = directory.join("app.conf");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        CoordinatorConfig::load(Some(&path), |_| None)
    };

    let error = load("listen_address=0.0.0.0:8080\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("listen_address: 0.0.0.0:8080 is not a loopback address"),
        "{error}"
    );
    let (config, _) = load(&format!(
        "listen_address=0.0.0.0:8080\napi_keys_file={}\n",
        key_file.display()
    ))
    .unwrap();
    assert_eq!(config.api_keys.map(|keys| keys.count()), Some(1));
    let (_, warnings) =
        load("listen_address=0.0.0.0:8080\nallow_unauthenticated_api=true\n").unwrap();
    assert!(
        warnings.iter().any(|warning| warning
            .to_string()
            .starts_with("allow_unauthenticated_api: the REST API listens on 0.0.0.0:8080")),
        "{warnings:?}"
    );

    let (mut config, _) = load("").unwrap();
    let error = config
        .override_listen_address("[::]:8080".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("listen_address: [::]:8080 is not a loopback address"),
        "--listen is checked like the file: {error}"
    );
    assert_eq!(config.listen_address, DEFAULT_LISTEN_ADDRESS);

    let error = CoordinatorConfig::quick_start(
        "0.0.0.0:8080".parse().unwrap(),
        HashSecret::new(b"s").unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("listen_address: "), "{error}");
    std::fs::remove_dir_all(&directory).unwrap();
}

/// Returns a reqwest client for the plain-HTTP loopback API. reqwest is built without a
/// default crypto provider, so even a client that never uses TLS needs a rustls configuration.
fn plain_http_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}
