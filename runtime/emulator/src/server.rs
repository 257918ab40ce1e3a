//! The HTTP/1 server under the routes. It is written out (rather than `axum::serve`) for one
//! reason: a handler can drop its own connection without an answer, as a server that crashed
//! or a network that lost the reply would ([`ConnectionControl`], used by the submission
//! faults).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// Lets a handler close the connection its request came on, unanswered. Present in every
/// request's extensions.
#[derive(Clone)]
pub(crate) struct ConnectionControl(Arc<Notify>);

impl ConnectionControl {
    /// Close the connection without an answer (the caller should then never answer).
    pub(crate) fn drop_connection(&self) {
        self.0.notify_one();
    }
}

/// Serve `app` on `listener` until `stop` fires; then every open connection is closed.
pub(crate) async fn serve(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, app.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, for one: wait instead of spinning.
                    tracing::warn!(error = %e, "emulator: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn connection(stream: TcpStream, app: Router) {
    // Small answers on kept-alive connections must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let abort = Arc::new(Notify::new());
    let control = ConnectionControl(abort.clone());
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(control.clone());
        let mut app = app.clone();
        async move { app.call(request).await }
    });
    let served =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "emulator: connection ended with an error");
            }
        }
        // Dropping the connection closes the socket; the request gets no answer.
        () = abort.notified() => {}
    }
}
