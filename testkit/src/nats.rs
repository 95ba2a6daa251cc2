//! A guard around a real `nats-server` child process.
//!
//! [`NatsServer::start`] runs `nats-server` on a free `127.0.0.1` port and returns once the
//! server sends its `INFO` greeting to a client. Dropping the guard kills the process and
//! reaps it. [`NatsServer::start_with_config`] runs the server from a configuration
//! template ([`NatsConfig`]), such as a hub or leaf-node configuration, in which
//! `{{name}}` placeholders stand for free ports, values or files the test provides.
//! [`NatsConfig::with_env`] sets environment variables of the server process, with the same
//! placeholders, for configurations that read their settings as `$NAME` references.
//!
//! The binary is `$NATS_SERVER_BIN` if that variable is set, else `/usr/sbin/nats-server`,
//! else `nats-server` on `PATH`. Without one, the fixture panics with the install command,
//! so a test never skips silently.
//!
//! Each server gets its own directory under the system temporary directory. It contains
//! the rendered configuration, the files added with [`NatsConfig::with_file`], the server
//! log ([`NatsServer::log_path`]) and the process's standard error. The directory is removed on drop, unless the
//! thread is panicking, so the log of a failed test stays for inspection.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use mpic_testkit::nats::{NatsConfig, NatsServer};
//!
//! let hub = NatsServer::start_with_config(NatsConfig::new(
//!     "leafnodes { listen: \"127.0.0.1:{{leafnode_port}}\" }",
//! ));
//! let leaf = NatsServer::start_with_config(
//!     NatsConfig::new(
//!         "leafnodes { remotes: [ { url: \"nats://127.0.0.1:{{hub_port}}\" } ] }",
//!     )
//!     .with_value("hub_port", hub.named_port("leafnode_port")),
//! );
//! leaf.wait_for_log("Leafnode connection created", Duration::from_secs(5));
//! // Connect the code under test to `hub.url()` and `leaf.url()`.
//! ```

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::env;
use std::ffi::OsString;
use std::fmt::Display;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A running `nats-server` child process, killed and reaped on drop.
pub struct NatsServer {
    /// The process while it runs; `None` after [`NatsServer::kill`].
    child: Option<Child>,
    binary: PathBuf,
    /// The client port, also the value of the `{{port}}` placeholder.
    port: u16,
    /// The ports allocated for the other placeholders, by name.
    named_ports: BTreeMap<String, u16>,
    /// Environment variables set for the process, with their placeholders replaced.
    env: BTreeMap<String, String>,
    directory: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
}

impl NatsServer {
    /// Starts `nats-server` with no configuration beyond a free client port on
    /// `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// Panics if the binary is not found, if the server exits or does not accept a
    /// client within 10 seconds. The message includes the server log.
    pub fn start() -> NatsServer {
        NatsServer::start_with_config(NatsConfig::new(""))
    }

    /// Starts `nats-server` from `config`, with its client port on `127.0.0.1`.
    ///
    /// The client address and port are passed on the command line (`-a 127.0.0.1 -p
    /// PORT`), which take precedence over `listen` or `port` in the template.
    ///
    /// # Panics
    ///
    /// Panics if the binary is not found, if the template has an unterminated
    /// placeholder, or if the server exits or does not accept a client within 10
    /// seconds. The message includes the server log.
    pub fn start_with_config(config: NatsConfig) -> NatsServer {
        let binary = locate_binary(
            env::var_os(BINARY_VARIABLE),
            env::var_os("PATH"),
            Path::new(DEFAULT_BINARY),
        )
        .unwrap_or_else(|message| panic!("{message}"));

        let mut attempt = 1;
        loop {
            let mut server = NatsServer::prepare(binary.clone(), &config);
            match server.spawn_and_wait() {
                Ok(()) => return server,
                // Another process may have taken a port between allocation and start.
                Err(StartFailure::PortTaken) if attempt < START_ATTEMPTS => attempt += 1,
                Err(failure) => panic!("{}", server.describe_failure(&failure)),
            }
        }
    }

