//! SQL statements per request: exact, the same for any page size, and the same when the request
//! runs alone or beside eight others (batching does not depend on timing).

use serde_json::{Value, json};

use crate::helpers::{TestApp, data, spawn_app_with};

/// The benchmark's nested list (`articles_nested`), with the viewer's own fields too.
const NESTED: &str = "query($first: Int) { articles(first: $first) { nodes { title slug author { username bio following } tags { name } comments(first: 10) { nodes { body author { username } } } favoritesCount favorited } } }";
/// The benchmark's single article (`article_by_slug`).
const BY_SLUG: &str = "query($slug: String!) { article(slug: $slug) { slug title description body createdAt updatedAt author { username bio image } comments { nodes { body createdAt author { username } } } } }";
const FEED: &str = "query($first: Int) { feed(first: $first) { edges { node { title favorited favoritesCount tags { name } author { username following } } } } }";
const PROFILE: &str = "query($first: Int) { user(username: \"writer\") { username bio followersCount following articles(first: $first) { nodes { title favoritesCount favorited tags { name } } } } }";

/// An app with `rows` articles by `writer` (each with tags, 3 comments, favorited by the
/// reader), followed by the reader; the reader's token.
async fn seeded(rows: usize) -> (TestApp, String, Vec<String>) {
    let app = spawn_app_with(|config| {
        config.cache.enabled = false;
        config.rate_limit.enabled = false;
        config.limits.max_cost = 100_000;
    })
    .await;
    let writer = app.register("writer").await;
    let reader = app.register("reader").await;
    let mut slugs = Vec::new();
    for n in 0..rows {
        let slug = app
            .create_article(&writer, &format!("Article {n}"), &["alpha", "beta"])
            .await;
        for body in ["one", "two", "three"] {
            app.add_comment(if n % 2 == 0 { &writer } else { &reader }, &slug, body)
                .await;
        }
        app.gql_as(
            Some(&reader),
            "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { id } } }",
            json!({ "slug": slug }),
        )
        .await;
        slugs.push(slug);
    }
    app.gql_as(
        Some(&reader),
        "mutation { followUser(username: \"writer\") { user { id } } }",
        json!({}),
    )
    .await;
    (app, reader, slugs)
}

/// The statements one request takes alone, checked against nine identical requests at once.
async fn statements(app: &TestApp, token: &str, query: &str, variables: Value) -> u64 {
    let before = app.statements.get();
    let response = app.gql_as(Some(token), query, variables.clone()).await;
    data(&response);
    let alone = app.statements.get() - before;
    let before = app.statements.get();
    let requests = (0..9).map(|_| app.gql_as(Some(token), query, variables.clone()));
    for response in futures::future::join_all(requests).await {
        data(&response);
    }
    assert_eq!(
        app.statements.get() - before,
        9 * alone,
        "beside eight others, each request takes the statements it takes alone"
    );
    alone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_queries_take_the_same_statements_for_any_number_of_rows() {
    for rows in [2, 12, 50] {
        let (app, reader, slugs) = seeded(rows).await;
        let first = json!({ "first": rows });
        assert_eq!(
            statements(&app, &reader, NESTED, first.clone()).await,
            2,
            "articles_nested, {rows} rows: the page with authors, tags, counts and the viewer's \
             flags, then every article's comments with their authors"
        );
        assert_eq!(
            statements(&app, &reader, FEED, first.clone()).await,
            1,
            "feed, {rows} rows"
        );
        assert_eq!(
            statements(&app, &reader, PROFILE, first.clone()).await,
            2,
            "a profile and its articles, {rows} rows"
        );
        let slug = json!({ "slug": slugs[0] });
        assert_eq!(
            statements(&app, &reader, BY_SLUG, slug).await,
            2,
            "article_by_slug"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_takes_one_statement_per_level() {
    let (app, reader, slugs) = seeded(2).await;
    let ids = data(
        &app.gql(
            "query($slug: String!) { article(slug: $slug) { id author { id } comments { nodes { id } } } }",
            json!({ "slug": slugs[0] }),
        )
        .await,
    )["article"]
        .clone();
    let node = "query($id: ID!) { node(id: $id) { id ... on User { username followersCount } ... on Article { title author { username } } ... on Comment { body author { username } article { title } } } }";
    // Compiled: the node with what its selection needs in one statement; a comment's article is
    // the next level.
    for (id, expected) in [
        (&ids["author"]["id"], 1),
        (&ids["id"], 1),
        (&ids["comments"]["nodes"][0]["id"], 2),
    ] {
        assert_eq!(
            statements(&app, &reader, node, json!({ "id": id })).await,
            expected,
            "node({id})"
        );
    }
}
