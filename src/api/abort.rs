//! An HTTP/1.0 body has no end marker: it ends when the connection does.
//! So when a log read fails after its first byte, aborting the body the
//! usual way (an orderly close) would look to an HTTP/1.0 client, or to a
//! proxy that speaks HTTP/1.0 to the service, like the whole log. Here such
//! a connection is closed with a reset instead: each connection carries an
//! [`Abort`] flag, the REST responses to HTTP/1.0 requests set it when their
//! body fails, and the connection's socket then closes with `SO_LINGER` 0.
//! (HTTP/1.1 bodies are chunked and HTTP/2 streams are reset: both already
//! tell a client that a body broke.)

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Version;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's flag: set, its socket closes with a reset.
#[derive(Debug, Clone, Default)]
pub struct Abort(Arc<AtomicBool>);

impl Abort {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A TCP stream that closes with a reset once its [`Abort`] is set.
#[derive(Debug)]
pub struct AbortableTcp {
    inner: TcpStream,
    abort: Abort,
}

impl AbortableTcp {
    /// `inner`, closing with a reset once `abort` is set.
    pub fn new(inner: TcpStream, abort: Abort) -> Self {
        Self { inner, abort }
    }

    fn reset_on_close(&self) {
        // A zero linger does not block: the close sends a reset at once.
        #[allow(deprecated)]
        if let Err(error) = self.inner.set_linger(Some(Duration::ZERO)) {
            tracing::debug!(%error, "setting SO_LINGER to 0 failed");
        }
    }
}

impl Drop for AbortableTcp {
    fn drop(&mut self) {
        if self.abort.is_set() {
            self.reset_on_close();
        }
    }
}

impl AsyncRead for AbortableTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.abort.is_set() {
            // No FIN: the reset goes out when the socket is dropped.
            self.reset_on_close();
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Middleware: an HTTP/1.0 response whose body fails sets its connection's
/// [`Abort`].
pub async fn reset_broken_http10(request: Request, next: Next) -> Response {
    let abort = (request.version() == Version::HTTP_10)
        .then(|| request.extensions().get::<Abort>().cloned())
        .flatten();
    let response = next.run(request).await;
    let Some(abort) = abort else {
        return response;
    };
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            if chunk.is_err() {
                abort.set();
            }
            chunk
        }))
    })
}
