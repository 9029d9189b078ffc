//! Comments on articles.

pub mod compiled;
pub mod loaders;
pub mod mutation;
pub mod service;
pub mod subscription;
pub mod types;
