//! A lean HTTP/1.1 load generator: one keep-alive connection per worker (hyper's client
//! connection, no pool), latencies in an HDR histogram. Closed loop finds the maximum
//! throughput at a concurrency; open loop holds a fixed rate and measures latency from
//! each request's *scheduled* time, so a stalled server cannot hide its queue
//! (no coordinated omission).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send: path, `Authorization` value, JSON body (a `GET` when empty), and
/// how many movements it holds.
#[derive(Debug, Clone)]
pub struct Shot {
    pub path: std::borrow::Cow<'static, str>,
    pub authorization: HeaderValue,
    pub body: Bytes,
    pub movements: u64,
    /// Sent with `Accept-Encoding: gzip`, as browsers ask (the answer is not decompressed).
    pub gzip: bool,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub requests: u64,
    /// Movements in requests answered with the expected status.
    pub movements: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
    /// Microseconds.
    pub latency: Histogram<u64>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            requests: 0,
            movements: 0,
            failures: 0,
            first_failure: None,
            elapsed: Duration::ZERO,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds"),
        }
    }

    fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.movements += other.movements;
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure.clone_from(&other.first_failure);
        }
        let _ = self.latency.add(&other.latency);
    }

    pub fn per_second(&self) -> f64 {
        self.movements as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile in milliseconds.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }
}

async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn fire(
    sender: &mut SendRequest<Full<Bytes>>,
    host: &HeaderValue,
    shot: Shot,
    expected: StatusCode,
    outcome: &mut Outcome,
    since: Instant,
) -> anyhow::Result<()> {
    sender.ready().await?;
    let method = if shot.body.is_empty() {
        hyper::Method::GET
    } else {
        hyper::Method::POST
    };
    let request = Request::builder()
        .method(method)
        .uri(shot.path.as_ref())
        .header(hyper::header::HOST, host.clone())
        .header(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .header(hyper::header::AUTHORIZATION, shot.authorization);
    let request = if shot.gzip {
        request.header(
            hyper::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip"),
        )
    } else {
        request
    }
    .body(Full::new(shot.body))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let micros = since.elapsed().as_micros().clamp(1, 60_000_000) as u64;
    let _ = outcome.latency.record(micros);
    outcome.requests += 1;
    if status == expected {
        outcome.movements += shot.movements;
    } else {
        outcome.failures += 1;
        if outcome.first_failure.is_none() {
            outcome.first_failure = Some(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
    }
    Ok(())
}

/// `connections` workers each send back-to-back for `duration`.
pub async fn closed_loop(
    address: SocketAddr,
    connections: usize,
    duration: Duration,
    expected: StatusCode,
    shots: impl Fn(usize, u64) -> Shot + Send + Sync + Clone + 'static,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let shots = shots.clone();
        workers.push(tokio::spawn(async move {
            let mut outcome = Outcome::new();
            let mut sender = connect(address).await?;
            let host = HeaderValue::from_str(&address.to_string())?;
            let mut sequence = 0;
            while Instant::now() < deadline {
                let shot = shots(worker, sequence);
                sequence += 1;
                fire(
                    &mut sender,
                    &host,
                    shot,
                    expected,
                    &mut outcome,
                    Instant::now(),
                )
                .await?;
            }
            anyhow::Ok(outcome)
        }));
    }
    let mut total = Outcome::new();
    for worker in workers {
        total.merge(&worker.await??);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// `connections` workers share `rate` requests per second for `duration`, each request
/// timed from when it was due.
pub async fn open_loop(
    address: SocketAddr,
    connections: usize,
    rate: u64,
    duration: Duration,
    expected: StatusCode,
    shots: impl Fn(usize, u64) -> Shot + Send + Sync + Clone + 'static,
) -> anyhow::Result<Outcome> {
    let started = Instant::now() + Duration::from_millis(50);
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let total_per_worker = (duration.as_secs_f64() / interval.as_secs_f64()) as u64;
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let shots = shots.clone();
        // Stagger the workers across one interval.
        let offset = interval.mul_f64(worker as f64 / connections as f64);
        workers.push(tokio::spawn(async move {
            let mut outcome = Outcome::new();
            let mut sender = connect(address).await?;
            let host = HeaderValue::from_str(&address.to_string())?;
            for sequence in 0..total_per_worker {
                let due = started + offset + interval.mul_f64(sequence as f64);
                tokio::time::sleep_until(due.into()).await;
                let shot = shots(worker, sequence);
                fire(&mut sender, &host, shot, expected, &mut outcome, due).await?;
            }
            anyhow::Ok(outcome)
        }));
    }
    let mut total = Outcome::new();
    for worker in workers {
        total.merge(&worker.await??);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}
