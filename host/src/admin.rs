//! The admin endpoint (loopback by default): `/livez` (this process: its loops turn),
//! `/readyz` and `/health` (200, or 503 with the stalled partitions, missing topics and
//! the plugin files that serve in no version), `/metrics` (Prometheus text),
//! `/plugins` (what is loaded, and what was rejected and why).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::liveness::Health;
use crate::plugins::status::PluginBoard;

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    plugins: PluginBoard,
    health: Health,
}

/// The admin address, bound: a start-up error (in use, not an address of this
/// machine) names `admin.listen`.
pub async fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("admin.listen {listen}: cannot listen: {e}"),
        )
    })
}

/// Readiness: 503 while a stage sees a stalled partition or failed, a configured topic
/// is missing, or a deployed plugin file serves in no version.
fn readiness(s: &AdminState) -> (StatusCode, String) {
    let (mut ready, mut text) = s.health.report();
    let plugins = crate::plugins::status::not_serving(&s.plugins);
    if !plugins.is_empty() {
        let stages = text.strip_prefix("ok\n").unwrap_or(&text);
        text = format!("not ready\n{stages}{}\n", plugins.join("\n"));
        ready = false;
    }
    (status(ready), text)
}

fn status(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    liveness_stall: Duration,
    metrics: PrometheusHandle,
    plugins: PluginBoard,
    health: Health,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        // `/readyz` and `/health` (Compose's health check) are readiness; `/livez` is
        // this process only: a supervisor restarts it when that fails.
        .route(
            "/health",
            get(|State(s): State<AdminState>| async move { readiness(&s) }),
        )
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move { readiness(&s) }),
        )
        .route(
            "/livez",
            get(move |State(s): State<AdminState>| async move {
                let (live, text) = s.health.live(liveness_stall);
                (status(live), text)
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move { s.metrics.render() }),
        )
        .route(
            "/plugins",
            get(|State(s): State<AdminState>| async move {
                Json(s.plugins.read().map(|p| p.clone()).unwrap_or_default())
            }),
        )
        .with_state(AdminState {
            metrics,
            plugins,
            health,
        });
    let listen = listener.local_addr()?;
    tracing::info!(%listen, "admin endpoint: /livez /readyz /health /metrics /plugins");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