    /// Returns the client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Returns the client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the port allocated for the placeholder `{{name}}`.
    ///
    /// # Panics
    ///
    /// Panics if neither the template nor an environment variable has such a placeholder,
    /// or if a value was given for it.
    pub fn named_port(&self, name: &str) -> u16 {
        match self.named_ports.get(name) {
            Some(port) => *port,
            None => panic!(
                "the nats-server configuration has no port placeholder {{{{{name}}}}}; \
                 port placeholders: {:?}",
                self.named_ports.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// Returns the path of the server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Returns the server log written so far, or an empty string if there is none yet.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Returns the path of the rendered configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Waits until the server log contains `text`, checking every 20 milliseconds.
    ///
    /// # Panics
    ///
    /// Panics with the log if `text` does not appear within `timeout`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(text) {
            if Instant::now() >= deadline {
                panic!(
                    "nats-server log did not contain {text:?} within {timeout:?}; log {}:\n{}",
                    self.log_path.display(),
                    self.log()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns the process id while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process (SIGKILL) and reaps it. Does nothing if it is not running.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // A failed kill() is only logged, because wait() below still reaps an exited process.
        if let Err(error) = child.kill() {
            tracing::debug!(%error, "nats-server had exited before kill");
        }
        if let Err(error) = child.wait() {
            tracing::warn!(%error, pid = child.id(), "could not reap nats-server");
        }
    }

    /// Kills the process if it runs, then starts it again with the same configuration
    /// and ports, and waits until it accepts a client.
    ///
    /// # Panics
    ///
    /// Panics if the server exits or does not accept a client within 10 seconds, for
    /// example because another process took one of its ports.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(failure) = self.spawn_and_wait() {
            panic!("{}", self.describe_failure(&failure));
        }
    }

    /// Allocates ports, renders the configuration and writes it with its files.
    fn prepare(binary: PathBuf, config: &NatsConfig) -> NatsServer {
        let directory = create_directory();
        let port = free_port();
        let mut values = config.values.clone();
        for (name, contents) in &config.files {
            let path = directory.join(&contents.file_name);
            fs::write(&path, &contents.contents).unwrap_or_else(|error| {
                panic!("cannot write {}: {error}", path.display());
            });
            values.insert(name.clone(), path.display().to_string());
        }
        values.insert("port".to_owned(), port.to_string());

        let mut named_ports = BTreeMap::new();
        let env_templates = config.env.values().map(String::as_str);
        let names = std::iter::once(config.template.as_str())
            .chain(env_templates)
            .flat_map(placeholders);
        for name in names {
            if let Entry::Vacant(entry) = values.entry(name) {
                let named_port = free_port();
                named_ports.insert(entry.key().clone(), named_port);
                entry.insert(named_port.to_string());
            }
        }

        let config_path = directory.join("nats-server.conf");
        let rendered = render(&config.template, &values);
        fs::write(&config_path, rendered).unwrap_or_else(|error| {
            panic!("cannot write {}: {error}", config_path.display());
        });
        let env = config
            .env
            .iter()
            .map(|(name, template)| (name.clone(), render(template, &values)))
            .collect();
        NatsServer {
            child: None,
            binary,
            port,
            named_ports,
            env,
            log_path: directory.join("nats-server.log"),
            config_path,
            directory,
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        // Truncate the log, so a restart waits on the new process's lines only.
        if let Err(error) = fs::write(&self.log_path, "") {
            return Err(StartFailure::Spawn(error));
        }
        let stderr = match fs::File::create(self.stderr_path()) {
            Ok(file) => file,
            Err(error) => return Err(StartFailure::Spawn(error)),
        };
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config_path)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-l")
            .arg(&self.log_path)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(StartFailure::Spawn)?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    /// Polls until a client connection receives the server's `INFO` line.
    fn wait_until_ready(&mut self) -> Result<(), StartFailure> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.exit_status() {
                self.child = None;
                if self.log().contains("address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                return Err(StartFailure::Exited(status.to_string()));
            }
            if receives_info(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartFailure::TimedOut);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns the exit status if the process has exited.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten()
    }

    fn describe_failure(&self, failure: &StartFailure) -> String {
        let cause = match failure {
            StartFailure::Spawn(error) => {
                format!("could not run {}: {error}", self.binary.display())
            }
            StartFailure::PortTaken => "a port was already in use".to_owned(),
            StartFailure::Exited(status) => format!("nats-server exited with {status}"),
            StartFailure::TimedOut => {
                format!("nats-server did not accept a client within {START_TIMEOUT:?}")
            }
        };
        let stderr = fs::read_to_string(self.stderr_path()).unwrap_or_default();
        format!(
            "{cause}; configuration {}\nstandard error:\n{stderr}\nlog {}:\n{}",
            self.config_path.display(),
            self.log_path.display(),
            self.log()
        )
    }

    /// Returns the file that receives the process's standard error, where nats-server
    /// reports configuration errors before its log is open.
    fn stderr_path(&self) -> PathBuf {
        self.directory.join("nats-server.stderr")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            return;
        }
        if let Err(error) = fs::remove_dir_all(&self.directory) {
            tracing::debug!(%error, directory = %self.directory.display(), "could not remove the nats-server directory");
        }
    }
}

/// A `nats-server` configuration template with `{{name}}` placeholders.
///
/// When the server starts, `{{port}}` becomes the client port, a placeholder with a value
/// from [`NatsConfig::with_value`] or [`NatsConfig::with_file`] becomes that value, and any
/// other placeholder becomes a free port, readable with [`NatsServer::named_port`]. The
/// format is the nats-server configuration format, whose blocks use single braces.
/// Environment variables given with [`NatsConfig::with_env`] are rendered the same way.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    template: String,
    values: BTreeMap<String, String>,
    files: BTreeMap<String, FileContents>,
    /// Environment variables of the server process, as templates.
    env: BTreeMap<String, String>,
}

impl NatsConfig {
    /// Creates a configuration from template text.
    pub fn new(template: impl Into<String>) -> NatsConfig {
        NatsConfig {
            template: template.into(),
            values: BTreeMap::new(),
            files: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    /// Reads the template from a file, such as a configuration shipped in the repository.
    ///
    /// # Panics
    ///
    /// Panics if the file cannot be read.
    pub fn from_file(path: impl AsRef<Path>) -> NatsConfig {
        let path = path.as_ref();
        let template = fs::read_to_string(path).unwrap_or_else(|error| {
            panic!(
                "cannot read nats-server template {}: {error}",
                path.display()
            )
        });
        NatsConfig::new(template)
    }

    /// Replaces the placeholder `{{name}}` with `value`, for example another server's
    /// port.
    pub fn with_value(mut self, name: &str, value: impl Display) -> NatsConfig {
        self.values.insert(name.to_owned(), value.to_string());
        self
    }

    /// Writes `contents` to `file_name` in the server's directory at start and replaces
    /// the placeholder `{{name}}` with the file's absolute path. Use it for certificates,
    /// keys and credentials generated by the test.
    ///
    /// nats-server resolves an `include` path relative to the configuration file, so an
    /// included file is named by `file_name`, not by the placeholder.
    pub fn with_file(
        mut self,
        name: &str,
        file_name: &str,
        contents: impl Into<Vec<u8>>,
    ) -> NatsConfig {
        let contents = FileContents {
            file_name: file_name.to_owned(),
            contents: contents.into(),
        };
        self.files.insert(name.to_owned(), contents);
        self
    }

    /// Sets the environment variable `name` of the server process to `value`, after
    /// replacing its placeholders as in the template: `{{port}}`, a value, a file's path
    /// or a free port of its own.
    ///
    /// nats-server resolves a `$NAME` reference from the environment when the
    /// configuration does not define `NAME`, and parses the variable's value as a
    /// configuration value, so a string containing spaces must carry its own quotes.
    /// Use it to run a shipped configuration, whose settings all come from such
    /// references, unchanged.
    pub fn with_env(mut self, name: &str, value: impl Display) -> NatsConfig {
        self.env.insert(name.to_owned(), value.to_string());
        self
    }
}

#[derive(Clone, Debug)]
struct FileContents {
    file_name: String,
    contents: Vec<u8>,
}

enum StartFailure {
    Spawn(std::io::Error),
    PortTaken,
    Exited(String),
    TimedOut,
}

/// Finds the `nats-server` binary: `env_value`, else `default`, else `nats-server` in one
/// of the directories of `path_value`.
fn locate_binary(
    env_value: Option<OsString>,
    path_value: Option<OsString>,
    default: &Path,
) -> Result<PathBuf, String> {
    if let Some(value) = env_value {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Ok(path);
        }
        return Err(format!(
            "{BINARY_VARIABLE} is set to {}, which is not a file; \
             point it at a nats-server binary or unset it",
            path.display()
        ));
    }
    if default.is_file() {
        return Ok(default.to_path_buf());
    }
    let on_path = path_value
        .iter()
        .flat_map(env::split_paths)
        .map(|directory| directory.join("nats-server"))
        .find(|candidate| candidate.is_file());
    on_path.ok_or_else(|| {
        format!(
            "nats-server was not found ({BINARY_VARIABLE} is unset, {} does not exist and \
             PATH has no nats-server); install it with `apt-get install nats-server` or set \
             {BINARY_VARIABLE}",
            default.display()
        )
    })
}

/// Returns the placeholder names in `template`, in order of appearance, without
/// duplicates.
///
/// # Panics
///
/// Panics if a `{{` has no matching `}}`.
fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            panic!("nats-server template has an unterminated placeholder: {rest:?}");
        };
        let name = after[..end].trim().to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + 2..];
    }
    names
}

