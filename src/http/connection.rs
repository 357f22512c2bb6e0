//! Keeping a kept-alive connection usable after a refusal. A request refused before its body
//! was read (415, 401, 404, a 413 declared by `Content-Length`, any early 4xx) leaves the
//! rest of that body on the connection; the server then cannot read the next request from
//! it and closes it. Saying so with `Connection: close` lets a pooled client open a new
//! connection instead of failing its next request with a broken pipe.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;

/// Middleware: answers with `Connection: close` whenever the request had a body that was not
/// read to its end.
pub(crate) async fn close_unless_body_read(request: Request, next: Next) -> Response {
    if !has_body(&request) {
        return next.run(request).await;
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let tracked = TrackedBody {
        inner: body.into_data_stream(),
        read_to_end: read_to_end.clone(),
    };
    let request = Request::from_parts(parts, Body::from_stream(tracked));
    let mut response = next.run(request).await;
    if !read_to_end.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request carries a body when it says so (a non-zero `Content-Length`, a
/// `Transfer-Encoding`) or when its body is not known to be empty.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    match declared {
        Some(length) => length > 0,
        None => !request.body().is_end_stream(),
    }
}

/// The request body as a stream that records when it has been read to its end.
struct TrackedBody {
    inner: axum::body::BodyDataStream,
    read_to_end: Arc<AtomicBool>,
}

impl Stream for TrackedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = polled {
            self.read_to_end.store(true, Ordering::Release);
        }
        polled
    }
}
