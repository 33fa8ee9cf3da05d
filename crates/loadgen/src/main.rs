//! # custos-loadgen — closed-loop HTTP load for the benchmarks
//!
//! Opens `--concurrency` keep-alive HTTP/1.1 connections to a Custos server and, on each,
//! sends the next request as soon as the previous answer is read (like `wrk -c N`), for
//! `--warmup-secs` unmeasured and then `--duration-secs` measured seconds. It then prints
//! one `key=value` line on standard output (requests/s, latency percentiles, errors) and
//! a readable summary on standard error.
//!
//! Modes:
//! - `healthz`: `GET /healthz`; a 200 is a success. The in-run baseline: the cheapest
//!   handler of the same binary, through the same middleware.
//! - `consent`: each client first records one decision without an identifier and keeps
//!   the `anonymous_token` of the 201 answer; then every request is
//!   `POST /api/v1/consents` with that token in `x-custos-anonymous`, i.e. a consent
//!   decision written to the ledger and answered with a signed receipt. Only a 201 is a
//!   success.
//! - `search`: anonymous `GET /api/v1/items?…` (no token, no cookie), each client cycling
//!   through [`SEARCH_QUERIES`] (Chinese and English words, a typo, filters, browsing
//!   newest first). Only a 200 is a success.
//!
//! Safety: the target must resolve to loopback addresses only, and every run is bounded
//! in time (`--duration-secs`, at most 600) and in count (`--max-requests`).
//!
//! Run: `cargo run --release -p custos-loadgen -- --url http://127.0.0.1:8080 --mode consent`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const CONSENT_BODY: &str =
    r#"{"decisions":[{"purpose":"personalized_ads","decision":"given"}],"method":"dialog"}"#;
const ANON_HEADER: &str = "x-custos-anonymous";

/// Search requests of `--mode search`, in the order each client cycles through them.
const SEARCH_QUERIES: &[&str] = &[
    "/api/v1/items?q=%E8%BF%9E%E8%A1%A3%E8%A3%99",
    "/api/v1/items?q=dress",
    "/api/v1/items?q=%E8%93%9D%E7%89%99%E8%80%B3%E6%9C%BA",
    "/api/v1/items?q=headphnes",
    "/api/v1/items?q=red&category=clothing",
    "/api/v1/items?sort=newest",
    "/api/v1/items?category=home&price_max=200",
    "/api/v1/items?q=%E5%A4%8F%E5%AD%A3&tags=summer",
    "/api/v1/items?q=vintage%20lamp",
    "/api/v1/items?q=%E8%8C%B6%E6%9D%AF&limit=10",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `GET /healthz` (baseline).
    Healthz,
    /// `POST /api/v1/consents` with an anonymous token (consent write + signed receipt).
    Consent,
    /// Anonymous `GET /api/v1/items` searches from [`SEARCH_QUERIES`].
    Search,
}

#[derive(Debug, Parser)]
#[command(
    name = "custos-loadgen",
    about = "Closed-loop HTTP load against a Custos server on loopback"
)]
struct Args {
    /// Base URL of the server (http only, loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured seconds before the measured window.
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    #[arg(long, value_enum, default_value = "healthz")]
    mode: Mode,
    /// Runtime worker threads of the load generator (1: one thread, like `wrk -t1`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many requests in all, whatever the time.
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
    /// Process id of the server (Linux): its CPU time over the measured window is
    /// reported, in total and per successful request.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// User plus system CPU time of a process so far, in seconds (`/proc/PID/stat`, in
/// clock ticks of 1/100 s, the USER_HZ of Linux on every common architecture).
fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What one client saw in the measured window.
#[derive(Default)]
struct ClientStats {
    /// Latency of each successful request, in microseconds.
    latencies_us: Vec<u32>,
    errors: u64,
    /// Status codes of unsuccessful answers, with one body each for the report.
    bad_statuses: Vec<(u16, String)>,
    io_errors: u64,
    first_io_error: Option<String>,
}

struct Target {
    authority: String,
    addr: std::net::SocketAddr,
}

/// Parses `http://HOST:PORT[/]` and refuses anything that is not loopback.
async fn target(url: &str) -> anyhow::Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--url must be a base URL such as http://127.0.0.1:8080 (no path)");
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<_> = tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("cannot resolve {with_port}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!("refusing to send load to {authority}: only loopback targets are allowed");
    }
    Ok(Target {
        authority: authority.to_owned(),
        addr: addrs[0],
    })
}

