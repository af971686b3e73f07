//! The admin endpoint (loopback by default): `/health` (200, or 503 with the stalled
//! partitions and the plugin files that serve in no version), `/metrics` (Prometheus text),
//! `/plugins` (what is loaded, and what was rejected and why).

use std::net::SocketAddr;

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

pub async fn serve(
    listen: SocketAddr,
    metrics: PrometheusHandle,
    plugins: PluginBoard,
    health: Health,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/health",
            get(|State(s): State<AdminState>| async move {
                // 503 while a stage sees a stalled partition, or a deployed plugin file
                // serves in no version: a supervisor or an operator can act on it.
                let (mut ready, mut text) = s.health.report();
                let plugins = crate::plugins::status::not_serving(&s.plugins);
                if !plugins.is_empty() {
                    let stages = text.strip_prefix("ok\n").unwrap_or(&text);
                    text = format!("not ready\n{stages}{}\n", plugins.join("\n"));
                    ready = false;
                }
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, text)
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
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "admin endpoint: /health /metrics /plugins");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
