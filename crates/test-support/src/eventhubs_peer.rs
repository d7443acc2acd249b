//! An in-process AMQP 1.0 peer that stands in for an Event Hubs namespace in tests (prototype-tested against azure_messaging_eventhubs 0.16).
//!
//! Built on `fe2o3-amqp`'s acceptor API. It speaks plain TCP + SASL ANONYMOUS
//! and implements just enough of Event Hubs for `azure_messaging_eventhubs`:
//!
//! * `$cbs` node: answers `put-token` requests with `status-code` 202 (what
//!   `fe2o3_amqp_cbs::PutTokenResponse` requires), replying on the link whose
//!   target is the request's `reply-to`, correlated by message-id.
//! * `$management` node: `READ` of `com.microsoft:eventhub` and
//!   `com.microsoft:partition`, replying `status-code` 200 with a map body.
//! * Sender links from the SDK (to `<hub>` or `<hub>/Partitions/<id>`): every
//!   transfer is recorded; batch envelopes (message-format 0x80013700) are
//!   unpacked into their inner messages. Events are also appended to the
//!   partition log (partition chosen by the partition key's hash, or the link's
//!   partition), so a producer and a consumer can talk through the peer.
//! * Receiver links from the SDK (source `<hub>/ConsumerGroups/<cg>/Partitions/<id>`):
//!   served from the partition log with `x-opt-sequence-number`, `x-opt-offset`,
//!   `x-opt-enqueued-time` (and `x-opt-partition-key`) annotations, honouring
//!   the `@latest` / `-1` / sequence-number start filter.
//! * Links to a hub other than the configured one are closed with
//!   `amqp:not-found`, as the real service does.

use fe2o3_amqp::{
    acceptor::{
        ConnectionAcceptor, LinkAcceptor, LinkEndpoint, SaslAnonymousMechanism, SessionAcceptor,
    },
    types::{
        definitions::{self, AmqpError, Role},
        messaging::TargetArchetype,
        messaging::{
            annotations::OwnedKey, message::__private::Deserializable, AmqpValue,
            ApplicationProperties, Body, Data, Message, MessageAnnotations, MessageId, Properties,
        },
        primitives::{Array, Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value},
    },
    Receiver, Sender,
};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::{net::TcpListener, sync::mpsc, sync::Notify, task::JoinHandle};

const BATCH_FORMAT: u32 = 0x8001_3700;
const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// One event as the peer received it from a producer.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// 0-based index of the AMQP transfer (one `send_batch` = one transfer).
    pub transfer: usize,
    /// Whether the transfer was a batch envelope.
    pub batched: bool,
    /// Link target address the SDK sent to (e.g. `amqps://ns/hub`).
    pub target: String,
    /// Body bytes (all data sections concatenated).
    pub body: Vec<u8>,
    /// `x-opt-partition-key` message annotation.
    pub partition_key: Option<String>,
    /// Partition the peer stored the event in.
    pub partition_id: String,
}

/// A CBS put-token request as seen by the peer.
#[derive(Debug, Clone)]
pub struct PutToken {
    pub name: String,
    pub token_type: String,
    pub token: String,
}

#[derive(Debug, Clone)]
struct StoredEvent {
    body: Vec<u8>,
    partition_key: Option<String>,
    sequence_number: i64,
    enqueued_ms: i64,
}

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub hub: String,
    pub partition_count: usize,
    /// status-code returned to put-token (202 = accept; 401 = reject).
    pub cbs_status: u16,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            hub: "hub".into(),
            partition_count: 2,
            cbs_status: 202,
        }
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<RecordedEvent>,
    transfers: usize,
    logs: HashMap<String, Vec<StoredEvent>>,
    put_tokens: Vec<PutToken>,
}

struct State {
    cfg: PeerConfig,
    partition_ids: Vec<String>,
    created_at_ms: i64,
    inner: Mutex<Inner>,
    /// Woken whenever any partition log grows.
    appended: Notify,
}

impl State {
    fn append(&self, partition_id: &str, body: Vec<u8>, partition_key: Option<String>) -> i64 {
        let mut inner = self.inner.lock().unwrap();
        let log = inner.logs.entry(partition_id.to_string()).or_default();
        let sequence_number = log.len() as i64;
        log.push(StoredEvent {
            body,
            partition_key,
            sequence_number,
            enqueued_ms: now_ms(),
        });
        drop(inner);
        self.appended.notify_waiters();
        sequence_number
    }

