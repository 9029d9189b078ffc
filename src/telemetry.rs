//! The tracing subscriber: logs (pretty for a terminal, JSON in production) and, when an OTLP
//! endpoint is set, OpenTelemetry traces exported over gRPC or HTTP/protobuf.
//!
//! The two outputs filter separately. Logs follow `CONDUIT_LOG`; traces take this crate's spans
//! down to `debug`, where the pipeline stages, I/O resolvers, loader batches, Redis calls and
//! password hashes live. With tracing off no output wants those spans, so they cost nothing.
//!
//! The JSON log line is written here rather than by `tracing-subscriber`'s JSON formatter: that
//! formatter cannot add the OpenTelemetry `trace_id` and `span_id` of the span an event belongs
//! to, which is what joins a log line to its trace.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, OtlpProtocol, TraceSampler, TracingSettings};

/// The instrumentation scope of every span this crate makes.
const SCOPE: &str = "conduit";

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("OpenTelemetry exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// OTLP over gRPC asked of a binary built without it.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs a build with gRPC: cargo build --release --features otlp-grpc (http/protobuf, the default protocol, needs nothing)"
    )]
    GrpcNotBuilt,
}

/// What must outlive the server for traces to reach the collector: shut it down at exit.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered, then stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error = %err, "traces not all exported at shutdown");
        }
    }
}

/// What traces take: this crate's spans down to `debug`, others' from `warn`, and events (as span
/// events) from `warn` only: the info lines every request writes belong in the logs, and each
/// would cost every traced request, sampled or not.
fn traced(metadata: &tracing::Metadata<'_>) -> bool {
    let level = *metadata.level();
    if metadata.is_span() && metadata.target().starts_with("conduit") {
        level <= Level::DEBUG
    } else {
        level <= Level::WARN
    }
}

/// Whether pretty logs are coloured: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>). Logs redirected to a file or a pipe
/// carry no escape sequences.
fn colour_wanted() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// Installs the global subscriber: logs per `log`, and traces when `traces` names an endpoint.
/// An invalid log filter falls back to `info`. A subscriber already installed (several apps in
/// one test process) is kept.
pub fn init(log: &LogSettings, traces: &TracingSettings) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let dispatch = Arc::new(OnceLock::new());
    let logs = match log.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(colour_wanted())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonLines {
                dispatch: Arc::clone(&dispatch),
            })
            .boxed(),
    }
    .with_filter(filter);
    let provider = match traces.endpoint() {
        Some(endpoint) => Some(tracer_provider(endpoint, traces)?),
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SCOPE))
            .with_threads(false)
            // Busy and idle times would read the clock at every poll of every span.
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(traced))
    });
    let installed = tracing_subscriber::registry()
        // Sees no span or event (so it enables none): it only keeps the dispatcher.
        .with(DispatchHandle(dispatch).with_filter(LevelFilter::OFF))
        .with(logs)
        .with(otel)
        .try_init();
    if installed.is_err() {
        return Ok(Telemetry::default());
    }
    if let Some(provider) = &provider {
        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(provider.clone());
        tracing::info!(
            endpoint = traces.endpoint().unwrap_or_default(),
            protocol = ?traces.otlp_protocol,
            "exporting traces"
        );
    }
    Ok(Telemetry { provider })
}

/// The tracer provider exporting to `endpoint`.
fn tracer_provider(
    endpoint: &str,
    settings: &TracingSettings,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = match settings.otlp_protocol {
        #[cfg(feature = "otlp-grpc")]
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?,
        #[cfg(not(feature = "otlp-grpc"))]
        OtlpProtocol::Grpc => return Err(TelemetryError::GrpcNotBuilt),
        OtlpProtocol::HttpProtobuf => {
            let endpoint = endpoint.trim_end_matches('/');
            let endpoint = if endpoint.ends_with("/v1/traces") {
                endpoint.to_owned()
            } else {
                format!("{endpoint}/v1/traces")
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_headers(Default::default())
                .build()?
        }
    };
    let ratio = settings.sampler_arg;
    let sampler = match settings.sampler {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TraceSampler::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TraceSampler::ParentbasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // Batches go out from a task on the server's own runtime, over an async HTTP client (hyper,
    // already linked for serving): no thread of its own, no blocking client.
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// Whether the trace of the current request is sampled (recorded and exported). The spans below
/// a request are made only then: the traces a sampler drops cost nothing past their root span,
/// and with tracing off nothing at all.
pub fn sampled() -> bool {
    opentelemetry::Context::map_current(|context| context.span().span_context().is_sampled())
}

/// The span `make` builds when the current trace is sampled, none otherwise.
pub fn sampled_span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if sampled() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// A span for a stage of the pipeline named `name`, or none when the trace is not sampled.
pub fn stage_span(name: &'static str) -> tracing::Span {
    sampled_span(|| tracing::debug_span!("stage", otel.name = name))
}

/// The trace context the caller sent in `traceparent` and `tracestate`, to continue its trace
/// (an empty context when tracing is off or the headers are absent or invalid).
pub fn caller_context(headers: &axum::http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    })
}

/// Makes `span` continue the caller's trace.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    // Fails only when tracing is off, where there is nothing to continue.
    let _ = span.set_parent(caller_context(headers));
}

/// Hands the installed dispatcher to the JSON formatter, which needs it to read a span's trace
/// context.
struct DispatchHandle(Arc<OnceLock<WeakDispatch>>);

impl<S: Subscriber> Layer<S> for DispatchHandle {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// One JSON object per event: `timestamp`, `level`, `target`, the event's fields (`message`
/// among them), the `span` it happened in (its name and fields), and that span's `trace_id` and
/// `span_id` when tracing is on.
struct JsonLines {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        line.extend(fields.0);
        if let Some(span) = ctx.parent_span() {
            let mut described = serde_json::Map::new();
            described.insert("name".into(), span.name().into());
            if let Some(recorded) = span.extensions().get::<FormattedFields<N>>()
                && let Ok(serde_json::Value::Object(fields)) =
                    serde_json::from_str::<serde_json::Value>(recorded.as_str())
            {
                described.extend(fields);
            }
            line.insert("span".into(), described.into());
            // Read after the span's extensions are released: this takes them again.
            let context = self
                .dispatch
                .get()
                .and_then(WeakDispatch::upgrade)
                .and_then(|dispatch| {
                    tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)
                });
            if let Some(context) = context {
                let otel = context.span();
                let ids = otel.span_context();
                if ids.is_valid() {
                    line.insert("trace_id".into(), ids.trace_id().to_string().into());
                    line.insert("span_id".into(), ids.span_id().to_string().into());
                }
            }
        }
        let text = serde_json::Value::Object(line).to_string();
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// An event's fields as JSON values.
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The cause chain, so an internal error's log line says what went wrong underneath.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.0.insert(field.name().into(), text.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
