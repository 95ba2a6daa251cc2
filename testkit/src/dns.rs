//! In-process authoritative DNS server for resolver tests.
//!
//! [`TestDns`] serves zones built from RFC 1035 master-file text with hickory-server's
//! in-memory zone handler. It listens on UDP and TCP on the same `127.0.0.1` port, so a
//! resolver that receives a truncated UDP answer (TC bit, RFC 1035 §4.2.1) can retry the
//! same address over TCP. Answers carry the AA flag, negative answers carry the zone's SOA
//! in the authority section, and names outside every zone get REFUSED, as a real
//! authoritative server does.
//!
//! A test can also:
//! - add, replace or remove records while the server runs ([`TestDns::add_record`],
//!   [`TestDns::replace_rrset`], [`TestDns::remove_rrset`]);
//! - make one name (and optionally one record type) answer SERVFAIL or REFUSED, never
//!   answer, or answer late ([`TestDns::set_behavior`]);
//! - read the log of every query received ([`TestDns::queries`], [`TestDns::query_count`]);
//! - serve records that the zone-file parser rejects, such as a CAA record with an invalid
//!   tag, through [`caa_record`] and [`raw_record`].
//!
//! Each CNAME is answered by the zone that holds it. Within one zone the server follows
//! the chain itself (RFC 1034 §3.6.2). A chain that leaves the zone ends with the last
//! in-zone CNAME, and the resolver under test must query the target, as it would with
//! separate real servers.
//!
//! The server does not sign zones (no DNSSEC), does not serve zone transfers and sets no
//! AD flag.
//!
//! # Example
//!
//! ```no_run
//! use hickory_proto::rr::RecordType;
//! use mpic_testkit::dns::{Behavior, TestDns, Zone};
//!
//! # async fn example() {
//! let dns = TestDns::start([
//!     Zone::new(
//!         "example.com.",
//!         r#"
//!         @       CAA 0 issue "ca.example.net; accounturi=https://ca.example.net/acct/1"
//!         @       CAA 128 tbs "unknown critical tag"
//!         www     CNAME www.example.org.
//!         _acme-challenge  TXT "first part" "second part"
//!         "#,
//!     ),
//!     Zone::new("example.org.", "www A 127.0.0.1"),
//! ])
//! .await;
//!
//! dns.set_behavior("broken.example.com.", Some(RecordType::CAA), Behavior::ServFail);
//! // Point the resolver under test at `dns.addr()`, run the check, then:
//! assert_eq!(dns.query_count_for("www.example.com.", RecordType::CAA), 1);
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{NULL, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};

use crate::lock;
use crate::loopback::{bind_udp_and_tcp, local_addr};

/// An authoritative DNS server for the zones a test gives it, on `127.0.0.1`.
///
/// The server stops when this value is dropped.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<State>,
    /// Owns the UDP and TCP tasks, so dropping it aborts them.
    _server: Server<Authority>,
}

impl TestDns {
    /// Starts a server for `zones` on `127.0.0.1`, UDP and TCP on one free port.
    ///
    /// # Panics
    ///
    /// Panics if no port is free for both UDP and TCP, or if two zones have the same origin.
    pub async fn start(zones: impl IntoIterator<Item = Zone>) -> TestDns {
        let mut catalog = Catalog::new();
        let mut handlers = BTreeMap::new();
        for zone in zones {
            let origin = LowerName::new(&zone.origin);
            let handler = Arc::new(zone.into_handler());
            catalog.upsert(origin.clone(), vec![handler.clone()]);
            if handlers.insert(origin.clone(), handler).is_some() {
                panic!("two zones have the origin {origin}");
            }
        }

        let state = Arc::new(State {
            catalog,
            zones: handlers,
            behaviors: Mutex::new(HashMap::new()),
            queries: Mutex::new(Vec::new()),
        });
        let (udp, tcp) = bind_udp_and_tcp().await;
        let addr = local_addr(&udp.local_addr());

        let mut server = Server::new(Authority {
            state: state.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);

        TestDns {
            addr,
            state,
            _server: server,
        }
    }

    /// Returns the address the server listens on, for both UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds `record` to its RRset in the zone that contains its name.
    ///
    /// The change is visible to the next query. Adding a CNAME or SOA replaces the
    /// existing one, because a name has at most one of each.
    ///
    /// # Panics
    ///
    /// Panics if no zone of this server contains the record's name.
    pub async fn add_record(&self, record: Record) {
        let handler = self.state.zone_for(&record.name);
        let serial = handler.serial().await;
        let description = format!("{} {}", record.name, record.record_type());
        if !handler.upsert(record, serial).await {
            panic!("the zone {} did not accept {description}", handler.origin());
        }
    }

    /// Adds every record in `records`, as [`TestDns::add_record`] does.
    pub async fn add_records(&self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            self.add_record(record).await;
        }
    }

