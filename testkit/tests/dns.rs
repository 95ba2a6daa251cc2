//! Tests of the DNS fixture: each one sends real queries over UDP or TCP to a `TestDns`
//! and decodes the answers with hickory-proto, or resolves through hickory-resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mpic_testkit::dns::{Behavior, TestDns, Transport, Zone, caa_record, records_from_text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const CAA_ZONE: &str = r#"
    @           CAA 0 issue "ca.example.net; accounturi=https://ca.example.net/acct/1; validationmethods=dns-01,http-01"
    @           CAA 0 issuewild ";"
    @           CAA 128 tbs "unknown critical tag"
    @           CAA 128 issue "ca.example.org"
    @           CAA 0 contactemail "admin@example.com"
    @           CAA 0 contactphone "+1 555 0100"
    @           CAA 0 iodef "mailto:security@example.com"
    malformed   CAA 0 issue "%%% not a domain"
    _acme-challenge  TXT "first part" "second part"
    www         A 127.0.0.10
    www         AAAA ::1
    alias       CNAME www
    outside     CNAME www.example.org.
"#;

#[tokio::test]
async fn caa_records_served_as_written() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    let response = query_udp(dns.addr(), "example.com.", RecordType::CAA).await;

    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative, "AA flag is not set");
    let mut values: Vec<(u8, String, String)> = response
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::CAA(caa) => (
                caa.flags(),
                caa.tag.clone(),
                String::from_utf8(caa.value.clone()).unwrap(),
            ),
            other => panic!("unexpected answer {other:?}"),
        })
        .collect();
    values.sort();
    let expected = [
        (0, "contactemail", "admin@example.com"),
        (0, "contactphone", "+1 555 0100"),
        (0, "iodef", "mailto:security@example.com"),
        (
            0,
            "issue",
            "ca.example.net; accounturi=https://ca.example.net/acct/1; validationmethods=dns-01,http-01",
        ),
        (0, "issuewild", ";"),
        (128, "issue", "ca.example.org"),
        (128, "tbs", "unknown critical tag"),
    ];
    let expected: Vec<(u8, String, String)> = expected
        .iter()
        .map(|(flags, tag, value)| (*flags, tag.to_string(), value.to_string()))
        .collect();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn malformed_caa_value_served_unchanged() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    let response = query_udp(dns.addr(), "malformed.example.com.", RecordType::CAA).await;

    let RData::CAA(caa) = &response.answers[0].data else {
        panic!("expected a CAA answer, got {:?}", response.answers);
    };
    assert_eq!(caa.value, b"%%% not a domain");
}

#[tokio::test]
async fn raw_caa_record_with_invalid_tag() {
    let zone = Zone::new("example.com.", "").with_record(caa_record(
        "bad.example.com.",
        300,
        0,
        "not-valid!",
        b"ca.example.net",
    ));
    let dns = TestDns::start([zone]).await;

    let bytes = query_bytes_udp(dns.addr(), "bad.example.com.", RecordType::CAA).await;

    // hickory-proto refuses to decode this tag, so look for the RDATA in the raw answer.
    let rdata = [&[0_u8, 10][..], b"not-valid!", b"ca.example.net"].concat();
    let found = bytes.windows(rdata.len()).any(|window| window == rdata);
    assert!(found, "the answer does not contain the raw CAA RDATA");
    assert!(
        Message::from_vec(&bytes).is_err(),
        "hickory-proto decoded an invalid CAA tag"
    );
}

#[tokio::test]
async fn txt_record_keeps_every_string() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    let response = query_udp(dns.addr(), "_acme-challenge.example.com.", RecordType::TXT).await;

    let RData::TXT(txt) = &response.answers[0].data else {
        panic!("expected a TXT answer, got {:?}", response.answers);
    };
    let strings: Vec<&[u8]> = txt.txt_data.iter().map(|data| &data[..]).collect();
    assert_eq!(strings, [&b"first part"[..], &b"second part"[..]]);
}

#[tokio::test]
async fn address_and_ptr_records() {
    let dns = TestDns::start([
        Zone::new("example.com.", CAA_ZONE),
        Zone::new("0.0.127.in-addr.arpa.", "10 PTR www.example.com."),
    ])
    .await;

    let a = query_udp(dns.addr(), "www.example.com.", RecordType::A).await;
    let aaaa = query_udp(dns.addr(), "www.example.com.", RecordType::AAAA).await;
    let ptr = query_udp(dns.addr(), "10.0.0.127.in-addr.arpa.", RecordType::PTR).await;

    assert_eq!(
        a.answers[0].data,
        RData::A(Ipv4Addr::new(127, 0, 0, 10).into())
    );
    assert_eq!(
        aaaa.answers[0].data,
        RData::AAAA(Ipv6Addr::LOCALHOST.into())
    );
    let RData::PTR(target) = &ptr.answers[0].data else {
        panic!("expected a PTR answer, got {:?}", ptr.answers);
    };
    assert_eq!(target.0, Name::from_str("www.example.com.").unwrap());
}

