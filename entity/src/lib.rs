//! SeaORM entities of the Conduit domain: plain data, one module per table.

pub mod article;
pub mod article_tag;
pub mod comment;
pub mod favorite;
pub mod follow;
pub mod schema_usage;
pub mod tag;
pub mod user;