    /// Parses master-file `text` relative to `origin` and adds its records.
    ///
    /// # Panics
    ///
    /// Panics if the text does not parse or a record lies outside every zone.
    pub async fn add_records_from_text(&self, origin: &str, text: &str) {
        self.add_records(records_from_text(origin, text)).await;
    }

    /// Replaces the RRset `name`/`record_type` with `records`. An empty list removes it.
    ///
    /// # Panics
    ///
    /// Panics if a record in `records` has another name or type, or if no zone contains
    /// `name`.
    pub async fn replace_rrset(
        &self,
        name: &str,
        record_type: RecordType,
        records: impl IntoIterator<Item = Record>,
    ) {
        let name = parse_name(name);
        let records: Vec<Record> = records.into_iter().collect();
        for record in &records {
            let key = (LowerName::new(&record.name), record.record_type());
            if key != (LowerName::new(&name), record_type) {
                panic!(
                    "replace_rrset({name}, {record_type}) got a record for {} {}",
                    record.name,
                    record.record_type()
                );
            }
        }

        self.remove_rrset_by_name(&name, record_type).await;
        self.add_records(records).await;
    }

    /// Removes the RRset `name`/`record_type`. Returns whether it existed.
    ///
    /// # Panics
    ///
    /// Panics if no zone contains `name`.
    pub async fn remove_rrset(&self, name: &str, record_type: RecordType) -> bool {
        self.remove_rrset_by_name(&parse_name(name), record_type)
            .await
    }

    /// Makes queries for `name` answer with `behavior` instead of the zone data.
    ///
    /// With `record_type` set to `None` the behavior applies to every record type. A rule
    /// for the exact record type takes precedence over a rule for every type. The name
    /// does not need to exist in any zone.
    pub fn set_behavior(&self, name: &str, record_type: Option<RecordType>, behavior: Behavior) {
        let key = (LowerName::new(&parse_name(name)), record_type);
        lock(&self.state.behaviors).insert(key, behavior);
    }

    /// Removes a rule set by [`TestDns::set_behavior`], so the zone data answers again.
    pub fn clear_behavior(&self, name: &str, record_type: Option<RecordType>) {
        let key = (LowerName::new(&parse_name(name)), record_type);
        lock(&self.state.behaviors).remove(&key);
    }

    /// Returns every query received so far, oldest first.
    ///
    /// A query is logged before it is answered, so once a client has its answer, the
    /// query is in the log. Queries answered by a [`Behavior`] are logged too.
    pub fn queries(&self) -> Vec<LoggedQuery> {
        lock(&self.state.queries).clone()
    }

    /// Returns how many queries of any type were received for `name`.
    pub fn query_count(&self, name: &str) -> usize {
        let name = LowerName::new(&parse_name(name));
        lock(&self.state.queries)
            .iter()
            .filter(|query| LowerName::new(&query.name) == name)
            .count()
    }

    /// Returns how many queries for `name` and `record_type` were received.
    pub fn query_count_for(&self, name: &str, record_type: RecordType) -> usize {
        let name = LowerName::new(&parse_name(name));
        lock(&self.state.queries)
            .iter()
            .filter(|query| LowerName::new(&query.name) == name)
            .filter(|query| query.record_type == record_type)
            .count()
    }

    /// Empties the query log.
    pub fn clear_queries(&self) {
        lock(&self.state.queries).clear();
    }

    async fn remove_rrset_by_name(&self, name: &Name, record_type: RecordType) -> bool {
        let handler = self.state.zone_for(name);
        let key = RrKey::new(LowerName::new(name), record_type);
        handler.records_mut().await.remove(&key).is_some()
    }
}

/// The zone data for one origin, parsed from master-file text.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    records: Vec<Record>,
}

