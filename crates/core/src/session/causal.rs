//! Causal reads (read-only listener, `read_only.consistency` `proxy` or
//! `fleet`): a command that starts at a rest point is held at the fence
//! until the session's [`BeforeRead`] hook says its backend has applied the
//! position the read must see. On failure the command does not run: the
//! client gets error 9020 as its reply and the session goes on.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::metrics::Stats;
use crate::routing::Primary;
use crate::session::rewrite::{command_head, fill_to};
use crate::session::stream::Stream;
use mysql_zk_proxy_protocol::command;
use mysql_zk_proxy_protocol::errors::{err_packet, Phase, ProxyErrorCode};

/// Why a read may not run yet (the hook's own error type, shown to the client).
pub type WaitError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed wait (the hook is a trait object).
pub type WaitFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WaitError>> + Send + 'a>>;

/// What a session asks before a read leaves for its backend.
pub trait BeforeRead: Send + Sync {
    /// Wait until `backend` has applied what a read starting now must see;
    /// `Err` names why it could not (the read is then refused).
    fn wait<'a>(&'a self, backend: &'a Primary) -> WaitFuture<'a>;
}

/// Does a command (its bytes from the packet header on) start a read that
/// waits: a statement or an EXECUTE sent at a rest point.
pub(crate) fn is_read(bytes: &[u8], at_rest: bool) -> bool {
    at_rest && matches!(bytes.get(4), Some(&command::QUERY | &command::STMT_EXECUTE))
}

/// Run the hook for the command at the start of `held` (when it is a read):
/// on success it stays to be relayed; on failure it is removed and the
/// client is answered with 9020.
pub(crate) async fn held_read(
    client: &mut Stream,
    held: &mut Vec<u8>,
    backend: &Primary,
    hook: &dyn BeforeRead,
    stats: &Stats,
    wait: Duration,
) -> io::Result<()> {
    if !command_head(client, held, wait).await? {
        return Ok(());
    }
    if !is_read(held, true) {
        return Ok(());
    }
    let Err(why) = hook.wait(backend).await else {
        return Ok(());
    };
    let len = u32::from_le_bytes([held[0], held[1], held[2], 0]) as usize;
    if len == 0xff_ffff {
        // a command of several packets: not refused in the middle
        return Err(io::Error::other(
            "causal wait failed on a command over 16 MiB",
        ));
    }
    fill_to(client, held, 4 + len, wait).await?;
    let seq = held[3];
    held.drain(..4 + len);
    tracing::info!(backend = %backend, reason = %why, "read refused: causal wait failed");
    stats.ops.count_error(ProxyErrorCode::CausalTimeout);
    let msg = format!("read not run: {why}; retry it or read from the primary");
    let packet = err_packet(
        seq.wrapping_add(1),
        ProxyErrorCode::CausalTimeout,
        Phase::AfterGreeting,
        &msg,
    );
    client.write_all(&packet).await?;
    client.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statements_at_rest_wait() {
        let q = [1, 0, 0, 0, command::QUERY];
        assert!(is_read(&q, true));
        assert!(!is_read(&q, false));
        assert!(is_read(&[1, 0, 0, 0, command::STMT_EXECUTE], true));
        assert!(!is_read(&[1, 0, 0, 0, command::PING], true));
        assert!(!is_read(&[1, 0, 0], true));
    }
}