    /// Whether an address names `$cbs`, `$management`, a client node, or this hub (and a known partition).
    fn knows(&self, address: &str) -> bool {
        if address.starts_with('$') || !address.contains("://") {
            return true;
        }
        match entity_path(address) {
            Some((hub, None)) => hub == self.cfg.hub,
            Some((hub, Some(p))) => hub == self.cfg.hub && self.partition_ids.contains(&p),
            None => false,
        }
    }

    fn partition_for_key(&self, key: &str) -> String {
        // Stable (FNV-1a) hash; the real service uses its own, tests must not depend on it.
        let h = domain::fnv1a(key.bytes());
        self.partition_ids[(h % self.partition_ids.len() as u64) as usize].clone()
    }
}

pub struct Peer;

/// Handle to a running peer. Dropping it stops accepting new connections.
pub struct PeerHandle {
    state: Arc<State>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    pub async fn start_with(cfg: PeerConfig) -> (SocketAddr, PeerHandle) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            partition_ids: (0..cfg.partition_count).map(|i| i.to_string()).collect(),
            cfg,
            created_at_ms: now_ms(),
            inner: Mutex::new(Inner::default()),
            appended: Notify::new(),
        });
        let acceptor = Arc::new(
            ConnectionAcceptor::builder()
                .container_id("eventhubs-test-peer")
                .sasl_acceptor(SaslAnonymousMechanism::new())
                .build(),
        );
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(conn) => serve_connection(conn, st).await,
                        Err(e) => eprintln!("peer: connection open failed: {e:?}"),
                    }
                });
            }
        });
        (addr, PeerHandle { state, addr, task })
    }
}

impl PeerHandle {
    /// `amqp://127.0.0.1:<port>` — pass to `with_custom_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("amqp://{}", self.addr)
    }

    /// All events received from producers, in arrival order.
    pub fn received(&self) -> Vec<RecordedEvent> {
        self.state.inner.lock().unwrap().received.clone()
    }

    /// All CBS put-token requests seen.
    pub fn put_tokens(&self) -> Vec<PutToken> {
        self.state.inner.lock().unwrap().put_tokens.clone()
    }

    /// Appends events to a partition's log; returns their sequence numbers.
    pub fn queue_for_partition(&self, partition_id: &str, bodies: Vec<Vec<u8>>) -> Vec<i64> {
        bodies
            .into_iter()
            .map(|b| self.state.append(partition_id, b, None))
            .collect()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

type ReplyRoutes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message<Body<Value>>>>>>;

async fn serve_connection(
    mut conn: fe2o3_amqp::acceptor::ListenerConnectionHandle,
    st: Arc<State>,
) {
    // Reply links are addressed by the client node address (the `reply-to`), per connection.
    let routes: ReplyRoutes = Default::default();
    let session_acceptor = SessionAcceptor::new();
    while let Some(incoming) = conn.next_incoming_session().await {
        let session = match session_acceptor
            .accept_incoming_session(incoming, &mut conn)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("peer: session accept failed: {e:?}");
                continue;
            }
        };
        tokio::spawn(serve_session(session, st.clone(), routes.clone()));
    }
    let _ = conn.close().await;
}

async fn serve_session(
    mut session: fe2o3_amqp::acceptor::ListenerSessionHandle,
    st: Arc<State>,
    routes: ReplyRoutes,
) {
    let link_acceptor = LinkAcceptor::builder()
        .max_message_size(MAX_MESSAGE_SIZE)
        .build();
    while let Some(mut attach) = session.next_incoming_attach().await {
        // Refuse links to unknown entities the way the service does: echo the
        // attach with a null terminus, then detach with `amqp:not-found`.
        let address = match attach.role {
            #[allow(unreachable_patterns)]
            Role::Sender => attach.target.as_ref().and_then(|t| match t.as_ref() {
                TargetArchetype::Target(t) => t.address.clone(),
                _ => None,
            }),
            Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
        }
        .unwrap_or_default();
        if !st.knows(&address) {
            match attach.role {
                Role::Sender => attach.target = None,
                Role::Receiver => attach.source = None,
            }
            match link_acceptor
                .accept_incoming_attach(attach, &mut session)
                .await
            {
                Ok(LinkEndpoint::Receiver(r)) => {
                    let _ = r.close_with_error(not_found(&address)).await;
                }
                Ok(LinkEndpoint::Sender(s)) => {
                    let _ = s.close_with_error(not_found(&address)).await;
                }
                Err(e) => eprintln!("peer: link refuse failed: {e:?}"),
            }
            continue;
        }
        match link_acceptor
            .accept_incoming_attach(attach, &mut session)
            .await
        {
            Ok(LinkEndpoint::Receiver(r)) => {
                tokio::spawn(serve_incoming(r, st.clone(), routes.clone()));
            }
            Ok(LinkEndpoint::Sender(s)) => {
                tokio::spawn(serve_outgoing(s, st.clone(), routes.clone()));
            }
            Err(e) => eprintln!("peer: link accept failed: {e:?}"),
        }
    }
    let _ = session.end().await;
}

