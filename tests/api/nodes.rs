//! `Query.node(id)` resolves every kind of object by its global id.

use serde_json::json;

use crate::helpers::{data, spawn_app};

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id ... on User { username } ... on Article { slug } ... on Comment { body } } }";

#[tokio::test]
async fn node_resolves_users_articles_and_comments() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    let slug = app.create_article(&token, "Noded", &[]).await;
    let comment_id = app.add_comment(&token, &slug, "a comment").await;
    let ids = app
        .gql_as(
            Some(&token),
            "query($slug: String!) { viewer { id } article(slug: $slug) { id } }",
            json!({ "slug": slug }),
        )
        .await;
    let user_id = data(&ids)["viewer"]["id"].clone();
    let article_id = data(&ids)["article"]["id"].clone();

    let user = app.gql(NODE, json!({ "id": user_id })).await;
    assert_eq!(
        data(&user)["node"],
        json!({ "__typename": "User", "id": user_id, "username": "alice" })
    );
    let article = app.gql(NODE, json!({ "id": article_id })).await;
    assert_eq!(
        data(&article)["node"],
        json!({ "__typename": "Article", "id": article_id, "slug": slug })
    );
    let comment = app.gql(NODE, json!({ "id": comment_id })).await;
    assert_eq!(
        data(&comment)["node"],
        json!({ "__typename": "Comment", "id": comment_id, "body": "a comment" })
    );
}

#[tokio::test]
async fn node_is_null_for_unknown_or_foreign_ids() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    let user_id = data(
        &app.gql_as(Some(&token), "{ viewer { id } }", json!({}))
            .await,
    )["viewer"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let unknown_article =
        conduit::graphql::GlobalId::encode(conduit::graphql::NodeKind::Article, 999_999);
    for id in [
        json!("garbage"),
        json!(""),
        json!(unknown_article.to_string()),
        json!(format!("{user_id}x")),
    ] {
        let response = app.gql(NODE, json!({ "id": id })).await;
        assert!(data(&response)["node"].is_null(), "{id}");
    }
}
