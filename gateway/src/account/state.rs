//! The caller's own account as this gateway's directory shows it, and
//! changes to it that answer once they are visible (read-your-writes).

use missive_core::UserId;
use missive_core::users::{UserCommand, UserState};
use serde_json::{Value, json};

use crate::protocol::ApiError;
use crate::reads::DIRECTORY_WAIT;
use crate::rest::Context;

/// Records an account change and returns the account once this gateway's
/// directory shows it (`shows`), so the caller's next request sees it.
pub(super) async fn change_account(
    context: &Context,
    command: UserCommand,
    shows: impl Fn(&UserState) -> bool,
) -> Result<UserState, ApiError> {
    let user = command.user_id();
    context.bus.user_command(command).await?;
    let state = context.reads.directory_when(user, DIRECTORY_WAIT, |state| state.is_some_and(&shows)).await?;
    state.ok_or_else(|| ApiError::unavailable("account not visible yet; retry"))
}

/// A list of user ids as decimal strings.
pub(super) fn user_ids_json<'a>(users: impl IntoIterator<Item = &'a UserId>) -> Value {
    json!(users.into_iter().map(UserId::to_string).collect::<Vec<_>>())
}

pub(super) async fn own_state(context: &Context, user: UserId) -> Result<UserState, ApiError> {
    context.reads.directory(user).await?.ok_or_else(|| ApiError::unavailable("account not visible yet; retry"))
}
