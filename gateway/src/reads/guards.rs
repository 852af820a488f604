//! Checks every feature makes against the read models before acting: the
//! device still exists, the caller is a member.

use missive_core::users::UserState;
use missive_core::{ConversationId, UserId};

use super::barrier::Projection;
use super::models::ReadModels;
use crate::auth::Principal;
use crate::protocol::ApiError;

/// A token's device must still belong to the account: removing a device
/// (or logging out) ends its tokens before they expire. A device this
/// gateway has not seen yet (registered through another gateway a moment
/// ago) is looked for again behind a read barrier.
pub async fn require_device(reads: &ReadModels, principal: Principal) -> Result<(), ApiError> {
    let has_device = |state: Option<UserState>| state.is_some_and(|state| state.has_device(principal.device));
    let state = reads.directory(principal.user).await?;
    let removed = state.as_ref().is_some_and(|state| state.was_removed(principal.device));
    if has_device(state) {
        return Ok(());
    }
    if !removed {
        reads.barrier(Projection::Directory, [principal.user.0]).await?;
        if has_device(reads.directory(principal.user).await?) {
            return Ok(());
        }
    }
    Err(ApiError::unauthorized("this device was removed from the account; verify again").with_code("device_removed"))
}

/// Members only; an unknown conversation and a foreign one look the same.
pub async fn require_member(reads: &ReadModels, user: UserId, conversation: ConversationId) -> Result<(), ApiError> {
    require_members(reads, user, conversation).await.map(|_| ())
}

/// Like `require_member`, returning the members.
pub async fn require_members(
    reads: &ReadModels,
    user: UserId,
    conversation: ConversationId,
) -> Result<Vec<UserId>, ApiError> {
    reads
        .members_including(conversation, user)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "no such conversation among yours"))
}
