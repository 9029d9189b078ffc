//! Comments: adding, deleting, and paging them under articles.

use serde_json::json;

use crate::helpers::{data, error_code, names_field, spawn_app};

const ADD: &str = "mutation($slug: String!, $body: String!) { addComment(slug: $slug, input: { body: $body }) { comment { id body createdAt updatedAt author { username } article { slug } } } }";
const DELETE: &str = "mutation($id: ID!) { deleteComment(id: $id) { deletedId } }";
const COMMENTS: &str = "query($slug: String!, $first: Int, $after: String) { article(slug: $slug) { comments(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { body } } } } }";

#[tokio::test]
async fn add_comment_returns_it_with_author_and_article() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Commented", &[]).await;
    let response = app
        .gql_as(
            Some(&reader),
            ADD,
            json!({ "slug": slug, "body": "Great read" }),
        )
        .await;
    let comment = &data(&response)["addComment"]["comment"];
    assert_eq!(comment["body"], "Great read");
    assert_eq!(comment["author"]["username"], "reader");
    assert_eq!(comment["article"]["slug"], slug);
    assert_eq!(comment["createdAt"], comment["updatedAt"]);
}

#[tokio::test]
async fn add_comment_rejects_anonymous_blank_and_unknown_articles() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Commented", &[]).await;
    let anonymous = app.gql(ADD, json!({ "slug": slug, "body": "hi" })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let blank = app
        .gql_as(Some(&author), ADD, json!({ "slug": slug, "body": "   " }))
        .await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT");
    assert!(names_field(&blank, "body"));
    let missing = app
        .gql_as(
            Some(&author),
            ADD,
            json!({ "slug": "missing", "body": "hi" }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    let count = app.gql(COMMENTS, json!({ "slug": slug })).await;
    assert_eq!(data(&count)["article"]["comments"]["totalCount"], 0);
}

#[tokio::test]
async fn comments_page_oldest_first() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Busy", &[]).await;
    for n in 0..7 {
        app.add_comment(&author, &slug, &format!("comment {n}"))
            .await;
    }
    let mut bodies = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let response = app
            .gql(
                COMMENTS,
                json!({ "slug": slug, "first": 3, "after": after }),
            )
            .await;
        let comments = &data(&response)["article"]["comments"];
        assert_eq!(comments["totalCount"], 7);
        for edge in comments["edges"].as_array().expect("edges") {
            bodies.push(edge["node"]["body"].as_str().expect("body").to_owned());
        }
        if comments["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = comments["pageInfo"]["endCursor"].clone();
    }
    let expected: Vec<String> = (0..7).map(|n| format!("comment {n}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn only_the_author_may_delete_a_comment() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let other = app.register("other").await;
    let slug = app.create_article(&author, "Commented", &[]).await;
    let id = app.add_comment(&author, &slug, "mine").await;

    let forbidden = app.gql_as(Some(&other), DELETE, json!({ "id": id })).await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let anonymous = app.gql(DELETE, json!({ "id": id })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let invalid = app
        .gql_as(Some(&author), DELETE, json!({ "id": "garbage" }))
        .await;
    assert_eq!(error_code(&invalid), "BAD_USER_INPUT");

    let deleted = app.gql_as(Some(&author), DELETE, json!({ "id": id })).await;
    assert_eq!(data(&deleted)["deleteComment"]["deletedId"], id);
    let again = app.gql_as(Some(&author), DELETE, json!({ "id": id })).await;
    assert_eq!(error_code(&again), "NOT_FOUND");
    let count = app.gql(COMMENTS, json!({ "slug": slug })).await;
    assert_eq!(data(&count)["article"]["comments"]["totalCount"], 0);
}
