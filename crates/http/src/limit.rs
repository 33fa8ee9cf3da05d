//! Per-client rate limit on state-changing requests, so one client cannot flood the
//! ledger or mint anonymous identifiers without bound. Reads are not limited here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{ApiError, AppState};

/// Writes per second per client address by default; bursts of twice that are allowed.
pub const DEFAULT_WRITES_PER_SECOND: u32 = 20;

#[derive(Debug, Clone, Default)]
pub struct WriteLimiter(Option<Arc<Inner>>);

#[derive(Debug)]
struct Inner {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl WriteLimiter {
    /// `per_second = 0` turns the limit off.
    pub fn per_second(per_second: u32) -> WriteLimiter {
        let Some(rate) = NonZeroU32::new(per_second) else {
            return WriteLimiter(None);
        };
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        WriteLimiter(Some(Arc::new(Inner {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })))
    }

    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(inner) = &self.0 else { return Ok(()) };
        // Forget idle clients now and then so the table does not grow without bound.
        if inner.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            inner.limiter.retain_recent();
        }
        inner.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs().max(1)
        })
    }
}

pub async fn limit_writes(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match s.limiter.check(ip) {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}
