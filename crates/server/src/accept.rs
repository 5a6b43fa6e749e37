//! The accept loop shared by both ports: TCP_NODELAY, a deadline on the HTTP request head,
//! WebSocket upgrades, the peer address for handlers, and an orderly stop.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
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

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`).
/// `TcpListener::bind` uses 128, which a burst of reconnecting subscribers overflows: the excess
/// SYNs are dropped and those clients wait a full second for their retransmission.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener, naming the address in the error. Like `TcpListener::bind`, tries every
/// address the host resolves to and sets `SO_REUSEADDR`, but listens with [`LISTEN_BACKLOG`].
pub(crate) async fn bind(host: &str, port: u16) -> Result<TcpListener, crate::ServerError> {
    let error = |source| crate::ServerError::Bind {
        address: format!("{host}:{port}"),
        source,
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind");
    for addr in tokio::net::lookup_host((host, port)).await.map_err(error)? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let listener = socket.and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        });
        match listener {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(error(last))
}
