//! What every HTTP feature shares: the handle set its handlers get, the
//! filters (JSON bodies, the caller's token, its gateway, its address) and
//! the JSON answers and error shape. Features expose their own routes.

mod filters;
mod reply;

pub use filters::*;
pub use reply::*;
