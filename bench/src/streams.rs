//! What open event streams (`GET /v1/stores/{id}/events`, the dashboards' live stock) cost
//! a query-api: `count` streams opened over loopback — as many per store's manager, spread
//! over the stores — each read until its `ready` event, then query-api's resident memory
//! compared with before.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens `count` streams of `stores` (store and its manager's `Authorization`), round
/// robin; answers the note for the report, the streams held until it is written.
pub async fn measure(
    address: SocketAddr,
    pid: u32,
    stores: &[(i64, HeaderValue)],
    count: usize,
) -> anyhow::Result<String> {
    let before = crate::ingest::memory_mib(pid, "VmRSS:").unwrap_or(f64::NAN);
    let started = Instant::now();
    let mut open = Vec::with_capacity(count);
    for index in 0..count {
        let (store, token) = &stores[index % stores.len()];
        open.push(tokio::spawn(stream(address, *store, token.clone())));
    }
    let mut streams = Vec::with_capacity(count);
    for opened in open {
        streams.push(opened.await??);
    }
    let ready = started.elapsed();
    // Let the allocator and the streams' first reads settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = crate::ingest::memory_mib(pid, "VmRSS:").unwrap_or(f64::NAN);
    drop(streams);
    Ok(format!(
        "{count} open event streams: query-api resident memory {before:.0} → {after:.0} MiB \
         (+{:.0} MiB, {:.0} KiB a stream); all ready in {:.1} s",
        after - before,
        (after - before) * 1024.0 / count as f64,
        ready.as_secs_f64()
    ))
}

/// One stream, read until its first event (`ready`).
async fn stream(address: SocketAddr, store: i64, token: HeaderValue) -> anyhow::Result<TcpStream> {
    let mut socket = TcpStream::connect(address).await?;
    let request = format!(
        "GET /v1/stores/{store}/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\nAuthorization: {}\r\n\r\n",
        token.to_str()?
    );
    socket.write_all(request.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    tokio::time::timeout(Duration::from_secs(60), async {
        while !seen.windows(12).any(|window| window == b"event: ready") {
            let read = socket.read(&mut buffer).await?;
            anyhow::ensure!(
                read > 0,
                "the stream closed: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buffer[..read]);
        }
        anyhow::Ok(())
    })
    .await??;
    anyhow::ensure!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    Ok(socket)
}
