//! The number of SQL statements of a request depends on the query's depth, not on the rows it returns.

use serde_json::json;

use crate::helpers::{TestApp, data, spawn_app_with};

const NESTED: &str = "query($first: Int) { articles(first: $first) { edges { node { slug author { username following } tags { name } favoritesCount favorited comments(first: 10) { nodes { body author { username } } } } } } }";

/// SQL statements sent while answering the nested query for `first` articles as `token`'s user.
async fn statements_for(app: &TestApp, token: &str, first: usize) -> u64 {
    let before = app.statements.get();
    let response = app
        .gql_as(Some(token), NESTED, json!({ "first": first }))
        .await;
    let after = app.statements.get();
    let edges = data(&response)["articles"]["edges"]
        .as_array()
        .expect("edges")
        .len();
    assert_eq!(edges, first);
    after - before
}

#[tokio::test]
async fn a_nested_query_costs_the_same_statements_for_5_and_50_articles() {
    // 50 articles with 10 comments each cost 1,201 points: above the default limit, which is not
    // what this test is about.
    let app = spawn_app_with(|config| {
        config.limits.max_cost = 5_000;
        config.rate_limit.capacity = 10_000;
    })
    .await;
    let writers = [app.register("writer1").await, app.register("writer2").await];
    let reader = app.register("reader").await;
    for n in 0..50 {
        let token = &writers[n % 2];
        let slug = app
            .create_article(token, &format!("Article {n}"), &["tag-a", "tag-b"])
            .await;
        if n % 3 == 0 {
            app.add_comment(&writers[(n + 1) % 2], &slug, "a comment")
                .await;
            app.add_comment(&reader, &slug, "another comment").await;
        }
    }
    let five = statements_for(&app, &reader, 5).await;
    let fifty = statements_for(&app, &reader, 50).await;
    assert_eq!(
        five, fifty,
        "statements must not grow with the number of rows"
    );
    assert_eq!(
        fifty, 2,
        "the page with what it shows, then every article's comments"
    );
}