impl Zone {
    /// Parses `text` as the master file of the zone `origin` (RFC 1035 §5).
    ///
    /// The text is parsed by hickory's zone-file parser, with these conveniences:
    /// - the common leading indentation is removed, so the text can be indented like the
    ///   code around it (a line indented further than the others still means "same owner
    ///   as the previous line", RFC 1035 §5.1);
    /// - records without a TTL get 300 seconds unless the text sets `$TTL`;
    /// - a zone without an SOA gets `ns1.<origin> hostmaster.<origin> 1 3600 600 86400
    ///   300`, so the negative-answer TTL is 300 seconds.
    ///
    /// # Panics
    ///
    /// Panics with the parser's message if the text does not parse, or if a record lies
    /// outside `origin`.
    pub fn new(origin: &str, text: &str) -> Zone {
        let origin = parse_name(origin);
        let mut records = parse_text(&origin, text);
        for record in &records {
            if !origin.zone_of(&record.name) {
                panic!("record {} lies outside the zone {origin}", record.name);
            }
        }

        let has_soa = records
            .iter()
            .any(|record| record.record_type() == RecordType::SOA && record.name == origin);
        if !has_soa {
            records.insert(0, default_soa(&origin));
        }
        Zone { origin, records }
    }

    /// Adds a record built in code, such as one from [`caa_record`] or [`raw_record`].
    ///
    /// # Panics
    ///
    /// Panics if the record lies outside the zone.
    pub fn with_record(mut self, record: Record) -> Zone {
        if !self.origin.zone_of(&record.name) {
            panic!(
                "record {} lies outside the zone {}",
                record.name, self.origin
            );
        }
        self.records.push(record);
        self
    }

    /// Returns the zone's origin.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Returns the zone's records, SOA included.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    fn into_handler(self) -> InMemoryZoneHandler {
        let mut rrsets: BTreeMap<RrKey, RecordSet> = BTreeMap::new();
        for record in self.records {
            let key = RrKey::new(LowerName::new(&record.name), record.record_type());
            rrsets
                .entry(key)
                .or_insert_with(|| RecordSet::new(record.name.clone(), record.record_type(), 0))
                .insert(record, 0);
        }

        let origin = self.origin;
        InMemoryZoneHandler::new(origin.clone(), rrsets, ZoneType::Primary, AxfrPolicy::Deny)
            .unwrap_or_else(|error| panic!("zone {origin} is not valid: {error}"))
    }
}

/// A response that replaces the zone data for matching queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behavior {
    /// Answers with RCODE SERVFAIL and no records.
    ServFail,
    /// Answers with RCODE REFUSED and no records.
    Refused,
    /// Sends nothing. Over TCP the connection stays open.
    Drop,
    /// Answers from the zone data after the given delay.
    Delay(Duration),
}

/// One query received by a [`TestDns`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedQuery {
    /// The queried name, in lower case, fully qualified.
    pub name: Name,
    /// The queried record type.
    pub record_type: RecordType,
    /// The transport the query arrived on.
    pub transport: Transport,
    /// The client's address.
    pub source: SocketAddr,
}

/// The transport a DNS query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP (RFC 1035 §4.2.1).
    Udp,
    /// TCP (RFC 1035 §4.2.2, RFC 7766).
    Tcp,
}

/// Parses master-file `text` relative to `origin` into records.
///
/// The same conveniences apply as in [`Zone::new`], except that no SOA is added.
///
/// # Panics
///
/// Panics with the parser's message if the text does not parse.
pub fn records_from_text(origin: &str, text: &str) -> Vec<Record> {
    parse_text(&parse_name(origin), text)
}

/// Builds a CAA record from its wire fields (RFC 8659 §4.1) without checking them.
///
/// The RDATA is `flags`, the tag length, `tag` and `value`, exactly as given. Use it for
/// records that the zone-file parser or hickory's `CAA` type would reject or rewrite. Such
/// records include a tag with characters outside `[A-Za-z0-9]`, an empty tag, a tag longer
/// than 15 bytes, reserved flag bits and a value that is not valid UTF-8.
///
/// # Panics
///
/// Panics if `name` is not a valid domain name or `tag` is longer than 255 bytes.
pub fn caa_record(name: &str, ttl: u32, flags: u8, tag: &str, value: &[u8]) -> Record {
    let tag_length = u8::try_from(tag.len())
        .unwrap_or_else(|_| panic!("CAA tag is {} bytes, the maximum is 255", tag.len()));
    let mut rdata = Vec::with_capacity(2 + tag.len() + value.len());
    rdata.push(flags);
    rdata.push(tag_length);
    rdata.extend_from_slice(tag.as_bytes());
    rdata.extend_from_slice(value);
    raw_record(name, ttl, RecordType::CAA, rdata)
}

/// Builds a record whose RDATA is sent as the given bytes, whatever `record_type` is.
///
/// # Panics
///
/// Panics if `name` is not a valid domain name.
pub fn raw_record(name: &str, ttl: u32, record_type: RecordType, rdata: Vec<u8>) -> Record {
    let rdata = RData::Unknown {
        code: record_type,
        rdata: NULL::with(rdata),
    };
    Record::from_rdata(parse_name(name), ttl, rdata)
}

