//! How a session ends: the proxy's own error packets and the outcome counted
//! for each way a relay or a login can end.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::login::LoginOutcome;
use super::relay::RelayEnd;
use super::stream::Stream;
use super::timers::Expired;
use crate::metrics::{ConnOutcome, Stats};
use mysql_zk_proxy_protocol::errors::{err_packet, Phase, ProxyErrorCode};

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

/// Send one of the proxy's own errors (counted by code) and close.
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
    let sent = async {
        client.write_all(&packet).await?;
        client.flush().await
    };
    if let Err(e) = sent.await {
        tracing::debug!(error = %e, "could not send the error to the client");
    }
    let _ = client.shutdown().await;
}
