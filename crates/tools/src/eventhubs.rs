//! Event Hubs for the local loop and for feeding a real namespace: publish telemetry or
//! Stream-Analytics-shaped windows (`simulate --event-hub`), and tail the alerts or
//! dead-letter hub (`alerts --event-hub`). The Functions host owns the service's own Event Hubs
//! traffic; this is client tooling, so it lives in `tools` and the service never imports it.
//!
//! Two ways in, as the app settings have them:
//! - Entra ID (`--namespace ns.servicebus.windows.net`): the Azure CLI's login or a managed
//!   identity; the namespace has local (key) auth turned off (infra/).
//! - A connection string from an environment variable (default `EventHubConnection`, as in
//!   `local.settings.json`). With `UseDevelopmentEmulator=true` the client dials plain AMQP on
//!   the endpoint's host (port 5672 unless given), as the other Azure SDKs do; the Rust SDK
//!   ignores that key, so it is read here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::StatusCode;
use azure_core_amqp::error::AmqpErrorKind;
use azure_core_amqp::{AmqpError, AmqpErrorCondition};
use azure_messaging_eventhubs::{
    ConsumerClient, EventDataBatchOptions, EventHubsError, OpenReceiverOptions, ProducerClient,
    RetryOptions, StartLocation, StartPosition,
};
use futures::StreamExt;

use domain::wire::{Alert, DeadLetter};
use domain::IncidentMessage;
use domain::Secret;

/// The AMQP port of a namespace or of the emulator.
const AMQP_PORT: u16 = 5672;

/// Where and how to connect.
#[derive(Clone)]
pub enum Connection {
    /// Entra ID against `namespace` (fully qualified). `endpoint` overrides where the client
    /// dials (`amqp://host:port` for plain TCP); `None` is the namespace over TLS.
    Entra {
        namespace: String,
        credential: Arc<dyn TokenCredential>,
        endpoint: Option<String>,
    },
    /// A connection string (its `Endpoint` rewritten without a port) and the endpoint to dial.
    ConnectionString {
        value: Secret,
        namespace: String,
        endpoint: Option<String>,
    },
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Entra {
                namespace,
                endpoint,
                ..
            } => f
                .debug_struct("Entra")
                .field("namespace", namespace)
                .field("endpoint", endpoint)
                .finish(),
            Connection::ConnectionString {
                namespace,
                endpoint,
                ..
            } => f
                .debug_struct("ConnectionString")
                .field("namespace", namespace)
                .field("endpoint", endpoint)
                .field("value", &"<redacted>")
                .finish(),
        }
    }
}

/// Why an Event Hubs command could not do its job, one line each.
#[derive(Debug, thiserror::Error)]
pub enum EventHubError {
    #[error("the connection string in {setting} is not usable: {problem}")]
    ConnectionString {
        setting: String,
        problem: &'static str,
    },
    #[error("{setting} is not set: give --namespace for Entra ID, or set {setting} to a connection string (local.settings.json.example has the emulator's)")]
    NoConnection { setting: String },
    #[error("cannot reach {target}: is the namespace name right, or the emulator running (`docker compose up -d --wait`)?")]
    Unreachable {
        target: String,
        #[source]
        source: Box<EventHubsError>,
    },
    #[error("not authorized on {target}: check the credential (`az login`, role Azure Event Hubs Data Sender or Receiver) or the connection string's key")]
    Unauthorized {
        target: String,
        #[source]
        source: Box<EventHubsError>,
    },
    #[error("no event hub named {hub:?} in {namespace} (the emulator's hubs are in local/eventhubs-emulator.json)")]
    NotFound {
        namespace: String,
        hub: String,
        #[source]
        source: Box<EventHubsError>,
    },
    #[error("Event Hubs {action} failed on {target}")]
    Other {
        action: &'static str,
        target: String,
        #[source]
        source: Box<EventHubsError>,
    },
    #[error(
        "an event of {bytes} bytes does not fit in an empty batch (the hub's message size limit)"
    )]
    TooLarge { bytes: usize },
}

enum Failure {
    Unauthorized,
    NotFound,
    Unreachable,
    Other,
}

