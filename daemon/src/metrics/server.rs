//! The `/metrics` listener (HTTP/1.1, hyper). OpenMetrics when the scraper asks for it
//! (Prometheus does), the classic text format otherwise. A listener that cannot bind is a
//! warning naming the address: the event stream and the other sinks keep running.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{encoding, registry::Registry};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond(req: &Request<hyper::body::Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "podtrail serves /metrics\n".into());
    }
    let wants_openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, ctype) = if wants_openmetrics {
        (encoding::text::encode(&mut body, registry), OPENMETRICS)
    } else {
        (encoding::prometheus_text::encode(&mut body, registry), encoding::prometheus_text::CONTENT_TYPE)
    };
    match encoded {
        Ok(()) => reply(StatusCode::OK, ctype, body),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "encoding failed\n".into()),
    }
}

/// Binds `addr` and serves until the runtime stops. Returns the bound address (useful with
/// port 0), or None after warning when the address cannot be bound.
pub async fn serve(addr: &str, registry: Arc<Registry>) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("metrics: cannot listen on {addr}: {e}; continuing without /metrics (set --metrics-addr)");
            return None;
        }
    };
    let bound = listener.local_addr().ok()?;
    tracing::info!("metrics on http://{bound}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // e.g. out of file descriptors: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let resp = respond(&req, &registry);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Some(bound)
}