#[tokio::test]
async fn cname_in_zone_chased_by_server() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    let response = query_udp(dns.addr(), "alias.example.com.", RecordType::A).await;

    let types: Vec<RecordType> = response.answers.iter().map(Record::record_type).collect();
    assert_eq!(types, [RecordType::CNAME, RecordType::A]);
}

#[tokio::test]
async fn cname_chain_across_zones_resolves() {
    let dns = TestDns::start([
        Zone::new("example.com.", CAA_ZONE),
        Zone::new("example.org.", "www CNAME final.example.net."),
        Zone::new("example.net.", "final A 127.0.0.20"),
    ])
    .await;
    let resolver = resolver_for(dns.addr());

    let lookup = resolver
        .lookup("outside.example.com.", RecordType::A)
        .await
        .unwrap();

    let addresses: Vec<&RData> = lookup
        .answers()
        .iter()
        .filter(|record| record.record_type() == RecordType::A)
        .map(|record| &record.data)
        .collect();
    assert_eq!(addresses, [&RData::A(Ipv4Addr::new(127, 0, 0, 20).into())]);
    assert_eq!(dns.query_count_for("www.example.org.", RecordType::A), 1);
    assert_eq!(dns.query_count_for("final.example.net.", RecordType::A), 1);
}

#[tokio::test]
async fn negative_answers_and_outside_names() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    let nxdomain = query_udp(dns.addr(), "missing.example.com.", RecordType::CAA).await;
    let nodata = query_udp(dns.addr(), "www.example.com.", RecordType::CAA).await;
    let outside = query_udp(dns.addr(), "example.invalid.", RecordType::CAA).await;

    assert_eq!(nxdomain.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nxdomain.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty(), "NODATA answer has records");
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn large_rrset_truncated_over_udp_complete_over_tcp() {
    let dns = TestDns::start([Zone::new("example.com.", "")]).await;
    let records: Vec<Record> = (0..1000)
        .flat_map(|index| {
            records_from_text(
                "example.com.",
                &format!("big CAA 0 issue \"ca{index}.example.net\""),
            )
        })
        .collect();
    dns.add_records(records).await;

    let udp = query_udp(dns.addr(), "big.example.com.", RecordType::CAA).await;
    let tcp = query_tcp(dns.addr(), "big.example.com.", RecordType::CAA).await;

    assert!(udp.metadata.truncation, "UDP answer is not truncated");
    assert!(!tcp.metadata.truncation, "TCP answer is truncated");
    assert_eq!(tcp.answers.len(), 1000);
    let transports: Vec<Transport> = dns.queries().iter().map(|query| query.transport).collect();
    assert_eq!(transports, [Transport::Udp, Transport::Tcp]);
}

#[tokio::test]
async fn resolver_retries_truncated_answer_over_tcp() {
    let dns = TestDns::start([Zone::new("example.com.", "")]).await;
    let text: String = (0..1000)
        .map(|index| format!("big CAA 0 issue \"ca{index}.example.net\"\n"))
        .collect();
    dns.add_records_from_text("example.com.", &text).await;
    let resolver = resolver_for(dns.addr());

    let lookup = resolver
        .lookup("big.example.com.", RecordType::CAA)
        .await
        .unwrap();

    assert_eq!(lookup.answers().len(), 1000);
    let transports: Vec<Transport> = dns.queries().iter().map(|query| query.transport).collect();
    assert!(
        transports.contains(&Transport::Tcp),
        "resolver never queried over TCP: {transports:?}"
    );
}

#[tokio::test]
async fn behaviors_override_zone_data() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;
    dns.set_behavior("example.com.", Some(RecordType::CAA), Behavior::ServFail);
    dns.set_behavior("www.example.com.", None, Behavior::Refused);

    let servfail = query_udp(dns.addr(), "example.com.", RecordType::CAA).await;
    let other_type = query_udp(dns.addr(), "_acme-challenge.example.com.", RecordType::TXT).await;
    let refused_a = query_udp(dns.addr(), "www.example.com.", RecordType::A).await;
    let refused_aaaa = query_tcp(dns.addr(), "www.example.com.", RecordType::AAAA).await;

    assert_eq!(servfail.metadata.response_code, ResponseCode::ServFail);
    assert!(servfail.answers.is_empty(), "SERVFAIL answer has records");
    assert_eq!(other_type.metadata.response_code, ResponseCode::NoError);
    assert_eq!(refused_a.metadata.response_code, ResponseCode::Refused);
    assert_eq!(refused_aaaa.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn type_rule_wins_over_name_rule() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;
    dns.set_behavior("www.example.com.", None, Behavior::Refused);
    dns.set_behavior("www.example.com.", Some(RecordType::A), Behavior::ServFail);

    let a = query_udp(dns.addr(), "www.example.com.", RecordType::A).await;
    let aaaa = query_udp(dns.addr(), "www.example.com.", RecordType::AAAA).await;

    assert_eq!(a.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(aaaa.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn cleared_behavior_restores_answers() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;
    dns.set_behavior("www.example.com.", None, Behavior::ServFail);
    dns.clear_behavior("www.example.com.", None);

    let response = query_udp(dns.addr(), "www.example.com.", RecordType::A).await;

    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers.len(), 1);
}

#[tokio::test]
async fn dropped_query_gets_no_answer() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;
    dns.set_behavior("example.com.", Some(RecordType::CAA), Behavior::Drop);

    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let request = query_message("example.com.", RecordType::CAA);
    socket.send_to(&request, dns.addr()).await.unwrap();
    let mut buffer = [0_u8; 4096];
    let answer =
        tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buffer)).await;

    assert!(answer.is_err(), "dropped query was answered");
    assert_eq!(dns.query_count_for("example.com.", RecordType::CAA), 1);
}

