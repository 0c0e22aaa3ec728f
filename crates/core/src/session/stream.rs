//! One leg of a session, plain TCP or TLS (the proxy as TLS server towards a
//! client, as TLS client towards a backend); reads and writes delegate with
//! one enum match per poll, so the plain path costs what TcpStream does.
//! A boxed stream (any async byte stream, e.g. one end of
//! `tokio::io::duplex`) lets the relay run without sockets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use rustls::pki_types::ServerName;

/// Any async byte stream a [`Stream::Boxed`] can hold.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

pub enum Stream {
    Plain(TcpStream),
    ServerTls(Box<server::TlsStream<TcpStream>>),
    ClientTls(Box<client::TlsStream<TcpStream>>),
    /// Not a socket: no readiness to ask, and it may buffer writes (so it
    /// is flushed like TLS).
    Boxed(Box<dyn Io>),
    /// Only while a TLS handshake owns the socket (or after one failed).
    Closed,
}

impl Stream {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::ServerTls(_) | Stream::ClientTls(_))
    }

    /// Writes may sit in the stream until it is flushed (TLS records, or a
    /// boxed stream that buffers); a plain socket keeps none.
    pub(crate) fn buffers_writes(&self) -> bool {
        matches!(
            self,
            Stream::ServerTls(_) | Stream::ClientTls(_) | Stream::Boxed(_)
        )
    }

    /// The TCP socket under any TLS.
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::ServerTls(s) => Some(s.get_ref().0),
            Stream::ClientTls(s) => Some(s.get_ref().0),
            Stream::Boxed(_) | Stream::Closed => None,
        }
    }

    fn take_plain(&mut self) -> io::Result<TcpStream> {
        match std::mem::replace(self, Stream::Closed) {
            Stream::Plain(s) => Ok(s),
            other => {
                *self = other;
                Err(io::Error::other("TLS requested twice on one connection"))
            }
        }
    }

    /// Answer a client's TLS handshake (after its SSLRequest).
    pub(crate) async fn accept_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let tcp = self.take_plain()?;
        *self = Stream::ServerTls(Box::new(acceptor.accept(tcp).await?));
        Ok(())
    }

    /// Start TLS towards a backend (after sending it an SSLRequest).
    pub(crate) async fn connect_tls(
        &mut self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let tcp = self.take_plain()?;
        *self = Stream::ClientTls(Box::new(connector.connect(name, tcp).await?));
        Ok(())
    }

    /// Ready when a read may return data without waiting: the TCP socket's
    /// readiness for a plain stream; always for TLS, whose session may hold
    /// decrypted bytes the socket no longer shows, and for a boxed stream,
    /// which has no readiness to ask (the caller reads and sees).
    pub(crate) fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => s.poll_read_ready(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Wait until the client sent something (or closed). A boxed stream
    /// cannot be asked without reading: it never says so.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Boxed(_) => std::future::pending().await,
            _ => match self.tcp() {
                Some(s) => s.readable().await,
                None => Ok(()),
            },
        }
    }
}

fn closed() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

/// One poll, delegated to the stream inside `$self` (bound to `$s`, pinned);
/// a closed leg answers `$closed`.
macro_rules! delegate {
    ($self:ident, $s:ident => $poll:expr, closed => $closed:expr) => {
        match $self.get_mut() {
            Stream::Plain(s) => {
                let $s = Pin::new(s);
                $poll
            }
            Stream::ServerTls(s) => {
                let $s = Pin::new(s.as_mut());
                $poll
            }
            Stream::ClientTls(s) => {
                let $s = Pin::new(s.as_mut());
                $poll
            }
            Stream::Boxed(s) => {
                let $s = Pin::new(s.as_mut());
                $poll
            }
            Stream::Closed => Poll::Ready($closed),
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf), closed => Err(closed()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf), closed => Err(closed()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx), closed => Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx), closed => Ok(()))
    }
}