/// Classifies by error kinds along the source chain, never by message text.
fn classify(e: &EventHubsError) -> Failure {
    fn amqp(a: &AmqpError) -> Option<Failure> {
        match a.kind() {
            AmqpErrorKind::ManagementStatusCode(code, _) => Some(match *code {
                StatusCode::Unauthorized | StatusCode::Forbidden => Failure::Unauthorized,
                StatusCode::NotFound => Failure::NotFound,
                _ => Failure::Other,
            }),
            AmqpErrorKind::AmqpDescribedError(d) => match d.condition {
                AmqpErrorCondition::UnauthorizedAccess => Some(Failure::Unauthorized),
                AmqpErrorCondition::NotFound => Some(Failure::NotFound),
                _ => None,
            },
            AmqpErrorKind::AzureCore(c) => core(c),
            _ => None,
        }
    }
    fn core(c: &azure_core::Error) -> Option<Failure> {
        match c.kind() {
            azure_core::error::ErrorKind::Io => Some(Failure::Unreachable),
            azure_core::error::ErrorKind::Credential => Some(Failure::Unauthorized),
            _ => None,
        }
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(f) = err.downcast_ref::<AmqpError>().and_then(amqp) {
            return f;
        }
        if let Some(f) = err.downcast_ref::<azure_core::Error>().and_then(core) {
            return f;
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return Failure::Unreachable;
        }
        current = err.source();
    }
    Failure::Other
}

impl Connection {
    /// Entra ID with the Azure CLI's login (a laptop) or a managed identity (in Azure).
    pub fn entra(namespace: &str, managed_identity: bool) -> Result<Self, EventHubError> {
        let credential: Arc<dyn TokenCredential> = if managed_identity {
            azure_identity::ManagedIdentityCredential::new(None).map_err(|e| {
                EventHubError::Other {
                    action: "credential",
                    target: namespace.to_string(),
                    source: Box::new(e.into()),
                }
            })?
        } else {
            azure_identity::AzureCliCredential::new(None).map_err(|e| EventHubError::Other {
                action: "credential",
                target: namespace.to_string(),
                source: Box::new(e.into()),
            })?
        };
        Ok(Connection::Entra {
            namespace: namespace.to_string(),
            credential,
            endpoint: None,
        })
    }

    /// A connection string as the Functions app settings hold it (`setting` names where it
    /// came from, for messages; the value is never echoed).
    pub fn from_connection_string(setting: &str, value: &str) -> Result<Self, EventHubError> {
        let bad = |problem| EventHubError::ConnectionString {
            setting: setting.to_string(),
            problem,
        };
        let mut parts: Vec<(String, String)> = Vec::new();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or(bad("every part must be Key=Value"))?;
            parts.push((k.trim().to_string(), v.trim().to_string()));
        }
        let get = |key: &str| {
            parts
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let endpoint = get("Endpoint").ok_or(bad("no Endpoint"))?;
        let authority = endpoint
            .strip_prefix("sb://")
            .ok_or(bad("Endpoint must start with sb://"))?
            .trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the Endpoint's port is not a number"))?,
                ),
            ),
            None => (authority.to_string(), None),
        };
        if host.is_empty() {
            return Err(bad("the Endpoint has no host"));
        }
        if get("SharedAccessKeyName").is_none() && get("SharedAccessSignature").is_none() {
            return Err(bad(
                "no SharedAccessKeyName/SharedAccessKey or SharedAccessSignature",
            ));
        }
        let emulator =
            get("UseDevelopmentEmulator").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let dial = if emulator {
            Some(format!("amqp://{host}:{}", port.unwrap_or(AMQP_PORT)))
        } else {
            port.map(|p| format!("amqps://{host}:{p}"))
        };
        // The SDK takes the namespace from the Endpoint; the port only decides where to dial.
        let rewritten = parts
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("UseDevelopmentEmulator"))
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case("Endpoint") {
                    format!("Endpoint=sb://{host}/")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(";");
        Ok(Connection::ConnectionString {
            value: Secret::new(rewritten),
            namespace: host,
            endpoint: dial,
        })
    }

    pub fn namespace(&self) -> &str {
        match self {
            Connection::Entra { namespace, .. }
            | Connection::ConnectionString { namespace, .. } => namespace,
        }
    }

    /// Where the client dials when not the namespace itself over TLS.
    fn dial(&self) -> Option<&str> {
        match self {
            Connection::Entra { endpoint, .. } | Connection::ConnectionString { endpoint, .. } => {
                endpoint.as_deref()
            }
        }
    }

    fn target(&self, hub: &str) -> String {
        match self.dial() {
            Some(url) => format!("{url} (hub {hub})"),
            None => format!("{}/{hub}", self.namespace()),
        }
    }

    fn error(&self, hub: &str, action: &'static str, source: EventHubsError) -> EventHubError {
        let target = self.target(hub);
        let kind = classify(&source);
        let source = Box::new(source);
        match kind {
            Failure::Unreachable => EventHubError::Unreachable { target, source },
            Failure::Unauthorized => EventHubError::Unauthorized { target, source },
            Failure::NotFound => EventHubError::NotFound {
                namespace: self.namespace().to_string(),
                hub: hub.to_string(),
                source,
            },
            Failure::Other => EventHubError::Other {
                action,
                target,
                source,
            },
        }
    }
}

