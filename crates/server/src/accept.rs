//! The accept loop shared by both ports: TCP_NODELAY, a deadline on the HTTP request head,
//! WebSocket upgrades, the peer address for handlers, and an orderly stop.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` on `listener` until `stop` turns true; then stops accepting.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    head_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (socket, addr) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Usually EMFILE or a connection reset before accept; keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(addr));
                    router.clone().oneshot(request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "connection ended with an error");
            }
        });
    }
}

/// Binds a listener, naming the address in the error.
pub(crate) async fn bind(host: &str, port: u16) -> Result<TcpListener, crate::ServerError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|source| crate::ServerError::Bind {
            address: format!("{host}:{port}"),
            source,
        })
}
