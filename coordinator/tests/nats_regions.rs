//! The shipped NATS configurations (`nats/hub.conf`, `nats/hub-accounts.conf`,
//! `nats/leaf.conf`) under real nats-server processes: a hub and the leaf nodes of two
//! regions on loopback, with mutual TLS and the credentials the files define.
//!
//! What must hold, because the CA may not fully trust every region and BR §3.2.2.9 requires
//! authenticated and encrypted channels to remote perspectives:
//! - the coordinator's request reaches a worker of the region it names, and the reply
//!   comes back;
//! - a region's workers, its leaf node, or anything holding the region's hub credentials
//!   cannot receive another region's requests, and nothing they publish except replies
//!   reaches another region or the coordinator;
//! - no client reaches the hub without a client certificate from the deployment's CA.
//!
//! The signed replies, the binaries and the coordinator's reaction to a missing region are
//! tested elsewhere.

mod regions_support;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mpic_shared::subject::QUEUE_GROUP;
use regions_support::{
    ClientCertificate, PREFIX, REGION_A, REGION_B, Regions, answer_requests, caa_subject,
    request_until_answered,
};
use tokio::sync::mpsc;

/// How long a test waits for a message that must not arrive, after the hub has processed
/// everything that could have produced it.
const SILENCE: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_request_reaches_region_worker() {
    let regions = Regions::start();
    let (coordinator, _) = regions.coordinator().await;
    let mut handled = Vec::new();
    for _ in 0..2 {
        let (worker, _) = regions.worker(&regions.leaf_a).await;
        let subscriber = worker
            .queue_subscribe(caa_subject(REGION_A), QUEUE_GROUP.to_owned())
            .await
            .unwrap();
        handled.push(answer_requests(worker, subscriber));
    }

    let first = request_until_answered(&coordinator, &caa_subject(REGION_A), "check 0").await;
    let mut replies = vec![String::from_utf8_lossy(&first.payload).into_owned()];
    for number in 1..6 {
        let payload = Bytes::from(format!("check {number}"));
        let reply = coordinator
            .request(caa_subject(REGION_A), payload)
            .await
            .unwrap();
        replies.push(String::from_utf8_lossy(&reply.payload).into_owned());
    }

    assert_eq!(replies.first().map(String::as_str), Some("reply: check 0"));
    assert_eq!(replies.last().map(String::as_str), Some("reply: check 5"));
    let received: Vec<String> = handled.iter_mut().flat_map(drain).collect();
    let mut checks: Vec<&str> = received.iter().map(String::as_str).collect();
    checks.sort_unstable();
    // The queue group hands each request to exactly one worker. The first request may have
    // been sent several times before the subscriptions reached the hub.
    checks.dedup();
    assert_eq!(
        checks,
        [
            "check 0", "check 1", "check 2", "check 3", "check 4", "check 5"
        ]
    );
    let total: usize = received.len();
    let first_copies = received.iter().filter(|check| *check == "check 0").count();
    assert_eq!(
        total - first_copies,
        5,
        "a request was handled twice: {received:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_cannot_subscribe_other_region() {
    let regions = Regions::start();
    let (coordinator, _) = regions.coordinator().await;
    let mut region_b = answer_region(&regions, REGION_B).await;
    let (worker_a, mut errors) = regions.worker(&regions.leaf_a).await;

    let mut other_region = worker_a
        .queue_subscribe(caa_subject(REGION_B), QUEUE_GROUP.to_owned())
        .await
        .unwrap();
    let violation = errors
        .wait_for(&format!(
            "Permissions Violation for Subscription to \"{}\"",
            caa_subject(REGION_B)
        ))
        .await;
    let mut outside_queue_group = worker_a.subscribe(caa_subject(REGION_A)).await.unwrap();
    errors
        .wait_for(&format!(
            "Permissions Violation for Subscription to \"{}\"",
            caa_subject(REGION_A)
        ))
        .await;

    let reply = request_until_answered(&coordinator, &caa_subject(REGION_B), "check b").await;
    assert_eq!(reply.payload, "reply: check b", "{violation}");
    assert!(drain(&mut region_b).contains(&"check b".to_owned()));
    assert_no_message(&mut other_region, "region B's request on region A's worker").await;
    coordinator
        .publish(
            caa_subject(REGION_A),
            Bytes::from("outside the queue group"),
        )
        .await
        .unwrap();
    coordinator.flush().await.unwrap();
    assert_no_message(
        &mut outside_queue_group,
        "a request outside the queue group",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_leaf_cannot_receive_other_region() {
    let regions = Regions::start();
    let (coordinator, _) = regions.coordinator().await;
    let mut region_b = answer_region(&regions, REGION_B).await;
    // Region A's leaf node, reconfigured to let its workers subscribe to anything.
    let altered = regions.start_altered_leaf(REGION_A, "\">\"");
    let (worker_a, mut errors) = regions.worker(&altered).await;

    let mut other_region = worker_a.subscribe(caa_subject(REGION_B)).await.unwrap();
    let mut everything = worker_a.subscribe(">").await.unwrap();
    worker_a.flush().await.unwrap();

    let reply = request_until_answered(&coordinator, &caa_subject(REGION_B), "check b").await;
    assert_eq!(reply.payload, "reply: check b");
    assert!(drain(&mut region_b).contains(&"check b".to_owned()));
    assert_no_message(&mut other_region, "region B's request on an altered leaf").await;
    assert_no_message(&mut everything, "any message on an altered leaf").await;
    let local_errors = errors.received();
    assert!(
        local_errors.is_empty(),
        "the altered leaf itself rejected the subscriptions, so the hub was not tested: \
         {local_errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_leaf_cannot_receive_other_region() {
    let regions = Regions::start();
    let (coordinator, _) = regions.coordinator().await;
    let mut region_b = answer_region(&regions, REGION_B).await;

    let mut named = regions.rogue_leaf(REGION_A);
    named.subscribe(&caa_subject(REGION_B));
    named.ping();
    let mut wildcard = regions.rogue_leaf(REGION_A);
    wildcard.subscribe(">");
    wildcard.subscribe(&format!("{PREFIX}.*.caa"));
    wildcard.ping();

    let reply = request_until_answered(&coordinator, &caa_subject(REGION_B), "check b").await;
    assert_eq!(reply.payload, "reply: check b");
    assert!(drain(&mut region_b).contains(&"check b".to_owned()));
    coordinator
        .publish(caa_subject(REGION_A), Bytes::from("check a"))
        .await
        .unwrap();
    coordinator.flush().await.unwrap();

    let named_received = named.received_after(SILENCE).to_owned();
    assert!(
        named_received.contains(&format!(
            "Permissions Violation for Subscription to \"{}\"",
            caa_subject(REGION_B)
        )),
        "the hub accepted region A's subscription to region B: {named_received}"
    );
    assert!(
        named.is_closed(),
        "the hub kept the violating leaf connected"
    );
    let wildcard_received = wildcard.received_after(SILENCE).to_owned();
    assert!(
        wildcard_received.contains("check a"),
        "the wildcard subscription got nothing, so the test proves nothing: {wildcard_received}"
    );
    assert!(
        !wildcard_received.contains("check b"),
        "region B's request reached region A's leaf connection: {wildcard_received}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_leaf_cannot_publish_into_hub() {
    let regions = Regions::start();
    let (coordinator, _) = regions.coordinator().await;
    let mut region_b = answer_region(&regions, REGION_B).await;
    let inbox = format!("_INBOX.probe.{}", std::process::id());
    let mut coordinator_inbox = coordinator.subscribe(format!("{inbox}.>")).await.unwrap();
    request_until_answered(&coordinator, &caa_subject(REGION_B), "first").await;

    let mut rogue = regions.rogue_leaf(REGION_A);
    rogue.publish(&caa_subject(REGION_B), "forged request");
    rogue.publish_to_queue(&caa_subject(REGION_B), QUEUE_GROUP, "forged request");
    rogue.publish(&format!("{inbox}.1"), "forged reply");
    rogue.publish("anything.else", "forged");
    rogue.ping();

    // The hub forwards in order on each connection, so a forged request routed to region B
    // would reach its worker before this one.
    request_until_answered(&coordinator, &caa_subject(REGION_B), "second").await;
    coordinator.flush().await.unwrap();
    let region_b_received = drain(&mut region_b);
    assert!(region_b_received.contains(&"second".to_owned()));
    assert!(
        !region_b_received.contains(&"forged request".to_owned()),
        "region A's leaf connection published a request to region B: {region_b_received:?}"
    );
    assert_no_message(&mut coordinator_inbox, "a reply forged by region A's leaf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_cannot_publish_arbitrary_subjects() {
    let regions = Regions::start();
    let (coordinator, _) = regions.coordinator().await;
    let mut region_b = answer_region(&regions, REGION_B).await;
    let inbox = format!("_INBOX.probe.{}", std::process::id());
    let mut coordinator_inbox = coordinator.subscribe(format!("{inbox}.>")).await.unwrap();
    request_until_answered(&coordinator, &caa_subject(REGION_B), "first").await;
    let (worker_a, mut errors) = regions.worker(&regions.leaf_a).await;

    let subjects = [
        caa_subject(REGION_B),
        caa_subject(REGION_A),
        format!("{inbox}.1"),
        "anything.else".to_owned(),
    ];
    for subject in &subjects {
        worker_a
            .publish(subject.clone(), Bytes::from("forged"))
            .await
            .unwrap();
        errors
            .wait_for(&format!(
                "Permissions Violation for Publish to \"{subject}\""
            ))
            .await;
    }

    request_until_answered(&coordinator, &caa_subject(REGION_B), "second").await;
    coordinator.flush().await.unwrap();
    let region_b_received = drain(&mut region_b);
    assert!(region_b_received.contains(&"second".to_owned()));
    assert!(
        !region_b_received.contains(&"forged".to_owned()),
        "a region A worker published a request to region B: {region_b_received:?}"
    );
    assert_no_message(
        &mut coordinator_inbox,
        "a reply forged by a region A worker",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_rejects_client_without_certificate() {
    let regions = Regions::start();

    let without = regions
        .connect_coordinator_with(ClientCertificate::Missing)
        .await;
    let with = regions
        .connect_coordinator_with(ClientCertificate::Issued)
        .await;

    assert!(
        without.is_err(),
        "the hub accepted a client without a certificate"
    );
    assert!(
        with.is_ok(),
        "the same login with a certificate failed, so the test proves nothing: {:?}",
        with.err()
    );
}

/// Starts a worker of `code` on its leaf node that answers every CAA request, and returns
/// the payloads it received.
async fn answer_region(regions: &Regions, code: &str) -> mpsc::UnboundedReceiver<String> {
    let leaf = if code == REGION_A {
        &regions.leaf_a
    } else {
        &regions.leaf_b
    };
    let (worker, _) = regions.worker(leaf).await;
    let subscriber = worker
        .queue_subscribe(caa_subject(code), QUEUE_GROUP.to_owned())
        .await
        .unwrap();
    answer_requests(worker, subscriber)
}

/// Returns the payloads received so far.
fn drain(received: &mut mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut payloads = Vec::new();
    while let Ok(payload) = received.try_recv() {
        payloads.push(payload);
    }
    payloads
}

/// Asserts that `subscriber` receives nothing within [`SILENCE`].
async fn assert_no_message(subscriber: &mut async_nats::Subscriber, what: &str) {
    if let Ok(Some(message)) = tokio::time::timeout(SILENCE, subscriber.next()).await {
        panic!(
            "{what} was delivered: {} {:?}",
            message.subject, message.payload
        );
    }
}
