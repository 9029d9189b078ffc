//! An in-process OTLP trace receiver: gRPC (`TraceService/Export`) and HTTP/protobuf
//! (`POST /v1/traces`) on one port, keeping every span it is sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One received span, its ids in lowercase hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// String, integer and boolean attributes, as text.
    pub attributes: HashMap<String, String>,
    /// The `service.name` of the resource that sent it.
    pub service: String,
}

/// The receiver, serving until the test ends.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1, port chosen by the system.
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let grpc = TraceServiceServer::new(Sink(Arc::clone(&spans)));
        let http_spans = Arc::clone(&spans);
        let app = Router::new()
            .route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let spans = Arc::clone(&http_spans);
                    async move {
                        let request =
                            ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
                        keep(&spans, request);
                        (
                            [(header::CONTENT_TYPE, "application/x-protobuf")],
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )
                    }
                }),
            )
            .route_service(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                grpc,
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, spans }
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .expect("spans")
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits (up to 20 s) until the trace `trace_id` holds a span satisfying `done`, and returns
    /// the trace.
    pub async fn wait_for(
        &self,
        trace_id: &str,
        done: impl Fn(&ReceivedSpan) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.trace(trace_id);
            if spans.iter().any(&done) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Sink(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(number)) => number.to_string(),
        Some(AnyValue::BoolValue(flag)) => flag.to_string(),
        Some(AnyValue::DoubleValue(number)) => number.to_string(),
        _ => String::new(),
    }
}

fn keep(spans: &Mutex<Vec<ReceivedSpan>>, request: ExportTraceServiceRequest) {
    let mut kept = spans.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .map(|attribute| text(attribute.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|attribute| {
                            (
                                attribute.key.clone(),
                                text(attribute.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                    service: service.clone(),
                });
            }
        }
    }
}