/// Opens a producer or consumer builder on `conn` (the two builders share no trait; the
/// producer takes the hub as `&str`, the consumer as `String`: `$hub_arg`).
macro_rules! open_on {
    ($builder:expr, $conn:expr, $hub_arg:expr, $hub:expr) => {{
        let builder = match $conn.dial() {
            Some(endpoint) => $builder.with_custom_endpoint(endpoint.to_string()),
            None => $builder,
        };
        match $conn {
            Connection::Entra {
                namespace,
                credential,
                ..
            } => builder.open(namespace, $hub_arg, credential.clone()).await,
            Connection::ConnectionString { value, .. } => {
                builder
                    .open_with_connection_string(value.expose(), Some($hub))
                    .await
            }
        }
    }};
}

/// Retries inside the SDK for transient failures (a busy namespace, a dropped link): up to 5
/// tries within 60 s. Authorization and not-found are not transient and fail at once.
pub fn retry_options() -> RetryOptions {
    RetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_delay: azure_core::time::Duration::seconds(10),
        max_retries: 5,
        max_total_elapsed: azure_core::time::Duration::seconds(60),
    }
}

/// Opens a producer and checks the hub exists (the SDK connects lazily: without this, a bad
/// key or hub name would only show on the first send).
pub async fn open_producer(
    conn: &Connection,
    hub: &str,
    retry: RetryOptions,
) -> Result<(ProducerClient, Vec<String>), EventHubError> {
    let builder = ProducerClient::builder()
        .with_application_id("sensor-anomaly".into())
        .with_retry_options(retry);
    let opened = open_on!(builder, conn, hub, hub);
    let producer = opened.map_err(|e| conn.error(hub, "open", e))?;
    let props = producer
        .get_eventhub_properties()
        .await
        .map_err(|e| conn.error(hub, "get hub properties", e))?;
    Ok((producer, props.partition_ids))
}

/// One event to publish: its partition key (the device id) and body.
pub struct OutgoingEvent {
    pub partition_key: String,
    pub body: Vec<u8>,
    /// When to send it in simulated time (ms since the epoch), for real-time pacing.
    pub at_ms: Option<i64>,
}

/// How fast to publish.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacing {
    /// At most this many events per second.
    pub rate: Option<f64>,
    /// Follow the events' own timestamps (one simulated second per wall-clock second).
    pub realtime: bool,
}

/// Counts for the progress line and the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishStats {
    pub events: u64,
    pub batches: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl PublishStats {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for PublishStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events in {} batches, {:.1} MB, {:.0} events/s",
            self.events,
            self.batches,
            self.bytes as f64 / 1e6,
            self.events_per_sec()
        )
    }
}

/// Events are grouped per partition key in chunks of this many before batching, so each
/// device's events go out in as few batches as the hub's size limit allows.
pub const CHUNK_EVENTS: usize = 2000;

