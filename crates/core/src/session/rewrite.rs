//! Commands a migrated session cannot send as the client wrote them, rewritten
//! while held at the fence: the first EXECUTE of a re-prepared statement
//! (its parameter types are sent again) and a KILL naming a moved session.

use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::session::kill::{self, KillMap};
use crate::session::state::CarriedState;
use crate::session::stmts;
use crate::session::stream::Stream;
use mysql_zk_proxy_protocol::command;

/// Longest KILL statement read whole for a rewrite.
const MAX_KILL: usize = 1024;

/// Rewrite the command at the start of `held` if it needs it, reading more
/// of it from the client first when only part of it has arrived.
pub(crate) async fn held_command(
    client: &mut Stream,
    held: &mut Vec<u8>,
    state: &CarriedState,
    backend: &str,
    kills: &KillMap,
    wait: Duration,
) -> io::Result<()> {
    if !command_head(client, held, wait).await? {
        return Ok(());
    }
    let len = u32::from_le_bytes([held[0], held[1], held[2], 0]) as usize;
    match held[4] {
        command::STMT_EXECUTE => {
            let Some(id) = stmts::id_at(&held[4..]).filter(|&id| state.stmts.needs_types(id))
            else {
                return Ok(());
            };
            let need = state.stmts.execute_head_len(id).min(4 + len);
            fill_to(client, held, need, wait).await?;
            if let Some(with_types) = state.stmts.with_types(held) {
                *held = with_types;
            }
        }
        command::QUERY | command::PROCESS_KILL if kills.any_moved() && len <= MAX_KILL => {
            if !kill::is_kill(held) {
                return Ok(());
            }
            fill_to(client, held, 4 + len, wait).await?;
            let packet = &held[..4 + len];
            if let Some(new) = kill::rewrite(packet, |id| kills.translate(id, backend)) {
                tracing::info!(
                    backend,
                    "KILL translated to the session's thread on its new primary"
                );
                held.splice(..4 + len, new);
            }
        }
        _ => {}
    }
    Ok(())
}

/// When `held` starts a command: read until its header and command byte
/// are there, and say so; false when nothing is held.
pub(crate) async fn command_head(
    client: &mut Stream,
    held: &mut Vec<u8>,
    wait: Duration,
) -> io::Result<bool> {
    if held.is_empty() {
        return Ok(false);
    }
    fill_to(client, held, 5, wait).await?;
    Ok(true)
}

/// Read from the client until `held` has `n` bytes.
pub(crate) async fn fill_to(
    client: &mut Stream,
    held: &mut Vec<u8>,
    n: usize,
    wait: Duration,
) -> io::Result<()> {
    while held.len() < n {
        let read = tokio::time::timeout(wait, client.read_buf(held))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stalled mid-command"))?;
        if read? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}
