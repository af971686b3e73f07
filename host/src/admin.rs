//! The admin endpoint (loopback by default): `/health`, `/metrics` (Prometheus text),
//! `/plugins` (what is loaded, and what was rejected and why).

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::plugins::status::PluginBoard;

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    plugins: PluginBoard,
}

pub async fn serve(
    listen: SocketAddr,
    metrics: PrometheusHandle,
    plugins: PluginBoard,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
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
        .with_state(AdminState { metrics, plugins });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "admin endpoint: /health /metrics /plugins");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