/// Link where the SDK sends to us: `$cbs`, `$management`, or an event hub entity.
async fn serve_incoming(mut r: Receiver, st: Arc<State>, routes: ReplyRoutes) {
    let target = r
        .target()
        .as_ref()
        .and_then(|t| t.address.clone())
        .unwrap_or_default();
    let node = if target == "$cbs" || target == "$management" {
        target.clone()
    } else {
        match entity_path(&target) {
            Some((hub, partition)) if hub == st.cfg.hub => {
                return serve_entity_receiver(r, st, target, partition).await
            }
            _ => {
                let _ = r.close_with_error(not_found(&target)).await;
                return;
            }
        }
    };
    loop {
        let delivery = match r.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => return finish_receiver(r, e).await,
        };
        let _ = r.accept(&delivery).await;
        let request = delivery.into_message();
        let reply = if node == "$cbs" {
            handle_put_token(&st, &request)
        } else {
            handle_management(&st, &request)
        };
        let reply_to = request
            .properties
            .as_ref()
            .and_then(|p| p.reply_to.clone())
            .unwrap_or_default();
        let tx = routes.lock().unwrap().get(&reply_to).cloned();
        match tx {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            None => eprintln!("peer: no reply link for {reply_to:?}"),
        }
    }
}

fn app_prop<'a>(m: &'a Message<Body<Value>>, key: &str) -> Option<&'a SimpleValue> {
    m.application_properties
        .as_ref()
        .and_then(|ap| ap.0.get(key))
}

fn app_str(m: &Message<Body<Value>>, key: &str) -> String {
    match app_prop(m, key) {
        Some(SimpleValue::String(s)) => s.clone(),
        Some(SimpleValue::Symbol(s)) => s.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn reply(request: &Message<Body<Value>>, status: u16, body: Value) -> Message<Body<Value>> {
    let correlation_id = request
        .properties
        .as_ref()
        .and_then(|p| p.message_id.clone());
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            correlation_id,
            ..Default::default()
        }),
        application_properties: Some(
            ApplicationProperties::builder()
                .insert("status-code", SimpleValue::Int(status as i32))
                .insert(
                    "status-description",
                    SimpleValue::String(if status < 300 {
                        "OK".into()
                    } else {
                        "error".into()
                    }),
                )
                .build(),
        ),
        body: Body::Value(AmqpValue(body)),
        footer: None,
    }
}

fn handle_put_token(st: &State, request: &Message<Body<Value>>) -> Message<Body<Value>> {
    let token = match &request.body {
        Body::Value(AmqpValue(Value::String(s))) => s.clone(),
        other => format!("{other:?}"),
    };
    st.inner.lock().unwrap().put_tokens.push(PutToken {
        name: app_str(request, "name"),
        token_type: app_str(request, "type"),
        token,
    });
    reply(request, st.cfg.cbs_status, Value::Null)
}

fn handle_management(st: &State, request: &Message<Body<Value>>) -> Message<Body<Value>> {
    let op = app_str(request, "operation");
    let ty = app_str(request, "type");
    let name = app_str(request, "name");
    if op != "READ" || name != st.cfg.hub {
        return reply(request, 404, Value::Null);
    }
    let mut map: OrderedMap<Value, Value> = OrderedMap::new();
    let mut put = |k: &str, v: Value| {
        map.insert(Value::String(k.to_string()), v);
    };
    match ty.as_str() {
        "com.microsoft:eventhub" => {
            put("name", Value::String(st.cfg.hub.clone()));
            put("type", Value::String(ty.clone()));
            put(
                "created_at",
                Value::Timestamp(Timestamp::from_milliseconds(st.created_at_ms)),
            );
            put("partition_count", Value::Int(st.partition_ids.len() as i32));
            put(
                "partition_ids",
                Value::Array(Array(
                    st.partition_ids
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect(),
                )),
            );
        }
        "com.microsoft:partition" => {
            let pid = app_str(request, "partition");
            if !st.partition_ids.contains(&pid) {
                return reply(request, 404, Value::Null);
            }
            let inner = st.inner.lock().unwrap();
            let log = inner.logs.get(&pid).cloned().unwrap_or_default();
            let last = log.last();
            put("name", Value::String(st.cfg.hub.clone()));
            put("type", Value::String(ty.clone()));
            put("partition", Value::String(pid.clone()));
            put("begin_sequence_number", Value::Long(0));
            put(
                "last_enqueued_sequence_number",
                Value::Long(last.map(|e| e.sequence_number).unwrap_or(-1)),
            );
            put("last_enqueued_sequence_number_epoch", Value::Long(0));
            put(
                "last_enqueued_offset",
                Value::String(
                    last.map(|e| e.sequence_number.to_string())
                        .unwrap_or("-1".into()),
                ),
            );
            put(
                "last_enqueued_time_utc",
                Value::Timestamp(Timestamp::from_milliseconds(
                    last.map(|e| e.enqueued_ms).unwrap_or(0),
                )),
            );
            put("is_partition_empty", Value::Bool(log.is_empty()));
        }
        _ => return reply(request, 404, Value::Null),
    }
    reply(request, 200, Value::Map(map))
}

