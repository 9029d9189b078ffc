//! Conduit: a GraphQL API server for a blogging platform (users, articles, comments, tags, follows, favorites).

pub mod app;
/// Articles, favorites and feeds.
pub mod articles;
pub mod auth;
pub mod buckets;
pub mod cache;
pub mod changes;
pub mod cli;
/// Comments on articles.
pub mod comments;
/// Compiled reads: queries served from their plan, without the executor.
pub mod compiled;
pub mod config;
pub mod connections;
pub mod db;
pub mod endpoint;
pub mod error;
/// Schema evolution: changes classified and weighed against recorded usage.
pub mod evolution;
pub mod gateway;
pub mod graphql;
pub mod metrics;
pub mod node;
pub mod pagination;
pub mod playground;
pub mod realtime;
pub mod redis_client;
pub mod replicas;
pub mod schema;
pub mod seed;
pub mod state;
/// Tags of articles.
pub mod tags;
pub mod telemetry;
pub mod usage;
/// Users, profiles and follows.
pub mod users;
pub mod validate;
