//! What a session does when its primary changes (docs/architecture.md, failover): at a
//! rest point it is migrated to the new primary when it can be, otherwise its
//! next command is answered with a failover error and it is closed; a
//! transaction past `failover.drain_timeout` is aborted.

use crate::native_password::{derive, DerivedPassword};
use crate::routing::Primary;
use crate::session::login::LoginRecord;
use crate::session::Env;

/// Where the route stands for a session on `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteFor {
    /// It still names `current`, serving.
    Same,
    /// It names `current` but says `draining` (a planned switchover):
    /// transactions finish there, new work is held at rest.
    Draining,
    /// No primary, or another server: no command may reach `current`.
    Elsewhere,
}

/// Where the route stands for a session on `current`.
pub(crate) fn route_for(ctx: &Env, current: &Primary) -> RouteFor {
    let route = ctx.table.current();
    match &route.primary {
        Some(p) if p.address() == current.address() => {
            if route.serving() {
                RouteFor::Same
            } else {
                RouteFor::Draining
            }
        }
        _ => RouteFor::Elsewhere,
    }
}

/// The route moved away from `current`: no primary, another address, or the
/// record says `draining` (a planned switchover: hold new work at rest).
pub fn moved(ctx: &Env, current: &Primary) -> bool {
    route_for(ctx, current) != RouteFor::Same
}

/// The serving primary to move to ([`Env::serving_route`]); `None` on
/// timeout or drain. Statements held meanwhile stay unread (or in the held
/// buffer).
pub(crate) async fn next_primary(ctx: &Env) -> Option<Primary> {
    ctx.serving_route().await.and_then(|r| r.primary.clone())
}

/// The credential to log in again as this client, or why there is none.
pub fn credential(ctx: &Env, record: &LoginRecord) -> Result<DerivedPassword, String> {
    if record.plugin != "mysql_native_password" {
        return Err(format!("user logged in with {}", record.plugin));
    }
    let Some(stored) = ctx.credentials.lookup(&record.user) else {
        return Err(format!(
            "user {:?} is not in the credential store",
            record.user
        ));
    };
    derive(&record.scramble, &record.auth_response, &stored).map_err(|e| {
        format!(
            "stored hash for {:?} does not match its login ({e})",
            record.user
        )
    })
}
