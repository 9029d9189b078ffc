//! Races: unique constraints and counters hold under simultaneous requests.

use serde_json::json;

use crate::helpers::{PASSWORD, data, error_code, names_field, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_simultaneous_registrations_of_one_username_let_exactly_one_win() {
    let app = spawn_app().await;
    let attempts = (0..10).map(|n| {
        app.gql(
            "mutation($input: RegisterInput!) { register(input: $input) { user { username } } }",
            json!({ "input": { "username": "popular", "email": format!("popular{n}@example.com"), "password": PASSWORD } }),
        )
    });
    let responses = futures::future::join_all(attempts).await;
    let wins = responses
        .iter()
        .filter(|response| response.get("errors").is_none())
        .count();
    assert_eq!(wins, 1, "{responses:?}");
    for response in responses
        .iter()
        .filter(|response| response.get("errors").is_some())
    {
        assert_eq!(error_code(response), "CONFLICT", "{response}");
        assert!(names_field(response, "username"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_users_favoriting_one_article_at_once_count_twenty() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Popular", &[]).await;
    let mut tokens = Vec::new();
    for n in 0..20 {
        tokens.push(app.register(&format!("fan{n}")).await);
    }
    let favorites = tokens.iter().map(|token| {
        app.gql_as(
            Some(token),
            "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { favorited } } }",
            json!({ "slug": slug }),
        )
    });
    for response in futures::future::join_all(favorites).await {
        assert_eq!(
            data(&response)["favoriteArticle"]["article"]["favorited"],
            true
        );
    }
    let count = app
        .gql(
            "query($slug: String!) { article(slug: $slug) { favoritesCount } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(data(&count)["article"]["favoritesCount"], 20);
}
