//! How a session ends: the proxy's own error packets and the outcome counted
//! for each way a relay or a login can end.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::login::LoginOutcome;
use super::relay::RelayEnd;
use super::stream::Stream;
use super::timers::Expired;
use crate::metrics::{ConnOutcome, Stats};
use mysql_zk_proxy_protocol::command;
use mysql_zk_proxy_protocol::errors::{err_packet, Phase, ProxyErrorCode};
use mysql_zk_proxy_protocol::packet_io::PacketReader;

/// Error 9002 in place of the greeting.
pub(super) async fn unreachable<S: AsyncWrite + Unpin>(
    client: &mut S,
    stats: &Stats,
    msg: &str,
) -> ConnOutcome {
    tracing::warn!("{msg}");
    let code = ProxyErrorCode::BackendUnreachable;
    send_error(client, stats, 0, code, Phase::BeforeGreeting, msg).await;
    ConnOutcome::BackendUnreachable
}

pub(super) async fn login_failure(
    outcome: LoginOutcome,
    client: &mut Stream,
    stats: &Stats,
) -> ConnOutcome {
    match outcome {
        LoginOutcome::LoggedIn { .. } => unreachable!("handled by the caller"),
        LoginOutcome::Failed => ConnOutcome::AuthFailed,
        LoginOutcome::SslRequested => {
            let msg = "TLS is not enabled on this proxy; connect without TLS";
            send_error(
                client,
                stats,
                2,
                ProxyErrorCode::TlsUnsupported,
                Phase::AfterGreeting,
                msg,
            )
            .await;
            ConnOutcome::ClientError
        }
        LoginOutcome::Refused { code, seq, msg } => {
            tracing::warn!("login refused: {msg}");
            send_error(client, stats, seq, code, Phase::AfterGreeting, &msg).await;
            match code {
                ProxyErrorCode::BackendUnreachable => ConnOutcome::BackendUnreachable,
                _ => ConnOutcome::ClientError,
            }
        }
        LoginOutcome::ClientGone(e) => {
            tracing::debug!(error = %e, "client left during login");
            ConnOutcome::ClientError
        }
        LoginOutcome::BackendGone(e) => {
            tracing::info!(error = %e, "backend failed during login");
            ConnOutcome::BackendLost
        }
        LoginOutcome::Malformed(why) => {
            tracing::info!(%why, "unusable handshake response");
            ConnOutcome::ClientError
        }
    }
}

pub(super) async fn outcome_of(end: RelayEnd, quit: bool, client: &mut Stream) -> ConnOutcome {
    match end {
        RelayEnd::ClientClosed => ConnOutcome::Closed,
        RelayEnd::BackendClosed if quit => ConnOutcome::Closed,
        RelayEnd::BackendClosed => {
            tracing::info!("backend closed the connection");
            ConnOutcome::BackendLost
        }
        RelayEnd::BackendError(e) => {
            tracing::info!(error = %e, "backend connection failed");
            ConnOutcome::BackendLost
        }
        RelayEnd::ClientError(e) => {
            tracing::debug!(error = %e, "client connection failed");
            ConnOutcome::ClientError
        }
        RelayEnd::Stopped(point) => {
            tracing::info!(
                ?point,
                "closing the session at a safe point (proxy draining)"
            );
            let _ = client.shutdown().await;
            ConnOutcome::Shutdown
        }
        RelayEnd::TimedOut(Expired::Handshake) => {
            tracing::info!("no login within listen.handshake_timeout; closing");
            ConnOutcome::HandshakeTimeout
        }
        RelayEnd::Held => unreachable!("a held command is rewritten and relayed"),
        RelayEnd::TimedOut(Expired::Idle) => {
            tracing::info!("idle longer than listen.idle_timeout; closing");
            let _ = client.shutdown().await;
            ConnOutcome::IdleTimeout
        }
    }
}

/// How long the proxy tries to hand a client its error, and then to close
/// the connection: a client that does not read is not waited for.
const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Send one of the proxy's own errors (counted by code) and close: the one
/// way the proxy ends a client connection with an error, before the
/// greeting, during login or at a command.
pub(crate) async fn send_error<S: AsyncWrite + Unpin>(
    client: &mut S,
    stats: &Stats,
    seq: u8,
    code: ProxyErrorCode,
    phase: Phase,
    msg: &str,
) {
    stats.ops.count_error(code);
    let packet = err_packet(seq, code, phase, msg);
    let sent = tokio::time::timeout(ERROR_WRITE_TIMEOUT, async {
        client.write_all(&packet).await?;
        client.flush().await
    });
    match sent.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "could not send the error to the client"),
        Err(_) => tracing::debug!("the client did not take its error in time"),
    }
    let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, client.shutdown()).await;
}

/// Answer the client's next command (possibly already read: `held`) with
/// `code` and close; a client that stays silent for `wait`, or quits, is
/// closed without a word.
pub(crate) async fn close_at_next_command(
    client: &mut Stream,
    stats: &Stats,
    held: &[u8],
    code: ProxyErrorCode,
    msg: &str,
    wait: Duration,
) {
    let mut reader = PacketReader::with_initial(16 * 1024 * 1024, held);
    let next = tokio::time::timeout(wait, reader.read(client)).await;
    match next {
        Ok(Ok(p)) if p.payload.first() != Some(&command::QUIT) => {
            let seq = p.seq.wrapping_add(1);
            send_error(client, stats, seq, code, Phase::AfterGreeting, msg).await;
        }
        _ => {
            let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, client.shutdown()).await;
        }
    }
}
