//! The list of tags, most used first.

use serde_json::json;

use crate::helpers::{data, spawn_app};

#[tokio::test]
async fn tags_are_listed_most_used_first_then_by_name() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    app.create_article(&token, "One", &["rust", "graphql", "zebra"])
        .await;
    app.create_article(&token, "Two", &["rust", "graphql"])
        .await;
    app.create_article(&token, "Three", &["rust", "apple"])
        .await;

    let query = "query($first: Int, $after: String) { tags(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { name } } }";
    let response = app.gql(query, json!({})).await;
    let tags = &data(&response)["tags"];
    assert_eq!(tags["totalCount"], 4);
    assert_eq!(
        tags["nodes"],
        json!([{ "name": "rust" }, { "name": "graphql" }, { "name": "apple" }, { "name": "zebra" }])
    );

    let first = app.gql(query, json!({ "first": 2 })).await;
    let first = &data(&first)["tags"];
    assert_eq!(
        first["nodes"],
        json!([{ "name": "rust" }, { "name": "graphql" }])
    );
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = app
        .gql(
            query,
            json!({ "first": 2, "after": first["pageInfo"]["endCursor"] }),
        )
        .await;
    let rest = &data(&rest)["tags"];
    assert_eq!(
        rest["nodes"],
        json!([{ "name": "apple" }, { "name": "zebra" }])
    );
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
}
