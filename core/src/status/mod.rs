//! Status broadcasts for the Workout Tracker's users: the public components and incidents, kept
//! apart from the internal ones, and the snapshot the public surfaces serve.
//!
//! - [`model`]: public components, incidents, updates and the page, in Statuspage's terms.
//! - [`board`]: the in-memory snapshot the public surfaces read.
//! - [`snapshot`]: building it: components' statuses, the 90-day bars, the page's indicator.

pub mod board;
pub mod model;
pub mod snapshot;

pub use board::StatusBoard;
pub use model::*;
