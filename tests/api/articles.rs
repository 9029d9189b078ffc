//! Articles: writing, editing, deleting, favorites, lists, filters, pagination and the feed.

use serde_json::{Value, json};

use crate::helpers::{TestApp, data, error_code, spawn_app};

const ARTICLE: &str = "query($slug: String!) { article(slug: $slug) { id slug title description body tags { name } createdAt updatedAt favorited favoritesCount author { username } comments { totalCount } } }";
const CREATE: &str = "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug title tags { name } createdAt updatedAt author { username } favorited favoritesCount } } }";
const UPDATE: &str = "mutation($slug: String!, $input: UpdateArticleInput!) { updateArticle(slug: $slug, input: $input) { article { slug title description body tags { name } createdAt updatedAt } } }";
const DELETE: &str = "mutation($slug: String!) { deleteArticle(slug: $slug) { deletedId } }";
const FAVORITE: &str = "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { favorited favoritesCount } } }";
const UNFAVORITE: &str = "mutation($slug: String!) { unfavoriteArticle(slug: $slug) { article { favorited favoritesCount } } }";
const LIST: &str = "query($first: Int, $after: String, $tag: String, $author: String, $favoritedBy: String) { articles(first: $first, after: $after, tag: $tag, author: $author, favoritedBy: $favoritedBy) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { slug } } nodes { title } } }";

fn input(title: &str, tags: Value) -> Value {
    json!({ "input": { "title": title, "description": "A description", "body": "A body", "tags": tags } })
}

async fn article(app: &TestApp, token: Option<&str>, slug: &str) -> Value {
    let response = app.gql_as(token, ARTICLE, json!({ "slug": slug })).await;
    data(&response)["article"].clone()
}

fn titles(connection: &Value) -> Vec<String> {
    connection["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| node["title"].as_str().expect("title").to_owned())
        .collect()
}

async fn list(app: &TestApp, token: Option<&str>, variables: Value) -> Value {
    let response = app.gql_as(token, LIST, variables).await;
    data(&response)["articles"].clone()
}

fn is_rfc3339_millis_utc(text: &str) -> bool {
    // 2026-11-24T12:00:00.000Z
    text.len() == 24
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

#[tokio::test]
async fn create_article_returns_it_with_a_slug_and_sorted_unique_tags() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    let response = app
        .gql_as(
            Some(&token),
            CREATE,
            input(
                "How to Train Your Dragon",
                json!(["dragons", " training ", "dragons", "angular"]),
            ),
        )
        .await;
    let created = &data(&response)["createArticle"]["article"];
    assert_eq!(created["slug"], "how-to-train-your-dragon");
    assert_eq!(
        created["tags"],
        json!([{ "name": "angular" }, { "name": "dragons" }, { "name": "training" }])
    );
    assert_eq!(created["author"]["username"], "author");
    assert_eq!(created["favorited"], false);
    assert_eq!(created["favoritesCount"], 0);
    let created_at = created["createdAt"].as_str().expect("createdAt");
    assert!(is_rfc3339_millis_utc(created_at), "{created_at}");
    assert_eq!(created["createdAt"], created["updatedAt"]);

    let read = article(&app, None, "how-to-train-your-dragon").await;
    assert_eq!(read["title"], "How to Train Your Dragon");
    assert_eq!(read["body"], "A body");
    assert_eq!(read["description"], "A description");
}

#[tokio::test]
async fn create_article_without_tags_has_none() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    let response = app
        .gql_as(
            Some(&token),
            CREATE,
            json!({ "input": { "title": "No tags", "description": "d", "body": "b" } }),
        )
        .await;
    assert_eq!(
        data(&response)["createArticle"]["article"]["tags"],
        json!([])
    );
}

#[tokio::test]
async fn create_article_needs_a_signed_in_user_and_non_blank_fields() {
    let app = spawn_app().await;
    let anonymous = app.gql(CREATE, input("Title", json!([]))).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    let token = app.register("author").await;
    let blank = app
        .gql_as(
            Some(&token),
            CREATE,
            json!({ "input": { "title": " ", "description": "", "body": "\n", "tags": ["x"] } }),
        )
        .await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT");
    let fields = &blank["errors"][0]["extensions"]["fields"];
    for field in ["title", "description", "body"] {
        assert!(fields[field].is_string(), "{field}: {fields}");
    }
    let blank_tag = app
        .gql_as(Some(&token), CREATE, input("Title", json!(["ok", "  "])))
        .await;
    assert_eq!(error_code(&blank_tag), "BAD_USER_INPUT");

    let everything = list(&app, None, json!({})).await;
    assert_eq!(
        everything["totalCount"], 0,
        "failed creations leave nothing behind"
    );
    let tags = app.gql("{ tags { totalCount } }", json!({})).await;
    assert_eq!(data(&tags)["tags"]["totalCount"], 0);
}