fn not_found(what: &str) -> definitions::Error {
    definitions::Error::new(
        AmqpError::NotFound,
        Some(format!("The messaging entity '{what}' could not be found.")),
        None,
    )
}

/// Parses `amqps://ns/<hub>[/ConsumerGroups/<cg>][/Partitions/<id>]`.
fn entity_path(address: &str) -> Option<(String, Option<String>)> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => address,
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let hub = parts.first()?.to_string();
    let partition = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("Partitions"))
        .and_then(|i| parts.get(i + 1))
        .map(|s| s.to_string());
    Some((hub, partition))
}

fn body_bytes(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.to_vec()).collect(),
        Body::Value(AmqpValue(Value::Binary(b))) => b.to_vec(),
        Body::Value(AmqpValue(Value::String(s))) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}

fn annotation_str(m: &Message<Body<Value>>, key: &str) -> Option<String> {
    m.message_annotations.as_ref().and_then(|a| {
        a.0.iter().find_map(|(k, v)| match (k, v) {
            (OwnedKey::Symbol(s), Value::String(v)) if s.as_str() == key => Some(v.clone()),
            _ => None,
        })
    })
}

/// SDK producer link: record every event, append to the partition log.
async fn serve_entity_receiver(
    mut r: Receiver,
    st: Arc<State>,
    target: String,
    link_partition: Option<String>,
) {
    loop {
        let delivery = match r.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => return finish_receiver(r, e).await,
        };
        let batched = delivery.message_format().as_ref().copied() == Some(BATCH_FORMAT);
        let outer = delivery.message();
        let messages: Vec<Message<Body<Value>>> = if batched {
            match &outer.body {
                Body::Data(sections) => sections
                    .iter()
                    .filter_map(|d| {
                        serde_amqp::from_slice::<Deserializable<Message<Body<Value>>>>(&d.0)
                            .map(|m| m.0)
                            .map_err(|e| eprintln!("peer: bad inner message: {e}"))
                            .ok()
                    })
                    .collect(),
                _ => Vec::new(),
            }
        } else {
            vec![outer.clone()]
        };
        let transfer = {
            let mut inner = st.inner.lock().unwrap();
            inner.transfers += 1;
            inner.transfers - 1
        };
        for m in messages {
            let body = body_bytes(&m.body);
            let partition_key = annotation_str(&m, "x-opt-partition-key");
            let partition_id = link_partition
                .clone()
                .unwrap_or_else(|| match &partition_key {
                    Some(k) => st.partition_for_key(k),
                    None => st.partition_ids[0].clone(),
                });
            st.append(&partition_id, body.clone(), partition_key.clone());
            st.inner.lock().unwrap().received.push(RecordedEvent {
                transfer,
                batched,
                target: target.clone(),
                body,
                partition_key,
                partition_id,
            });
        }
        settle_after_a_moment(&r, &delivery).await;
    }
}

/// Accepts a delivery as a remote service would: not within microseconds. The SDK's sender
/// (fe2o3-amqp) can miss a disposition that arrives before it has recorded the delivery as
/// unsettled, and then waits for it forever; on loopback that happened in about one send in
/// five with a connection string. A network round trip never comes that fast.
async fn settle_after_a_moment(
    r: &Receiver,
    delivery: &fe2o3_amqp::link::delivery::Delivery<Body<Value>>,
) {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let _ = r.accept(delivery).await;
}

