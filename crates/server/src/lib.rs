//! Network listeners, health, metrics and lifecycle of the iii-stream server.
//!
//! [`Server::start`] opens the store and binds every port; [`Server::run`] serves until a
//! shutdown signal and then stops in the order of improvements.md l: stop accepting, finish
//! in-flight calls, flush and close subscribers (their leaves fire), close workers, close the
//! store.

mod accept;
mod engine_port;
mod health;
mod inbox;
mod slot;
mod stream_port;
mod writer;
mod ws;

use health::Health;
use iii_stream_config::Config;
use iii_stream_engine::{Engine, EngineConfig};
use iii_stream_service::{OpenError, StreamService};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Open(#[from] OpenError),
}

pub struct Server {
    engine: Engine,
    service: Arc<StreamService>,
    health: Arc<Health>,
    subscribers: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    stream_addr: SocketAddr,
    engine_addrs: Vec<SocketAddr>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens the store and binds every listener. Must run inside a Tokio runtime.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        // Listeners share one registry; relayed calls use the first listener's timeout.
        let invocation_timeout = config.engine.first().map_or(Duration::from_secs(600), |e| {
            Duration::from_millis(e.invocation_timeout_ms)
        });
        let engine = Engine::new(EngineConfig { invocation_timeout });
        let service = StreamService::open(engine.clone(), config.stream.clone()).await?;
        let (stop, stopped) = watch::channel(false);
        let health = Arc::new(Health::default());
        let subscribers = Arc::new(AtomicUsize::new(0));
        let mut listeners = Vec::new();
        let mut engine_addrs = Vec::new();
        let workers = Arc::new(AtomicUsize::new(0));
        for listener in &config.engine {
            let socket = accept::bind(&listener.host, listener.port).await?;
            engine_addrs.push(local_addr(&socket));
            let router = engine_port::router(engine.clone(), listener, workers.clone());
            let head_timeout = Duration::from_millis(listener.handshake_timeout_ms);
            listeners.push(tokio::spawn(accept::serve(
                socket,
                router,
                head_timeout,
                stopped.clone(),
            )));
        }
        let socket = accept::bind(&config.stream.host, config.stream.port).await?;
        let stream_addr = local_addr(&socket);
        let router = stream_port::router(stream_port::Port {
            service: service.clone(),
            health: health.clone(),
            connections: subscribers.clone(),
            authenticating: Arc::default(),
            stop: stopped.clone(),
        });
        listeners.push(tokio::spawn(accept::serve(
            socket,
            router,
            Duration::from_secs(10),
            stopped,
        )));
        tracing::info!(stream = %stream_addr, engine = ?engine_addrs, "iii-stream listening");
        Ok(Self {
            engine,
            service,
            health,
            subscribers,
            stop,
            listeners,
            stream_addr,
            engine_addrs,
            shutdown_timeout: Duration::from_millis(config.stream.shutdown_timeout_ms),
        })
    }

    pub fn stream_addr(&self) -> SocketAddr {
        self.stream_addr
    }

    pub fn engine_addrs(&self) -> &[SocketAddr] {
        &self.engine_addrs
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn run(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Graceful shutdown within `shutdown_timeout_ms`.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        tracing::info!("shutting down");
        self.health.begin_shutdown();
        self.engine.begin_shutdown();
        // Stops the accept loops and makes subscriber connections flush and close with 1001.
        let _ = self.stop.send(true);
        for listener in &self.listeners {
            listener.abort();
        }
        wait_until(deadline, || self.service.calls_in_flight() == 0).await;
        wait_until(deadline, || self.subscribers.load(Ordering::SeqCst) == 0).await;
        // Leave handlers were dispatched as subscribers closed; let them finish (bounded).
        wait_until(deadline, || self.service.leaves_in_flight() == 0).await;
        self.engine.close_all();
        // The Close frames go out from each connection's task: give them a moment to be sent.
        let goodbye = deadline.max(Instant::now() + Duration::from_millis(500));
        wait_until(goodbye, || self.engine.worker_count() == 0).await;
        self.service.close().await;
        tracing::info!("stopped");
    }
}

fn local_addr(listener: &tokio::net::TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Polls `done` until it holds or the deadline passes.
async fn wait_until(deadline: Instant, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