#[tokio::test]
async fn equal_titles_get_distinct_slugs() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    let first = app.create_article(&token, "Same Title", &[]).await;
    let second = app.create_article(&token, "Same Title", &[]).await;
    let third = app.create_article(&token, "same title!", &[]).await;
    assert_eq!(first, "same-title");
    assert_ne!(first, second);
    assert_ne!(second, third);
    assert!(second.starts_with("same-title-"));
    for slug in [&first, &second, &third] {
        assert_eq!(article(&app, None, slug).await["slug"], slug.as_str());
    }
}

#[tokio::test]
async fn update_article_follows_the_title_with_the_slug_and_keeps_created_at() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    let slug = app.create_article(&token, "Old Title", &["a", "b"]).await;
    let before = article(&app, None, &slug).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let response = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "slug": slug, "input": { "title": "New Title", "body": "New body" } }),
        )
        .await;
    let updated = &data(&response)["updateArticle"]["article"];
    assert_eq!(updated["slug"], "new-title");
    assert_eq!(updated["title"], "New Title");
    assert_eq!(updated["body"], "New body");
    assert_eq!(updated["description"], before["description"]);
    assert_eq!(
        updated["tags"],
        json!([{ "name": "a" }, { "name": "b" }]),
        "tags left out stay"
    );
    assert_eq!(updated["createdAt"], before["createdAt"]);
    assert_ne!(updated["updatedAt"], before["updatedAt"]);
    assert!(
        article(&app, None, &slug).await.is_null(),
        "the old slug is gone"
    );

    let retagged = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "slug": "new-title", "input": { "tags": ["c"] } }),
        )
        .await;
    assert_eq!(
        data(&retagged)["updateArticle"]["article"]["tags"],
        json!([{ "name": "c" }])
    );
    let cleared = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "slug": "new-title", "input": { "tags": [] } }),
        )
        .await;
    assert_eq!(
        data(&cleared)["updateArticle"]["article"]["tags"],
        json!([])
    );
}

#[tokio::test]
async fn only_the_author_may_update_or_delete_an_article() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let other = app.register("other").await;
    let slug = app.create_article(&author, "Mine", &[]).await;

    let update = app
        .gql_as(
            Some(&other),
            UPDATE,
            json!({ "slug": slug, "input": { "title": "Stolen" } }),
        )
        .await;
    assert_eq!(error_code(&update), "FORBIDDEN");
    let delete = app
        .gql_as(Some(&other), DELETE, json!({ "slug": slug }))
        .await;
    assert_eq!(error_code(&delete), "FORBIDDEN");
    assert_eq!(article(&app, None, &slug).await["title"], "Mine");

    let anonymous_update = app
        .gql(UPDATE, json!({ "slug": slug, "input": { "title": "x" } }))
        .await;
    assert_eq!(error_code(&anonymous_update), "UNAUTHENTICATED");
    let anonymous_delete = app.gql(DELETE, json!({ "slug": slug })).await;
    assert_eq!(error_code(&anonymous_delete), "UNAUTHENTICATED");

    let missing_update = app
        .gql_as(
            Some(&author),
            UPDATE,
            json!({ "slug": "missing", "input": { "title": "x" } }),
        )
        .await;
    assert_eq!(error_code(&missing_update), "NOT_FOUND");
    let missing_delete = app
        .gql_as(Some(&author), DELETE, json!({ "slug": "missing" }))
        .await;
    assert_eq!(error_code(&missing_delete), "NOT_FOUND");
    let blank = app
        .gql_as(
            Some(&author),
            UPDATE,
            json!({ "slug": slug, "input": { "title": "  " } }),
        )
        .await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT");
}

#[tokio::test]
async fn deleting_an_article_deletes_its_comments_favorites_and_tag_links() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Doomed", &["gone"]).await;
    let comment_id = app.add_comment(&reader, &slug, "first!").await;
    data(
        &app.gql_as(Some(&reader), FAVORITE, json!({ "slug": slug }))
            .await,
    );
    let article_id = article(&app, None, &slug).await["id"].clone();

    let response = app
        .gql_as(Some(&author), DELETE, json!({ "slug": slug }))
        .await;
    assert_eq!(data(&response)["deleteArticle"]["deletedId"], article_id);

    assert!(article(&app, None, &slug).await.is_null());
    let node = app
        .gql(
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": comment_id }),
        )
        .await;
    assert!(
        data(&node)["node"].is_null(),
        "the comment went with the article"
    );
    let favorites = app
        .gql(
            r#"{ user(username: "reader") { favoriteArticles { totalCount } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data(&favorites)["user"]["favoriteArticles"]["totalCount"],
        0
    );
    let tags = app
        .gql("{ tags { totalCount nodes { name } } }", json!({}))
        .await;
    assert_eq!(data(&tags)["tags"]["totalCount"], 0);
}

