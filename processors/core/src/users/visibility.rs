//! What another user may see of an account, as its privacy settings say.

use crate::ids::{Millis, UserId};

use super::model::*;

/// How a viewer stands to a profile's owner, for visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Myself,
    /// The owner has the viewer in their contacts.
    Contact,
    NonContact,
    /// The owner blocked the viewer.
    Blocked,
}

pub fn relation(owner: &UserState, viewer: UserId) -> Relation {
    if owner.user_id == viewer {
        Relation::Myself
    } else if owner.blocked.contains(&viewer) {
        Relation::Blocked
    } else if owner.contacts.contains(&viewer) {
        Relation::Contact
    } else {
        Relation::NonContact
    }
}

/// Whether `relation` may see something shown to `audience`. A blocked
/// viewer sees none of it, whatever the setting.
pub fn visible(audience: Audience, relation: Relation) -> bool {
    match relation {
        Relation::Myself => true,
        Relation::Blocked => false,
        Relation::Contact => audience != Audience::Nobody,
        Relation::NonContact => audience == Audience::Everyone,
    }
}

/// The profile as `viewer` may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileView {
    pub user_id: UserId,
    pub display_name: String,
    pub about: Option<String>,
    pub picture: Option<String>,
    pub last_seen: Option<Option<Millis>>,
}

pub fn view_profile(owner: &UserState, viewer: UserId) -> ProfileView {
    let relation = relation(owner, viewer);
    let privacy = owner.privacy;
    ProfileView {
        user_id: owner.user_id,
        display_name: owner.profile.display_name.clone(),
        about: visible(privacy.about, relation).then(|| owner.profile.about.clone()),
        picture: visible(privacy.photo, relation).then(|| owner.profile.picture.clone()),
        last_seen: visible(privacy.last_seen, relation).then_some(owner.last_seen),
    }
}