/// Replaces every `{{name}}` in `template` with its value.
fn render(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut rendered = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        rendered.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // placeholders() ran on the same template, so every `{{` has a closing `}}` and
        // every name has a value.
        let end = after.find("}}").unwrap_or(after.len());
        let name = after[..end].trim();
        rendered.push_str(values.get(name).map_or("", String::as_str));
        rest = after.get(end + 2..).unwrap_or("");
    }
    rendered.push_str(rest);
    rendered
}

/// Returns a port that was free a moment ago on `127.0.0.1`.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("cannot bind a TCP port on 127.0.0.1: {error}"));
    match listener.local_addr() {
        Ok(addr) => addr.port(),
        Err(error) => panic!("a bound listener has no local address: {error}"),
    }
}

fn create_directory() -> PathBuf {
    static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::SeqCst);
    let directory = env::temp_dir().join(format!(
        "mpic-testkit-nats-{}-{sequence}",
        std::process::id()
    ));
    // A directory left by an earlier run with the same process id is stale.
    if directory.exists() {
        fs::remove_dir_all(&directory)
            .unwrap_or_else(|error| panic!("cannot remove stale {}: {error}", directory.display()));
    }
    fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", directory.display()));
    directory
}

/// Returns whether a client connection to `addr` receives the server's `INFO` line.
fn receives_info(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, POLL_INTERVAL) else {
        return false;
    };
    if stream.set_read_timeout(Some(INFO_TIMEOUT)).is_err() {
        return false;
    }
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(_) => line.starts_with("INFO "),
        Err(_) => false,
    }
}

