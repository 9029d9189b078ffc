//! Comments on articles.

pub mod loaders;
pub mod mutation;
pub mod service;
pub mod types;
