//! Users and profiles: registration, login, the viewer's settings, follows.

pub mod compiled;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod service;
pub mod types;