async fn connect(t: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(t.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(
    mode: Mode,
    authority: &str,
    token: Option<&str>,
    n: usize,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let b = Request::builder().header(hyper::header::HOST, authority);
    Ok(match mode {
        Mode::Healthz => b
            .method(Method::GET)
            .uri("/healthz")
            .body(Full::new(Bytes::new()))?,
        Mode::Consent => {
            let mut b = b
                .method(Method::POST)
                .uri("/api/v1/consents")
                .header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(t) = token {
                b = b.header(ANON_HEADER, t);
            }
            b.body(Full::new(Bytes::from_static(CONSENT_BODY.as_bytes())))?
        }
        Mode::Search => b
            .method(Method::GET)
            .uri(SEARCH_QUERIES[n % SEARCH_QUERIES.len()])
            .body(Full::new(Bytes::new()))?,
    })
}

/// Sends one request and reads the whole answer.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Records one decision without an identifier and returns the issued anonymous token.
async fn obtain_token(t: &Target) -> anyhow::Result<String> {
    let mut sender = connect(t).await?;
    let (status, body) = send(&mut sender, request(Mode::Consent, &t.authority, None, 0)?).await?;
    if status != StatusCode::CREATED {
        bail!(
            "first consent request answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("receipt JSON")?;
    v.get("anonymous_token")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .context("the 201 answer carries no anonymous_token")
}

struct Window {
    start: Instant,
    end: Instant,
}

async fn client(
    t: Arc<Target>,
    mode: Mode,
    token: Option<String>,
    window: Arc<Window>,
    issued: Arc<AtomicU64>,
    max_requests: u64,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let expected = match mode {
        Mode::Healthz | Mode::Search => StatusCode::OK,
        Mode::Consent => StatusCode::CREATED,
    };
    let mut n = 0usize;
    let mut stats = ClientStats::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let now = Instant::now();
        if now >= window.end || stop.load(Ordering::Relaxed) {
            break;
        }
        if issued.fetch_add(1, Ordering::Relaxed) >= max_requests {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(&t).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    note_io_error(&mut stats, &window, &e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        n += 1;
        let req = match request(mode, &t.authority, token.as_deref(), n) {
            Ok(r) => r,
            Err(e) => {
                note_io_error(&mut stats, &window, &e);
                break;
            }
        };
        let began = Instant::now();
        let result = send(s, req).await;
        let done = Instant::now();
        let measured = began >= window.start && done <= window.end;
        match result {
            Ok((status, _)) if status == expected => {
                if measured {
                    let us = done.duration_since(began).as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok((status, body)) => {
                if measured {
                    stats.errors += 1;
                    if stats.bad_statuses.len() < 3 {
                        let text = String::from_utf8_lossy(&body);
                        stats
                            .bad_statuses
                            .push((status.as_u16(), text.chars().take(200).collect()));
                    }
                }
            }
            Err(e) => {
                sender = None;
                if measured {
                    note_io_error(&mut stats, &window, &e);
                }
            }
        }
    }
    stats
}

fn note_io_error(stats: &mut ClientStats, window: &Window, e: &anyhow::Error) {
    let now = Instant::now();
    if now >= window.start && now <= window.end {
        stats.errors += 1;
        stats.io_errors += 1;
    }
    if stats.first_io_error.is_none() {
        stats.first_io_error = Some(format!("{e:#}"));
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > 1024 {
        bail!("--concurrency must be between 1 and 1024");
    }
    if args.duration_secs == 0 || args.duration_secs + args.warmup_secs > 600 {
        bail!("--duration-secs must be at least 1, and warm-up plus duration at most 600");
    }
    let t = Arc::new(target(&args.url).await?);

    let mut tokens = Vec::with_capacity(args.concurrency);
    if args.mode == Mode::Consent {
        for _ in 0..args.concurrency {
            tokens.push(Some(obtain_token(&t).await?));
        }
    } else {
        tokens.resize(args.concurrency, None);
    }

    let start = Instant::now() + Duration::from_secs(args.warmup_secs);
    let window = Arc::new(Window {
        start,
        end: start + Duration::from_secs(args.duration_secs),
    });
    let sampler = args.server_pid.map(|pid| {
        let w = window.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(w.start.into()).await;
            let a = process_cpu_secs(pid);
            tokio::time::sleep_until(w.end.into()).await;
            let b = process_cpu_secs(pid);
            a.zip(b).map(|(a, b)| b - a)
        })
    });
    let issued = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            tokio::spawn(client(
                t.clone(),
                args.mode,
                token,
                window.clone(),
                issued.clone(),
                args.max_requests,
                stop.clone(),
            ))
        })
        .collect();
    let mut all = ClientStats::default();
    for h in handles {
        let s = h.await.context("client task")?;
        all.latencies_us.extend(s.latencies_us);
        all.errors += s.errors;
        all.io_errors += s.io_errors;
        all.bad_statuses.extend(s.bad_statuses);
        if all.first_io_error.is_none() {
            all.first_io_error = s.first_io_error;
        }
    }
    // A run stopped by --max-requests measured a shorter window.
    let measured = Instant::now()
        .min(window.end)
        .saturating_duration_since(window.start)
        .as_secs_f64();
    all.latencies_us.sort_unstable();
    let ok = all.latencies_us.len() as u64;
    let rps = if measured > 0.0 {
        ok as f64 / measured
    } else {
        0.0
    };
    let mode = match args.mode {
        Mode::Healthz => "healthz",
        Mode::Consent => "consent",
        Mode::Search => "search",
    };
    let (p50, p90, p99) = (
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 90.0),
        percentile(&all.latencies_us, 99.0),
    );
    let max = all
        .latencies_us
        .last()
        .map_or(f64::NAN, |&v| v as f64 / 1000.0);
    let server_cpu = match sampler {
        Some(h) => h.await.context("cpu sampler")?,
        None => None,
    };
    eprintln!(
        "{mode}: {ok} successful requests in {measured:.2} s with {} clients = {rps:.0} requests/s; \
         latency p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms; {} errors",
        args.concurrency, all.errors
    );
    if let Some(cpu) = server_cpu {
        eprintln!(
            "  server CPU {cpu:.2} s in the window = {:.2} cores busy, {:.0} µs per successful request",
            cpu / measured,
            cpu * 1e6 / ok.max(1) as f64
        );
    }
    for (status, body) in all.bad_statuses.iter().take(3) {
        eprintln!("  unexpected status {status}: {body}");
    }
    if let Some(e) = &all.first_io_error {
        eprintln!(
            "  first connection error ({} in window): {e}",
            all.io_errors
        );
    }
    let cpu_fields = server_cpu.map_or(String::new(), |cpu| {
        format!(
            " server_cpu_s={cpu:.3} server_cpu_us_per_req={:.1}",
            cpu * 1e6 / ok.max(1) as f64
        )
    });
    println!(
        "mode={mode} concurrency={} duration_s={measured:.3} ok={ok} errors={} rps={rps:.1} \
         p50_ms={p50:.3} p90_ms={p90:.3} p99_ms={p99:.3} max_ms={max:.3}{cpu_fields}",
        args.concurrency, all.errors
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}