/// Publishes `events` to `hub`: per chunk, every partition key's events in batches filled up
/// to the hub's limit (`max_batch_bytes` lowers it), sent in order. `progress` sees the totals
/// after every batch.
pub async fn publish(
    conn: &Connection,
    producer: &ProducerClient,
    hub: &str,
    mut events: tokio::sync::mpsc::Receiver<OutgoingEvent>,
    pacing: Pacing,
    max_batch_bytes: Option<u64>,
    mut progress: impl FnMut(&PublishStats),
) -> Result<PublishStats, EventHubError> {
    let mut out = Batcher {
        conn,
        producer,
        hub,
        max_batch_bytes,
        started: Instant::now(),
        stats: PublishStats::default(),
    };
    let mut first_at: Option<i64> = None;
    let mut chunk: Vec<OutgoingEvent> = Vec::with_capacity(CHUNK_EVENTS);
    loop {
        let next = events.recv().await;
        let done = next.is_none();
        if let Some(event) = next {
            // When this event is due: its own timestamp in real time, and/or the rate.
            let queued = out.stats.events + chunk.len() as u64;
            let mut due = out.started;
            if let (true, Some(at)) = (pacing.realtime, event.at_ms) {
                let first = *first_at.get_or_insert(at);
                due = due.max(out.started + Duration::from_millis((at - first).max(0) as u64));
            }
            if let Some(rate) = pacing.rate {
                due = due.max(out.started + Duration::from_secs_f64(queued as f64 / rate));
            }
            if due > Instant::now() {
                // Whatever is waiting goes out now, on time, before we wait for this one.
                out.send_chunk(&mut chunk, &mut progress).await?;
                tokio::time::sleep_until(due.into()).await;
            }
            chunk.push(event);
        }
        if chunk.len() >= CHUNK_EVENTS || done {
            out.send_chunk(&mut chunk, &mut progress).await?;
        }
        if done {
            out.stats.elapsed = out.started.elapsed();
            return Ok(out.stats);
        }
    }
}

/// Where `publish` sends, and what it has sent so far.
struct Batcher<'a> {
    conn: &'a Connection,
    producer: &'a ProducerClient,
    hub: &'a str,
    max_batch_bytes: Option<u64>,
    started: Instant,
    stats: PublishStats,
}

impl Batcher<'_> {
    /// Sends `chunk` (emptying it; nothing to do when empty): every partition key's events in
    /// as few batches as the size limit allows.
    async fn send_chunk(
        &mut self,
        chunk: &mut Vec<OutgoingEvent>,
        progress: &mut impl FnMut(&PublishStats),
    ) -> Result<(), EventHubError> {
        let (conn, hub) = (self.conn, self.hub);
        // Keys in first-seen order, so a device's events keep their order and devices
        // interleave as they arrived.
        let mut order: Vec<String> = Vec::new();
        let mut by_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for event in chunk.drain(..) {
            let bodies = by_key
                .entry(event.partition_key.clone())
                .or_insert_with(|| {
                    order.push(event.partition_key.clone());
                    Vec::new()
                });
            bodies.push(event.body);
        }
        for key in order {
            let bodies = by_key.remove(&key).unwrap_or_default();
            let mut pending = bodies.into_iter().peekable();
            while pending.peek().is_some() {
                let batch = self
                    .producer
                    .create_batch(Some(EventDataBatchOptions {
                        partition_key: Some(key.clone()),
                        max_size_in_bytes: self.max_batch_bytes,
                        partition_id: None,
                    }))
                    .await
                    .map_err(|e| conn.error(hub, "create batch", e))?;
                let mut bytes = 0u64;
                while let Some(body) = pending.peek() {
                    let size = body.len();
                    let added = batch
                        .try_add_event_data(body.clone(), None)
                        .map_err(|e| conn.error(hub, "add to batch", e))?;
                    if !added {
                        if batch.is_empty() {
                            return Err(EventHubError::TooLarge { bytes: size });
                        }
                        break;
                    }
                    bytes += size as u64;
                    pending.next();
                }
                let events = batch.len() as u64;
                self.producer
                    .send_batch(batch, None)
                    .await
                    .map_err(|e| conn.error(hub, "send", e))?;
                self.stats.events += events;
                self.stats.batches += 1;
                self.stats.bytes += bytes;
                self.stats.elapsed = self.started.elapsed();
                progress(&self.stats);
            }
        }
        Ok(())
    }
}

/// Where the tail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailFrom {
    /// Only events enqueued from now on.
    Latest,
    /// Everything the hub still retains.
    Earliest,
}

/// How long a tail waits for its receivers to close once it has read what it was asked for.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Stops the tail after `count` events or `idle` without one (whichever first), or never.
#[derive(Debug, Clone, Copy, Default)]
pub struct TailLimits {
    pub count: Option<u64>,
    pub idle: Option<Duration>,
}

