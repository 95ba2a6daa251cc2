//! Tests of the nats-server guard: each one runs the real binary and talks to it with the
//! NATS text protocol over a plain TCP connection.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mpic_testkit::nats::{NatsConfig, NatsServer};

#[test]
fn started_server_greets_clients() {
    let server = NatsServer::start();

    let info = read_info(server.port());

    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    assert!(info.starts_with("INFO {"), "unexpected greeting {info:?}");
    assert!(
        server.log_path().is_file(),
        "no log file at {:?}",
        server.log_path()
    );
    assert!(
        server.config_path().is_file(),
        "no config at {:?}",
        server.config_path()
    );
}

#[test]
fn killed_server_refuses_connections() {
    let mut server = NatsServer::start();

    server.kill();

    assert!(!server.is_running(), "server still runs after kill");
    assert!(
        TcpStream::connect(("127.0.0.1", server.port())).is_err(),
        "killed server still accepts connections"
    );
}

#[test]
fn dropped_server_process_is_reaped() {
    let server = NatsServer::start();
    let pid = server.pid().expect("a started server has a process id");
    let directory = server.log_path().parent().unwrap().to_path_buf();

    drop(server);

    let process = format!("/proc/{pid}");
    assert!(!Path::new(&process).exists(), "{process} still exists");
    assert!(!directory.exists(), "{} still exists", directory.display());
}

#[test]
fn restarted_server_keeps_its_port() {
    let mut server = NatsServer::start();
    let port = server.port();
    server.kill();

    server.restart();

    assert_eq!(server.port(), port);
    assert!(
        read_info(port).starts_with("INFO {"),
        "no greeting after restart"
    );
}

#[test]
fn config_values_and_files_rendered() {
    let config = NatsConfig::new("server_name: {{name}}\ninclude \"limits.conf\"\n# {{limits}}\n")
        .with_value("name", "hub-test")
        .with_file("limits", "limits.conf", "max_payload: 4096\n");

    let server = NatsServer::start_with_config(config);

    let info = read_info(server.port());
    assert!(
        info.contains("\"max_payload\":4096"),
        "file not included: {info}"
    );
    assert!(
        info.contains("\"server_name\":\"hub-test\""),
        "value not used: {info}"
    );
    let rendered = fs::read_to_string(server.config_path()).unwrap();
    let limits_path = server.config_path().with_file_name("limits.conf");
    assert!(
        rendered.contains(&format!("# {}\n", limits_path.display())),
        "file placeholder not replaced by its path: {rendered}"
    );
}

#[test]
fn env_variables_reach_server_rendered() {
    let config = NatsConfig::new("server_name: $TEST_SERVER_NAME\nhttp: $TEST_MONITOR\n")
        .with_env("TEST_SERVER_NAME", "from-env")
        .with_env("TEST_MONITOR", "127.0.0.1:{{monitor_port}}");

    let server = NatsServer::start_with_config(config);

    let info = read_info(server.port());
    assert!(
        info.contains("\"server_name\":\"from-env\""),
        "variable not read from the environment: {info}"
    );
    let monitor_port = server.named_port("monitor_port");
    assert!(
        TcpStream::connect(("127.0.0.1", monitor_port)).is_ok(),
        "placeholder in a variable not replaced: nothing listens on {monitor_port}"
    );
}

#[test]
#[should_panic(expected = "Parse error on line 1")]
fn invalid_config_panics_with_log() {
    NatsServer::start_with_config(NatsConfig::new("this is not { valid"));
}

#[test]
fn leaf_node_forwards_messages_to_hub() {
    let hub = NatsServer::start_with_config(NatsConfig::new(
        "server_name: hub\nleafnodes { listen: \"127.0.0.1:{{leafnode_port}}\" }\n",
    ));
    let leaf = NatsServer::start_with_config(
        NatsConfig::new(
            "server_name: leaf\n\
             leafnodes { remotes: [ { url: \"nats://127.0.0.1:{{hub_leafnode_port}}\" } ] }\n",
        )
        .with_value("hub_leafnode_port", hub.named_port("leafnode_port")),
    );
    leaf.wait_for_log("Leafnode connection created", Duration::from_secs(5));
    let mut subscriber = Client::connect(hub.port());
    subscriber.send("SUB checks.test 1\r\n");
    let mut publisher = Client::connect(leaf.port());

    // Subscription interest reaches the leaf asynchronously, so publish until it arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut received = None;
    while received.is_none() && Instant::now() < deadline {
        publisher.send("PUB checks.test 5\r\nhello\r\n");
        received = subscriber.read_message(Duration::from_millis(100));
    }

    assert_eq!(received.as_deref(), Some("hello"));
}

/// A NATS text-protocol client, enough to subscribe, publish and read a message.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut client = Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        let info = client.read_line();
        assert!(info.starts_with("INFO "), "unexpected greeting {info:?}");
        client.send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
        let pong = client.read_line();
        assert_eq!(pong, "PONG\r\n");
        client
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    /// Returns the payload of the next message, or `None` if none arrives in `timeout`.
    fn read_message(&mut self, timeout: Duration) -> Option<String> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).is_err() {
                return None;
            }
            if line == "PING\r\n" {
                self.send("PONG\r\n");
                continue;
            }
            if line.starts_with("MSG ") {
                let mut payload = String::new();
                self.reader.read_line(&mut payload).unwrap();
                return Some(payload.trim_end().to_owned());
            }
        }
    }
}

fn read_info(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}
