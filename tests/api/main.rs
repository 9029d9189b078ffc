//! Integration tests: the real app over HTTP, through the public GraphQL API, one database per test.
//! SQLite by default; a fresh PostgreSQL database per test when `TEST_DATABASE_URL` is set.

mod abuse;
mod articles;
mod cache;
mod comments;
mod compiled_reads;
mod concurrency;
mod cost_property;
mod hardening;
mod helpers;
mod hostile;
mod http;
mod limits;
mod n_plus_one;
mod nodes;
mod operations;
mod otlp;
mod persisted;
mod pricing;
mod privacy;
mod process;
mod rate_limit;
mod realtime_client;
mod revocation;
mod statements;
mod subscriptions;
mod tags;
mod tcp_proxy;
mod usage;
mod users;
