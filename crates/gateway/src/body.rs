//! Reading a request body within the configured size and time limits, for every route that takes one.
//!
//! A slow or oversized body is refused with its own status (408, 413) and audited like any other refusal.
//!
//! A request refused before its body was read (no key, a bad key, a rate limit) must still get a proper answer
//! and leave the connection usable: [`settle_unread`] takes back a body the handler dropped unread and, on
//! HTTP/1.1, reads and discards the rest (within the size and time limits) so the next request on the
//! keep-alive connection is served; on HTTP/2 it keeps the body open until the answer is sent, so the stream
//! ends with the answer and a `NO_ERROR` reset (RFC 9113 §8.1), not a `CANCEL` that clients report as a
//! stream error.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Version};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use crate::state::Shared;

use crate::audit_trail::AuditCtx;
use crate::http_error::ApiError;
use crate::state::AppState;

/// Read the body within the configured size and time limits.
pub(crate) async fn read_body(
    state: &AppState,
    body: Body,
    ctx: &AuditCtx,
) -> Result<Bytes, ApiError> {
    let limit = state.config.server.max_body_bytes;

    let timeout = Duration::from_millis(state.config.server.body_timeout_ms);
    let collect = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "request body not received within {} ms",
                timeout.as_millis()
            ),
        )
        .audited(ctx.clone())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(state, ctx)),
        Ok(Err(_)) => Err(
            ApiError::bad_request("malformed", "request body could not be read")
                .audited(ctx.clone()),
        ),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// 413 naming the limit.
pub(crate) fn too_large(state: &AppState, ctx: &AuditCtx) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "request body is larger than {} bytes",
            state.config.server.max_body_bytes
        ),
    )
    .audited(ctx.clone())
}

/// Around every route: settle a request body the handler left unread (see the module docs).
pub(crate) async fn settle_unread(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let version = request.version();
    let (parts, body) = request.into_parts();
    let (body, mut unread) = returnable(body);
    let response = next.run(Request::from_parts(parts, body)).await;
    let Ok(rest) = unread.try_recv() else {
        return response;
    };
    if version == Version::HTTP_2 {
        return response.map(|answer| {
            Body::new(Holding {
                answer,
                _held: rest,
            })
        });
    }
    let limit = state.config.server.max_body_bytes;
    let within = Duration::from_millis(state.config.server.body_timeout_ms);
    // If the rest is too large or too slow, hyper closes the connection after the answer, as it should.
    let _ = drain(rest, limit, within).await;
    response
}

/// `body`, and a receiver that gets it back if it is dropped before its end.
fn returnable(body: Body) -> (Body, oneshot::Receiver<Body>) {
    let (tx, rx) = oneshot::channel();
    let wrapped = Returned {
        inner: Some(body),
        back: Some(tx),
    };
    (Body::new(wrapped), rx)
}

/// Read and discard what is left of `body`, up to `limit` bytes and `within`; whether it reached its end.
async fn drain(mut body: Body, limit: usize, within: Duration) -> bool {
    let read = async {
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}

/// A request body that goes back to [`settle_unread`] when dropped before its end.
struct Returned {
    inner: Option<Body>,
    back: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for Returned {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.get_mut().inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        if let (Some(body), Some(back)) = (self.inner.take(), self.back.take()) {
            if !http_body::Body::is_end_stream(&body) {
                let _ = back.send(body);
            }
        }
    }
}

/// An answer that keeps the request's unread body open until the answer has been sent.
struct Holding {
    answer: Body,
    _held: Body,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().answer).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.answer.size_hint()
    }
}
