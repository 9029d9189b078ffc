//! A response body that tells its connection when it is done (the connection is idle again), and
//! on HTTP/2 since when it waits for the client to take a frame (the send deadline of one
//! stream: the socket's own deadline cannot see a stream whose window the client keeps shut).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Response;
use axum::http::response::Parts;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::{ConnectionState, now_ms};

/// A response body tracked by its connection.
pub struct TrackedBody {
    inner: Body,
    state: Arc<ConnectionState>,
    /// HTTP/2: when the last frame was handed over and not yet taken (0: none waiting).
    waiting: Option<Arc<AtomicU64>>,
}

impl TrackedBody {
    /// The response of `parts`, its body tracked by `state`'s connection.
    pub fn new(
        (parts, inner): (Parts, Body),
        state: Arc<ConnectionState>,
        http2: bool,
    ) -> Response<Self> {
        let waiting = http2.then(|| {
            let waiting = Arc::new(AtomicU64::new(0));
            state.watch_body(&waiting);
            waiting
        });
        Response::from_parts(
            parts,
            Self {
                inner,
                state,
                waiting,
            },
        )
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(waiting) = &this.waiting {
            // Asked again: the previous frame was taken.
            let handed = matches!(polled, Poll::Ready(Some(Ok(_))));
            waiting.store(if handed { now_ms().max(1) } else { 0 }, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.state.request_finished();
    }
}
