//! HTTP front end. For now: health endpoints (the full API arrives with the API issue).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::ca::Ca;

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/health/live", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/health/ready", get(ready))
        .with_state(ca.clone())
        .merge(crate::ocsp::routes(crate::ocsp::Responder::current(&ca)))
}

async fn ready(State(ca): State<Ca>) -> (StatusCode, Json<serde_json::Value>) {
    let hsm = {
        let h = ca.hsm.clone();
        tokio::task::spawn_blocking(move || h.check()).await
    };
    let hsm_ok = matches!(hsm, Ok(Ok(())));
    let store_ok = ca.store.ping().await.is_ok();
    let status = if hsm_ok && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
            "hsm": if hsm_ok { "ok" } else { "down" },
            "store": if store_ok { "ok" } else { "down" },
        })),
    )
}

pub async fn serve(ca: Ca, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "pnc-pki listening");
    crate::ocsp::http::serve_http1(listener, router(ca), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
