//! Tags: the tags of articles and the most used tags.

pub mod compiled;
pub mod loaders;
pub mod query;
pub mod service;
pub mod types;
