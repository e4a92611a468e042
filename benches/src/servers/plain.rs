//! axum with no session: the ceiling.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;

pub(super) async fn serve(addr: SocketAddr) -> Result<(), String> {
    let app = Router::new().route("/noop", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| e.to_string())?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