#[tokio::test]
async fn delayed_query_answers_late() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;
    let delay = Duration::from_millis(200);
    dns.set_behavior("www.example.com.", None, Behavior::Delay(delay));

    let started = Instant::now();
    let response = query_udp(dns.addr(), "www.example.com.", RecordType::A).await;

    assert!(started.elapsed() >= delay, "answer came before the delay");
    assert_eq!(response.answers.len(), 1);
}

#[tokio::test]
async fn records_change_while_running() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    dns.add_records_from_text("example.com.", "new TXT \"added\"")
        .await;
    let added = query_udp(dns.addr(), "new.example.com.", RecordType::TXT).await;

    let replacement = records_from_text("example.com.", "www A 127.0.0.30");
    dns.replace_rrset("www.example.com.", RecordType::A, replacement)
        .await;
    let replaced = query_udp(dns.addr(), "www.example.com.", RecordType::A).await;

    let existed = dns.remove_rrset("new.example.com.", RecordType::TXT).await;
    let removed = query_udp(dns.addr(), "new.example.com.", RecordType::TXT).await;

    assert_eq!(added.answers.len(), 1, "added record not served");
    assert_eq!(
        replaced.answers.iter().map(|r| &r.data).collect::<Vec<_>>(),
        [&RData::A(Ipv4Addr::new(127, 0, 0, 30).into())]
    );
    assert!(existed, "remove_rrset did not find the added RRset");
    assert_eq!(removed.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn query_log_records_names_and_types() {
    let dns = TestDns::start([Zone::new("example.com.", CAA_ZONE)]).await;

    query_udp(dns.addr(), "WWW.Example.COM.", RecordType::A).await;
    query_tcp(dns.addr(), "example.com.", RecordType::CAA).await;

    let queries = dns.queries();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0].name, Name::from_str("www.example.com.").unwrap());
    assert_eq!(queries[0].record_type, RecordType::A);
    assert_eq!(queries[0].transport, Transport::Udp);
    assert_eq!(queries[1].transport, Transport::Tcp);
    assert_eq!(dns.query_count("www.example.com."), 1);
    assert_eq!(dns.query_count_for("www.example.com.", RecordType::AAAA), 0);
    assert_eq!(dns.query_count("missing.example.com."), 0);

    dns.clear_queries();
    assert!(dns.queries().is_empty(), "query log not cleared");
}

#[test]
#[should_panic(expected = "does not parse")]
fn zone_text_error_panics() {
    Zone::new("example.com.", "www A not-an-address");
}

/// Builds a resolver that sends every query to `addr`, with its cache disabled.
fn resolver_for(addr: SocketAddr) -> Resolver<TokioRuntimeProvider> {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let server = NameServerConfig::new(IpAddr::from(Ipv4Addr::LOCALHOST), true, vec![udp, tcp]);
    let mut options = ResolverOpts::default();
    options.cache_size = 0;
    options.timeout = Duration::from_secs(2);
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .unwrap()
}

fn query_message(name: &str, record_type: RecordType) -> Vec<u8> {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_str(name).unwrap(), record_type));
    message.to_vec().unwrap()
}

async fn query_bytes_udp(addr: SocketAddr, name: &str, record_type: RecordType) -> Vec<u8> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket
        .send_to(&query_message(name, record_type), addr)
        .await
        .unwrap();
    let mut buffer = vec![0_u8; 65_535];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("UDP answer timed out")
        .unwrap();
    buffer.truncate(length);
    buffer
}

async fn query_udp(addr: SocketAddr, name: &str, record_type: RecordType) -> Message {
    Message::from_vec(&query_bytes_udp(addr, name, record_type).await).unwrap()
}

async fn query_tcp(addr: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = query_message(name, record_type);
    let length = u16::try_from(request.len()).unwrap().to_be_bytes();
    stream
        .write_all(&[&length[..], &request].concat())
        .await
        .unwrap();

    let exchange = async {
        let length = stream.read_u16().await.unwrap();
        let mut buffer = vec![0_u8; usize::from(length)];
        stream.read_exact(&mut buffer).await.unwrap();
        buffer
    };
    let buffer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("TCP answer timed out");
    Message::from_vec(&buffer).unwrap()
}