/// The environment variable that names the `nats-server` binary.
const BINARY_VARIABLE: &str = "NATS_SERVER_BIN";

/// The install path of the binary in Debian's `nats-server` package.
const DEFAULT_BINARY: &str = "/usr/sbin/nats-server";

/// The time a server may take to accept its first client. In this crate's tests on a
/// 2-core machine, seven servers started within 0.2 seconds in total, so this leaves room
/// for a loaded CI host.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the `INFO` line once connected.
const INFO_TIMEOUT: Duration = Duration::from_secs(1);

/// The pause between readiness and log checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Starts attempted when a port was taken between allocation and start.
const START_ATTEMPTS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_from_variable_wins() {
        let found = locate_binary(
            Some(OsString::from("/bin/sh")),
            None,
            Path::new("/nonexistent/nats-server"),
        );

        assert_eq!(found, Ok(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn variable_naming_missing_file_fails() {
        let found = locate_binary(
            Some(OsString::from("/nonexistent/bin")),
            None,
            Path::new("/bin/sh"),
        );

        let message = found.unwrap_err();
        assert!(message.contains("NATS_SERVER_BIN"), "{message}");
        assert!(message.contains("/nonexistent/bin"), "{message}");
    }

    #[test]
    fn missing_binary_names_install_command() {
        let found = locate_binary(
            None,
            Some(OsString::from("/nonexistent/a:/nonexistent/b")),
            Path::new("/nonexistent/nats-server"),
        );

        let message = found.unwrap_err();
        assert!(message.contains("apt-get install nats-server"), "{message}");
    }

    #[test]
    fn placeholders_listed_once_in_order() {
        let names = placeholders("a {{one}} b {{ two }} c {{one}} blocks { x: 1 }");

        assert_eq!(names, ["one", "two"]);
    }

    #[test]
    #[should_panic(expected = "unterminated placeholder")]
    fn unterminated_placeholder_panics() {
        placeholders("port: {{port");
    }

    #[test]
    fn render_replaces_placeholders() {
        let values = BTreeMap::from([
            ("port".to_owned(), "4222".to_owned()),
            ("hub".to_owned(), "7422".to_owned()),
        ]);

        let rendered = render("listen: {{port}}\nremote: {{ hub }} { }", &values);

        assert_eq!(rendered, "listen: 4222\nremote: 7422 { }");
    }
}