#[tokio::test]
async fn favorite_and_unfavorite_are_idempotent() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Liked", &[]).await;
    for _ in 0..2 {
        let response = app
            .gql_as(Some(&reader), FAVORITE, json!({ "slug": slug }))
            .await;
        assert_eq!(
            data(&response)["favoriteArticle"]["article"],
            json!({ "favorited": true, "favoritesCount": 1 })
        );
    }
    assert_eq!(
        article(&app, Some(&author), &slug).await["favorited"],
        false
    );
    assert_eq!(article(&app, None, &slug).await["favoritesCount"], 1);
    for _ in 0..2 {
        let response = app
            .gql_as(Some(&reader), UNFAVORITE, json!({ "slug": slug }))
            .await;
        assert_eq!(
            data(&response)["unfavoriteArticle"]["article"],
            json!({ "favorited": false, "favoritesCount": 0 })
        );
    }
}

#[tokio::test]
async fn favoriting_needs_a_signed_in_user_and_an_existing_article() {
    let app = spawn_app().await;
    let reader = app.register("reader").await;
    for query in [FAVORITE, UNFAVORITE] {
        let anonymous = app.gql(query, json!({ "slug": "x" })).await;
        assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
        let missing = app
            .gql_as(Some(&reader), query, json!({ "slug": "missing" }))
            .await;
        assert_eq!(error_code(&missing), "NOT_FOUND");
    }
}

#[tokio::test]
async fn an_unknown_slug_reads_as_null() {
    let app = spawn_app().await;
    assert!(article(&app, None, "nothing-here").await.is_null());
}

#[tokio::test]
async fn articles_page_newest_first_with_stable_cursors() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    for n in 0..25 {
        app.create_article(&token, &format!("Article {n:02}"), &[])
            .await;
    }
    let expected: Vec<String> = (0..25).rev().map(|n| format!("Article {n:02}")).collect();

    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = list(&app, None, json!({ "first": 10, "after": after })).await;
        let total = if seen.len() < 10 { 25 } else { 26 };
        assert_eq!(page["totalCount"], total);
        seen.extend(titles(&page));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
        if seen.len() == 10 {
            // A new article must not shift the pages that follow an existing cursor.
            app.create_article(&token, "Newest", &[]).await;
        }
    }
    assert_eq!(seen, expected);

    let default_page = list(&app, None, json!({})).await;
    assert_eq!(
        titles(&default_page).len(),
        20,
        "the default page size is 20"
    );
    assert_eq!(titles(&default_page)[0], "Newest");
    let edges = default_page["edges"].as_array().expect("edges");
    assert_eq!(
        edges.last().expect("an edge")["cursor"],
        default_page["pageInfo"]["endCursor"]
    );
    let empty = list(&app, None, json!({ "first": 0 })).await;
    assert_eq!(titles(&empty).len(), 0);
    assert_eq!(empty["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn page_arguments_are_validated() {
    let app = spawn_app().await;
    for variables in [
        json!({ "first": 101 }),
        json!({ "first": -1 }),
        json!({ "after": "not a cursor" }),
    ] {
        let response = app.gql(LIST, variables.clone()).await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{variables}");
    }
    let hundred = app.gql(LIST, json!({ "first": 100 })).await;
    data(&hundred);
}

#[tokio::test]
async fn filters_by_tag_author_and_favorites_alone_and_combined() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.create_article(&alice, "Alice Rust", &["rust"]).await;
    let alice_go = app.create_article(&alice, "Alice Go", &["go"]).await;
    let bob_rust = app.create_article(&bob, "Bob Rust", &["rust"]).await;
    app.create_article(&bob, "Bob Go", &["go"]).await;
    for slug in [&alice_go, &bob_rust] {
        data(
            &app.gql_as(Some(&bob), FAVORITE, json!({ "slug": slug }))
                .await,
        );
    }

    let cases = [
        (json!({ "tag": "rust" }), vec!["Bob Rust", "Alice Rust"]),
        (json!({ "author": "ALICE" }), vec!["Alice Go", "Alice Rust"]),
        (
            json!({ "favoritedBy": "bob" }),
            vec!["Bob Rust", "Alice Go"],
        ),
        (
            json!({ "tag": "rust", "author": "alice" }),
            vec!["Alice Rust"],
        ),
        (
            json!({ "tag": "go", "favoritedBy": "bob" }),
            vec!["Alice Go"],
        ),
        (
            json!({ "tag": "rust", "author": "bob", "favoritedBy": "bob" }),
            vec!["Bob Rust"],
        ),
        (json!({ "author": "alice", "favoritedBy": "alice" }), vec![]),
        (json!({ "tag": "nope" }), vec![]),
        (json!({ "author": "nobody" }), vec![]),
    ];
    for (variables, expected) in cases {
        let page = list(&app, None, variables.clone()).await;
        assert_eq!(titles(&page), expected, "{variables}");
        assert_eq!(page["totalCount"], expected.len(), "{variables}");
    }
}

