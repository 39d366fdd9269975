//! Hostile input at every door, through the real application: each answer is the right status,
//! nothing changes in the store, the process stays up, and `/metrics` stays small. One module per
//! door family.

mod common;

#[path = "hostile/http.rs"]
mod http;
