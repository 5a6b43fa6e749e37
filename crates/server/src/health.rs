//! `GET /healthz`: 200 while the listeners run and the store is usable, 503 with a reason once
//! shutdown began or the store failed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iii_stream_service::StreamService;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub(crate) struct Health {
    shutting_down: AtomicBool,
}

impl Health {
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn respond(&self, service: &StreamService) -> Response {
        let problem = if self.shutting_down.load(Ordering::SeqCst) {
            Some("shutting down".to_owned())
        } else {
            service.health().err()
        };
        match problem {
            None => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": reason})),
            )
                .into_response(),
        }
    }
}