#[tokio::test]
async fn the_feed_holds_articles_of_followed_users_newest_first() {
    let app = spawn_app().await;
    let reader = app.register("reader").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.create_article(&alice, "Alice 1", &[]).await;
    app.create_article(&bob, "Bob 1", &[]).await;
    app.create_article(&alice, "Alice 2", &[]).await;
    app.create_article(&reader, "Own", &[]).await;
    let feed = "query($after: String) { feed(first: 1, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { title } } }";

    let empty = app.gql_as(Some(&reader), feed, json!({})).await;
    assert_eq!(data(&empty)["feed"]["totalCount"], 0);

    data(
        &app.gql_as(
            Some(&reader),
            "mutation { followUser(username: \"alice\") { user { id } } }",
            json!({}),
        )
        .await,
    );
    let first = app.gql_as(Some(&reader), feed, json!({})).await;
    let first = &data(&first)["feed"];
    assert_eq!(first["totalCount"], 2);
    assert_eq!(titles(first), vec!["Alice 2"]);
    let second = app
        .gql_as(
            Some(&reader),
            feed,
            json!({ "after": first["pageInfo"]["endCursor"] }),
        )
        .await;
    let second = &data(&second)["feed"];
    assert_eq!(titles(second), vec!["Alice 1"]);
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    let anonymous = app.gql(feed, json!({})).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_users_articles_and_favorites_are_connections() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    for n in 0..3 {
        let slug = app.create_article(&alice, &format!("A{n}"), &[]).await;
        data(
            &app.gql_as(Some(&alice), FAVORITE, json!({ "slug": slug }))
                .await,
        );
    }
    let query = r#"query($after: String) { user(username: "alice") { articles(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { title } } favoriteArticles(first: 5) { totalCount nodes { title } } } }"#;
    let response = app.gql(query, json!({})).await;
    let user = &data(&response)["user"];
    assert_eq!(user["articles"]["totalCount"], 3);
    assert_eq!(titles(&user["articles"]), vec!["A2", "A1"]);
    assert_eq!(user["articles"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(user["favoriteArticles"]["totalCount"], 3);
    assert_eq!(titles(&user["favoriteArticles"]), vec!["A2", "A1", "A0"]);
    let next = app
        .gql(
            query,
            json!({ "after": user["articles"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(titles(&data(&next)["user"]["articles"]), vec!["A0"]);
}

#[tokio::test]
async fn hostile_text_is_stored_and_returned_verbatim() {
    let app = spawn_app().await;
    let token = app.register("author").await;
    let long_body = "Ω≈ç√ 🦀 ".repeat(1_250); // 10 kB of multi-byte text
    let hostile = [
        "'; DROP TABLE users; --",
        "<script>alert('xss')</script>",
        "emoji 🎉🦀👩‍💻 and \"quotes\" \\ backslashes",
        long_body.as_str(),
    ];
    for text in hostile {
        // Titles and descriptions are limited to 500 characters; bodies and comments are not.
        let short: String = text.chars().take(500).collect();
        let tag: String = text.chars().take(30).collect();
        let response = app
            .gql_as(Some(&token), CREATE, json!({ "input": { "title": short, "description": short, "body": text, "tags": [tag] } }))
            .await;
        let slug = data(&response)["createArticle"]["article"]["slug"]
            .as_str()
            .expect("slug")
            .to_owned();
        let read = article(&app, None, &slug).await;
        assert_eq!(read["title"], short);
        assert_eq!(read["description"], short);
        assert_eq!(read["body"], text);
        assert_eq!(read["tags"][0]["name"], tag.trim());
        let comment_id = app.add_comment(&token, &slug, text).await;
        let comment = app
            .gql(
                "query($id: ID!) { node(id: $id) { ... on Comment { body } } }",
                json!({ "id": comment_id }),
            )
            .await;
        assert_eq!(data(&comment)["node"]["body"], text);
    }
    let bio = app
        .gql_as(
            Some(&token),
            "mutation($bio: String!) { updateViewer(input: { bio: $bio }) { user { bio } } }",
            json!({ "bio": hostile[0] }),
        )
        .await;
    assert_eq!(data(&bio)["updateViewer"]["user"]["bio"], hostile[0]);
    let users = app
        .gql(r#"{ user(username: "author") { username } }"#, json!({}))
        .await;
    assert_eq!(
        data(&users)["user"]["username"],
        "author",
        "the users table is still there"
    );
}