/// One event read from the tailed hub.
#[derive(Debug, Clone)]
pub struct TailedEvent {
    pub partition_id: String,
    pub sequence_number: Option<i64>,
    pub body: Vec<u8>,
}

/// Reads every partition of `hub` through `consumer_group` and hands each event to `each`,
/// until the limits say stop. Returns how many were read.
pub async fn tail(
    conn: &Connection,
    hub: &str,
    consumer_group: &str,
    from: TailFrom,
    limits: TailLimits,
    mut each: impl FnMut(TailedEvent),
) -> Result<u64, EventHubError> {
    let builder = ConsumerClient::builder()
        .with_application_id("sensor-anomaly".into())
        .with_consumer_group(consumer_group.to_string())
        .with_retry_options(retry_options());
    let opened = open_on!(builder, conn, hub.to_string(), hub);
    let consumer = opened.map_err(|e| conn.error(hub, "open", e))?;
    let props = consumer
        .get_eventhub_properties()
        .await
        .map_err(|e| conn.error(hub, "get hub properties", e))?;
    let location = match from {
        TailFrom::Latest => StartLocation::Latest,
        TailFrom::Earliest => StartLocation::Earliest,
    };
    let mut receivers = Vec::new();
    for pid in &props.partition_ids {
        let receiver = consumer
            .open_receiver_on_partition(
                pid.clone(),
                Some(OpenReceiverOptions {
                    start_position: Some(StartPosition {
                        location: location.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| conn.error(hub, "open receiver", e))?;
        receivers.push((pid.clone(), receiver));
    }
    let streams = receivers.iter().map(|(pid, r)| {
        let pid = pid.clone();
        r.stream_events()
            .map(move |item| (pid.clone(), item))
            .boxed()
    });
    let mut merged = futures::stream::select_all(streams);
    let mut read = 0u64;
    while limits.count.is_none_or(|n| read < n) {
        let next = match limits.idle {
            Some(idle) => match tokio::time::timeout(idle, merged.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => merged.next().await,
        };
        let Some((partition_id, item)) = next else {
            break;
        };
        let event = item.map_err(|e| conn.error(hub, "receive", e))?;
        read += 1;
        each(TailedEvent {
            partition_id,
            sequence_number: event.sequence_number(),
            body: event
                .event_data()
                .body()
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        });
    }
    drop(merged);
    // Closing is a courtesy to the service once the events are read: bounded, so a detach that
    // is never answered (seen against a loaded peer) cannot hang a `--count` run for ever.
    let close = async {
        for (_, receiver) in receivers {
            let _ = receiver.close().await;
        }
        let _ = consumer.close().await;
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
        tracing::debug!(hub, "closing the receivers took over {CLOSE_TIMEOUT:?}; left to the connection's drop");
    }
    Ok(read)
}

/// An enum's name as it appears on the wire (`critical`, `missing_feature`).
fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}

/// One readable line for an alert or dead letter; anything else says what it is not.
pub fn describe(event: &TailedEvent) -> String {
    if let Ok(a) = serde_json::from_slice::<Alert>(&event.body) {
        return format!(
            "{}  {:<12} {:<8} score {:.2} (threshold {:.2})  {}",
            a.window_end,
            a.device_id,
            wire_name(&a.severity).to_uppercase(),
            a.score,
            a.threshold,
            a.explanation
        );
    }
    if let Ok(m) = serde_json::from_slice::<IncidentMessage>(&event.body) {
        return incident_line(&m);
    }
    if let Ok(d) = serde_json::from_slice::<DeadLetter>(&event.body) {
        let field = d.field.map(|f| format!(" [{f}]")).unwrap_or_default();
        return format!(
            "dead letter  {}{field}: {}  (event {} of its batch; windows partition {}, sequence {})",
            wire_name(&d.kind),
            d.reason,
            d.event_index,
            d.lineage.partition_id.as_deref().unwrap_or("?"),
            d.lineage
                .sequence_number
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
        );
    }
    format!(
        "partition {} sequence {}: not an alert, incident message or dead letter ({} bytes)",
        event.partition_id,
        event
            .sequence_number
            .map_or_else(|| "?".to_string(), |n| n.to_string()),
        event.body.len()
    )
}

/// One incident message as a line: what happened, to which device, since when, and why.
pub fn incident_line(m: &IncidentMessage) -> String {
    let i = &m.incident;
    let channels = i
        .channels
        .iter()
        .take(3)
        .map(|c| format!("{} {:.0}%", c.channel, c.share * 100.0))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}  {:<12} INCIDENT {:<9} {:<8} since {}, {} anomalous of {} windows ({channels})  {}",
        m.at,
        i.device_id,
        m.transition.as_str().to_uppercase(),
        i.peak_severity.as_str().to_uppercase(),
        i.opened_at,
        i.anomalous_windows,
        i.windows,
        i.peak_explanation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_message_is_one_line_naming_its_transition_and_channels() {
        let incident = domain::Incident {
            incident_id: "m/pump-1/2026-01-01T00:01:00Z".into(),
            device_id: "pump-1".into(),
            model_version: "m".into(),
            status: domain::IncidentStatus::Open,
            opened_at: "2026-01-01T00:01:00Z".into(),
            detected_at: "2026-01-01T00:02:00Z".into(),
            last_anomalous_at: "2026-01-01T00:02:00Z".into(),
            resolved_at: None,
            resolution: None,
            peak_severity: domain::Severity::High,
            peak_score: 6.0,
            threshold: 1.0,
            peak_window_end: "2026-01-01T00:02:00Z".into(),
            peak_top_channel: "vibration".into(),
            peak_explanation: "vibration mean is 6 sd above normal".into(),
            anomalous_windows: 2,
            windows: 2,
            channels: vec![domain::ChannelShare { channel: "vibration".into(), share: 0.93 }],
            first_lineage: Default::default(),
            last_lineage: Default::default(),
        };
        let message = IncidentMessage::new(domain::Transition::Opened, "2026-01-01T00:02:00Z", &incident);
        let event = TailedEvent {
            partition_id: "0".into(),
            sequence_number: Some(1),
            body: serde_json::to_vec(&message).unwrap(),
        };
        let line = describe(&event);
        assert!(!line.contains('\n'), "{line}");
        for part in ["pump-1", "INCIDENT OPENED", "HIGH", "since 2026-01-01T00:01:00Z", "vibration 93%", "6 sd above"] {
            assert!(line.contains(part), "{part}: {line}");
        }
    }

    #[test]
    fn the_emulator_connection_string_dials_plain_amqp_on_its_host() {
        let c = Connection::from_connection_string(
            "EventHubConnection",
            "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
        )
        .unwrap();
        let Connection::ConnectionString {
            value,
            namespace,
            endpoint,
        } = &c
        else {
            panic!("{c:?}")
        };
        assert_eq!(namespace, "localhost");
        assert_eq!(endpoint.as_deref(), Some("amqp://localhost:5672"));
        assert_eq!(
            value.expose(),
            "Endpoint=sb://localhost/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE"
        );
        assert!(!format!("{c:?}").contains("SAS_KEY_VALUE"));
        let with_port = Connection::from_connection_string(
            "X",
            "Endpoint=sb://127.0.0.1:5673;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        )
        .unwrap();
        let Connection::ConnectionString { endpoint, .. } = with_port else {
            panic!()
        };
        assert_eq!(endpoint.as_deref(), Some("amqp://127.0.0.1:5673"));
        let azure = Connection::from_connection_string(
            "X",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
        )
        .unwrap();
        let Connection::ConnectionString { endpoint, .. } = azure else {
            panic!()
        };
        assert_eq!(endpoint, None, "TLS to the namespace itself");
    }

    #[test]
    fn bad_connection_strings_name_the_setting_and_never_the_key() {
        for (value, problem) in [
            ("garbage", "every part must be Key=Value"),
            (
                "SharedAccessKeyName=k;SharedAccessKey=secret",
                "no Endpoint",
            ),
            (
                "Endpoint=https://x;SharedAccessKeyName=k;SharedAccessKey=secret",
                "Endpoint must start with sb://",
            ),
            (
                "Endpoint=sb://x:port;SharedAccessKeyName=k;SharedAccessKey=secret",
                "the Endpoint's port is not a number",
            ),
            (
                "Endpoint=sb://x",
                "no SharedAccessKeyName/SharedAccessKey or SharedAccessSignature",
            ),
        ] {
            let e = Connection::from_connection_string("EventHubConnection", value).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("EventHubConnection") && text.contains(problem),
                "{text}"
            );
            assert!(!text.contains("secret"), "{text}");
        }
    }
}
