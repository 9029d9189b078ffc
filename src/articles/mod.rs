//! Articles: writing, editing, deleting, favoriting, listing with filters, the personal feed.

pub mod compiled;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod service;
pub mod slug;
pub mod subscription;
pub mod types;