/// Link where the SDK receives from us: a reply link (`$cbs`/`$management`
/// client node) or a partition receiver.
async fn serve_outgoing(mut s: Sender, st: Arc<State>, routes: ReplyRoutes) {
    let source = s
        .source()
        .as_ref()
        .and_then(|src| src.address.clone())
        .unwrap_or_default();
    if source == "$cbs" || source == "$management" {
        let client_node = s
            .target()
            .as_ref()
            .and_then(|t| t.address.clone())
            .unwrap_or_default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        routes.lock().unwrap().insert(client_node, tx);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => if s.send(msg).await.is_err() { break },
                    None => break,
                },
                e = s.on_detach() => return finish_sender(s, e).await,
            }
        }
        let _ = s.close().await;
        return;
    }
    let (hub, partition) = match entity_path(&source) {
        Some((hub, Some(p))) if hub == st.cfg.hub && st.partition_ids.contains(&p) => (hub, p),
        _ => {
            let _ = s.close_with_error(not_found(&source)).await;
            return;
        }
    };
    let _ = hub;
    let filter = format!(
        "{:?}",
        s.source().as_ref().and_then(|src| src.filter.clone())
    );
    let log_len = |st: &State| {
        st.inner
            .lock()
            .unwrap()
            .logs
            .get(&partition)
            .map(|l| l.len())
            .unwrap_or(0)
    };
    // Start position from the selector filter the SDK builds (see StartPosition::start_expression).
    let mut next = if filter.contains("@latest") {
        log_len(&st)
    } else if filter.contains("x-opt-offset > '-1'") || filter.contains("x-opt-offset >= '-1'") {
        0
    } else {
        parse_seq_filter(&filter).unwrap_or_default()
    };
    loop {
        let notified = st.appended.notified();
        let pending: Vec<StoredEvent> = {
            let inner = st.inner.lock().unwrap();
            inner
                .logs
                .get(&partition)
                .map(|l| l.iter().skip(next).cloned().collect())
                .unwrap_or_default()
        };
        if pending.is_empty() {
            tokio::select! {
                _ = notified => continue,
                e = s.on_detach() => return finish_sender(s, e).await,
            }
        }
        for ev in pending {
            let mut ann = MessageAnnotations::builder()
                .insert(
                    OwnedKey::Symbol(Symbol::from("x-opt-sequence-number")),
                    Value::Long(ev.sequence_number),
                )
                .insert(
                    OwnedKey::Symbol(Symbol::from("x-opt-offset")),
                    Value::String(ev.sequence_number.to_string()),
                )
                .insert(
                    OwnedKey::Symbol(Symbol::from("x-opt-enqueued-time")),
                    Value::Timestamp(Timestamp::from_milliseconds(ev.enqueued_ms)),
                )
                .build();
            if let Some(k) = ev.partition_key {
                ann.0.insert(
                    OwnedKey::Symbol(Symbol::from("x-opt-partition-key")),
                    Value::String(k),
                );
            }
            let msg = Message {
                header: None,
                delivery_annotations: None,
                message_annotations: Some(ann),
                properties: Some(Properties {
                    message_id: Some(MessageId::String(format!(
                        "{partition}-{}",
                        ev.sequence_number
                    ))),
                    ..Default::default()
                }),
                application_properties: None,
                body: Data(Binary::from(ev.body)),
                footer: None,
            };
            if s.send(msg).await.is_err() {
                let _ = s.close().await;
                return;
            }
            next += 1;
        }
    }
}

fn parse_seq_filter(filter: &str) -> Option<usize> {
    let idx = filter.find("x-opt-sequence-number")?;
    let rest = &filter[idx..];
    let inclusive = rest.contains(">=");
    let q1 = rest.find('\'')?;
    let q2 = rest[q1 + 1..].find('\'')? + q1 + 1;
    let n: i64 = rest[q1 + 1..q2].parse().ok()?;
    Some(if inclusive {
        n.max(0) as usize
    } else {
        (n + 1).max(0) as usize
    })
}

/// The SDK *detaches* (closed=false) links on client close; answering with a
/// close would make fe2o3 re-attach first ("attach with a name that cannot be
/// found locally" on the client). Mirror what the remote did.
async fn finish_receiver(r: Receiver, e: fe2o3_amqp::link::RecvError) {
    use fe2o3_amqp::link::{LinkStateError, RecvError};
    match e {
        RecvError::LinkStateError(
            LinkStateError::RemoteDetached | LinkStateError::RemoteDetachedWithError(_),
        ) => {
            let _ = r.detach().await;
        }
        _ => {
            let _ = r.close().await;
        }
    }
}

async fn finish_sender(s: Sender, e: fe2o3_amqp::link::DetachError) {
    use fe2o3_amqp::link::DetachError;
    match e {
        DetachError::DetachedByRemote | DetachError::RemoteDetachedWithError(_) => {
            let _ = s.detach().await;
        }
        _ => {
            let _ = s.close().await;
        }
    }
}
