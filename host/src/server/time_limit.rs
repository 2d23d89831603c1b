//! Step 7 of the edge: a POST still running after the request timeout is answered 503
//! (streams opened with GET are long-lived by design and are not cut). A tower layer of
//! its own: an axum `from_fn` middleware would copy the whole stack below it and box
//! it, per request.

use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tower::{Layer, Service};

/// Puts [`TimeLimit`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub struct TimeLimitLayer {
    limit: Duration,
}

impl TimeLimitLayer {
    /// POSTs answered 503 once they have run for `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeLimitLayer {
    type Service = TimeLimit<S>;

    fn layer(&self, inner: S) -> TimeLimit<S> {
        TimeLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// A service whose POSTs are answered 503 once they have run for its limit.
#[derive(Debug, Clone)]
pub struct TimeLimit<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<Request<B>> for TimeLimit<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Limited<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.method() != Method::POST {
            return Either::Left(self.inner.call(request));
        }
        Either::Right(Limited {
            answer: tokio::time::timeout(self.limit, self.inner.call(request)),
            limit: self.limit,
        })
    }
}

pin_project_lite::pin_project! {
    /// A POST's answer, or 503 once its time is up.
    pub struct Limited<F> {
        #[pin]
        answer: tokio::time::Timeout<F>,
        limit: Duration,
    }
}

impl<F> Future for Limited<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.answer.poll(cx)) {
            Ok(answer) => answer,
            Err(_) => Ok(timed_out(*this.limit)),
        })
    }
}

/// The answer to a POST past `limit`.
fn timed_out(limit: Duration) -> Response {
    tracing::warn!(timeout = ?limit, "request timed out");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the request took longer than {}\n",
            humantime::format_duration(limit)
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// A service answering 200 after `delay`.
    fn slow(
        delay: Duration,
    ) -> TimeLimit<impl Service<Request<Body>, Response = Response, Error = Infallible> + Clone>
    {
        TimeLimitLayer::new(Duration::from_secs(1)).layer(tower::service_fn(
            move |_: Request<Body>| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(StatusCode::OK.into_response())
            },
        ))
    }

    /// The answer to a `method` request whose service takes `delay`.
    async fn answer(delay: Duration, method: Method) -> Response {
        let request = Request::builder()
            .method(method)
            .uri("/mcp")
            .body(Body::empty())
            .unwrap();
        slow(delay).oneshot(request).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_within_its_time_is_answered() {
        let answer = answer(Duration::from_millis(900), Method::POST).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_past_its_time_is_answered_503_naming_the_limit() {
        let answer = answer(Duration::from_secs(2), Method::POST).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"the request took longer than 1s\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_get_stream_is_not_cut() {
        let answer = answer(Duration::from_secs(60), Method::GET).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
}