/// The request handler: logs the query, applies a [`Behavior`] if one matches, and
/// otherwise lets the catalog answer from the zones.
struct Authority {
    state: Arc<State>,
}

#[async_trait::async_trait]
impl RequestHandler for Authority {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let behavior = match request.request_info() {
            Ok(info) => {
                let name = info.query.name();
                let record_type = info.query.query_type();
                self.state.log_query(name, record_type, request);
                self.state.behavior_for(name, record_type)
            }
            // The catalog answers FORMERR for a request without exactly one question.
            Err(_) => None,
        };

        match behavior {
            None => {}
            Some(Behavior::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Behavior::ServFail) => {
                return send_error(request, ResponseCode::ServFail, response_handle).await;
            }
            Some(Behavior::Refused) => {
                return send_error(request, ResponseCode::Refused, response_handle).await;
            }
            Some(Behavior::Drop) => return unsent_response(request),
        }
        self.state
            .catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// The state shared by [`TestDns`] and the request handler.
struct State {
    catalog: Catalog,
    /// The same handlers as in `catalog`, by origin, for changes while running.
    zones: BTreeMap<LowerName, Arc<InMemoryZoneHandler>>,
    behaviors: Mutex<HashMap<(LowerName, Option<RecordType>), Behavior>>,
    queries: Mutex<Vec<LoggedQuery>>,
}

impl State {
    /// Returns the handler of the most specific zone that contains `name`.
    fn zone_for(&self, name: &Name) -> &InMemoryZoneHandler {
        let name = LowerName::new(name);
        self.zones
            .iter()
            .filter(|(origin, _)| origin.zone_of(&name))
            .max_by_key(|(origin, _)| origin.num_labels())
            .map(|(_, handler)| handler.as_ref())
            .unwrap_or_else(|| panic!("no zone of this test DNS server contains {name}"))
    }

    fn log_query(&self, name: &LowerName, record_type: RecordType, request: &Request) {
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            // The server registers only a UDP socket and a TCP listener.
            _ => Transport::Tcp,
        };
        lock(&self.queries).push(LoggedQuery {
            name: Name::from(name),
            record_type,
            transport,
            source: request.src(),
        });
    }

    fn behavior_for(&self, name: &LowerName, record_type: RecordType) -> Option<Behavior> {
        let behaviors = lock(&self.behaviors);
        behaviors
            .get(&(name.clone(), Some(record_type)))
            .or_else(|| behaviors.get(&(name.clone(), None)))
            .copied()
    }
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    response_code: ResponseCode,
    mut response_handle: R,
) -> ResponseInfo {
    let response = MessageResponseBuilder::from_message_request(request)
        .error_msg(&request.metadata, response_code);
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "test DNS server could not send an error response");
            unsent_response(request)
        }
    }
}

/// Builds the `ResponseInfo` the server's logging expects when no response was sent.
fn unsent_response(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

fn parse_text(origin: &Name, text: &str) -> Vec<Record> {
    let text = format!("$TTL {DEFAULT_TTL}\n{}", dedent(text));
    let (_, rrsets) = Parser::new(text, None, Some(origin.clone()))
        .parse()
        .unwrap_or_else(|error| panic!("zone text for {origin} does not parse: {error}"));
    rrsets
        .into_values()
        .flat_map(|rrset| rrset.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .collect()
}

/// Removes the indentation that all non-blank lines share.
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|line| line.get(indent..).unwrap_or_else(|| line.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn default_soa(origin: &Name) -> Record {
    let label = |prefix: &str| {
        Name::parse(prefix, Some(origin))
            .unwrap_or_else(|error| panic!("cannot build {prefix}.{origin}: {error}"))
    };
    let soa = SOA::new(
        label("ns1"),
        label("hostmaster"),
        1,
        3600,
        600,
        86400,
        DEFAULT_TTL,
    );
    Record::from_rdata(origin.clone(), DEFAULT_TTL, RData::SOA(soa))
}

/// Parses a domain name and makes it fully qualified.
fn parse_name(name: &str) -> Name {
    let mut parsed = Name::from_utf8(name)
        .unwrap_or_else(|error| panic!("{name:?} is not a valid domain name: {error}"));
    parsed.set_fqdn(true);
    parsed
}

/// TTL in seconds for records without one and for negative answers.
const DEFAULT_TTL: u32 = 300;

/// How long an idle TCP connection stays open, which outlasts the retries of a test.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Responses queued per TCP connection, the size hickory-net 0.26 uses for its own streams.
const TCP_RESPONSE_BUFFER: usize = 32;
