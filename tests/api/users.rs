//! Registration, login, tokens, the viewer's settings, profiles and follows.

use serde_json::json;

use crate::helpers::{PASSWORD, data, error_code, names_field, spawn_app};

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token user { id username email bio image } } }";
const LOGIN: &str =
    "mutation($input: LoginInput!) { login(input: $input) { token user { username email } } }";
const VIEWER: &str = "{ viewer { username email bio image following followersCount } }";
const UPDATE: &str = "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { token user { username email bio image } } }";
const FOLLOW: &str = "mutation($username: String!) { followUser(username: $username) { user { username following followersCount } } }";
const UNFOLLOW: &str = "mutation($username: String!) { unfollowUser(username: $username) { user { username following followersCount } } }";

fn registration(username: &str, email: &str, password: &str) -> serde_json::Value {
    json!({ "input": { "username": username, "email": email, "password": password } })
}

#[tokio::test]
async fn register_returns_a_token_and_the_user_who_sees_their_email() {
    let app = spawn_app().await;
    let response = app
        .gql(REGISTER, registration("jake", "jake@jake.jake", PASSWORD))
        .await;
    let payload = &data(&response)["register"];
    assert_eq!(payload["user"]["username"], "jake");
    assert!(payload["user"]["bio"].is_null());
    let token = payload["token"].as_str().expect("a token");

    let viewer = app.gql_as(Some(token), VIEWER, json!({})).await;
    assert_eq!(data(&viewer)["viewer"]["username"], "jake");
    assert_eq!(data(&viewer)["viewer"]["email"], "jake@jake.jake");
}

#[tokio::test]
async fn register_rejects_invalid_fields_and_creates_nothing() {
    let app = spawn_app().await;
    let response = app
        .gql(REGISTER, registration("  ", "not-an-email", "short"))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let fields = &response["errors"][0]["extensions"]["fields"];
    assert!(fields["username"].is_string(), "{fields}");
    assert!(fields["email"].is_string(), "{fields}");
    assert!(fields["password"].is_string(), "{fields}");

    let login = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "not-an-email", "password": "short" } }),
        )
        .await;
    assert_eq!(error_code(&login), "UNAUTHENTICATED");
}

#[tokio::test]
async fn register_enforces_password_length_bounds() {
    let app = spawn_app().await;
    for (n, (password, ok)) in [
        ("a".repeat(7), false),
        ("a".repeat(8), true),
        ("a".repeat(64), true),
        ("a".repeat(65), false),
    ]
    .into_iter()
    .enumerate()
    {
        let response = app
            .gql(
                REGISTER,
                registration(
                    &format!("user{n}"),
                    &format!("user{n}@example.com"),
                    &password,
                ),
            )
            .await;
        if ok {
            data(&response);
        } else {
            assert_eq!(
                error_code(&response),
                "BAD_USER_INPUT",
                "length {}",
                password.len()
            );
            assert!(names_field(&response, "password"));
        }
    }
}

#[tokio::test]
async fn register_rejects_a_duplicate_username_in_any_case() {
    let app = spawn_app().await;
    app.register("alice").await;
    let response = app
        .gql(
            REGISTER,
            registration("ALICE", "other@example.com", PASSWORD),
        )
        .await;
    assert_eq!(error_code(&response), "CONFLICT");
    assert!(names_field(&response, "username"));
    assert!(response["data"].is_null());
}

#[tokio::test]
async fn register_rejects_a_duplicate_email_in_any_case() {
    let app = spawn_app().await;
    app.register("alice").await;
    let response = app
        .gql(REGISTER, registration("bob", "Alice@Example.COM", PASSWORD))
        .await;
    assert_eq!(error_code(&response), "CONFLICT");
    assert!(names_field(&response, "email"));
}

#[tokio::test]
async fn login_accepts_the_email_in_any_case() {
    let app = spawn_app().await;
    app.register("alice").await;
    let response = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "ALICE@example.com", "password": PASSWORD } }),
        )
        .await;
    let login = &data(&response)["login"];
    assert_eq!(login["user"]["username"], "alice");
    let viewer = app.gql_as(login["token"].as_str(), VIEWER, json!({})).await;
    assert_eq!(data(&viewer)["viewer"]["username"], "alice");
}

#[tokio::test]
async fn login_answers_a_wrong_password_and_an_unknown_email_alike() {
    let app = spawn_app().await;
    app.register("alice").await;
    let wrong_password = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "alice@example.com", "password": "wrong-password" } }),
        )
        .await;
    let unknown_email = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "nobody@example.com", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(error_code(&wrong_password), "UNAUTHENTICATED");
    assert_eq!(error_code(&unknown_email), "UNAUTHENTICATED");
    assert_eq!(
        wrong_password["errors"][0]["message"],
        unknown_email["errors"][0]["message"]
    );
}

#[tokio::test]
async fn login_rejects_blank_fields() {
    let app = spawn_app().await;
    let response = app
        .gql(LOGIN, json!({ "input": { "email": " ", "password": "" } }))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let fields = &response["errors"][0]["extensions"]["fields"];
    assert!(
        fields["email"].is_string() && fields["password"].is_string(),
        "{fields}"
    );
}

#[tokio::test]
async fn a_present_but_invalid_token_is_unauthenticated_never_anonymous() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    let forged = conduit::auth::Tokens::new(
        b"another-secret-that-is-long-enough-000000",
        std::time::Duration::from_secs(60),
    )
    .issue(1, 0)
    .expect("token");
    for header in [
        "Bearer not-a-token",
        "Bearer ",
        "Basic abc",
        &format!("Bearer {forged}"),
    ] {
        let response = app
            .gql_with_authorization(header, "{ viewer { username } }")
            .await;
        assert_eq!(
            error_code(&response),
            "UNAUTHENTICATED",
            "header {header:?}: {response}"
        );
        assert_eq!(response["extensions"]["cost"]["requestedQueryCost"], 0);
    }
    let with_token_prefix = app
        .gql_with_authorization(&format!("Token {token}"), "{ viewer { username } }")
        .await;
    assert_eq!(data(&with_token_prefix)["viewer"]["username"], "alice");
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let app = spawn_app().await;
    app.register("alice").await;
    // Signed with the app's secret, for an existing user, but expired a minute ago.
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({ "sub": "1", "iat": now - 3600, "exp": now - 60 });
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::JWT_SECRET.as_bytes()),
    )
    .expect("token");
    let response = app.gql_as(Some(&expired), VIEWER, json!({})).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");

    let fresh = conduit::auth::Tokens::new(
        crate::helpers::JWT_SECRET.as_bytes(),
        std::time::Duration::from_secs(60),
    )
    .issue(1, 0)
    .expect("token");
    let response = app.gql_as(Some(&fresh), VIEWER, json!({})).await;
    assert_eq!(
        data(&response)["viewer"]["username"],
        "alice",
        "the same token unexpired works"
    );
}

#[tokio::test]
async fn the_viewer_is_null_when_anonymous() {
    let app = spawn_app().await;
    let response = app.gql(VIEWER, json!({})).await;
    assert!(data(&response)["viewer"].is_null());
}

#[tokio::test]
async fn email_is_hidden_from_everyone_but_the_user() {
    let app = spawn_app().await;
    app.register("alice").await;
    let bob = app.register("bob").await;
    let query = r#"{ user(username: "alice") { username email } }"#;
    let anonymous = app.gql(query, json!({})).await;
    assert_eq!(data(&anonymous)["user"]["username"], "alice");
    assert!(data(&anonymous)["user"]["email"].is_null());
    let as_bob = app.gql_as(Some(&bob), query, json!({})).await;
    assert!(data(&as_bob)["user"]["email"].is_null());
}

#[tokio::test]
async fn user_lookup_ignores_case_and_returns_null_for_nobody() {
    let app = spawn_app().await;
    app.register("Alice").await;
    let found = app
        .gql(r#"{ user(username: "aLiCe") { username } }"#, json!({}))
        .await;
    assert_eq!(data(&found)["user"]["username"], "Alice");
    let missing = app
        .gql(r#"{ user(username: "nobody") { username } }"#, json!({}))
        .await;
    assert!(data(&missing)["user"].is_null());
}

#[tokio::test]
async fn update_viewer_changes_what_is_given_and_empty_strings_clear() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    let response = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "input": { "bio": "I like tests", "image": "https://example.com/a.png" } }),
        )
        .await;
    let user = &data(&response)["updateViewer"]["user"];
    assert_eq!(user["bio"], "I like tests");
    assert_eq!(user["image"], "https://example.com/a.png");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");

    let cleared = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "input": { "bio": "", "image": "" } }),
        )
        .await;
    let user = &data(&cleared)["updateViewer"]["user"];
    assert!(user["bio"].is_null());
    assert!(user["image"].is_null());
}

#[tokio::test]
async fn update_viewer_rejects_blank_fields_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    for input in [
        json!({ "email": "  " }),
        json!({ "username": "" }),
        json!({ "email": "nope", "bio": "new bio" }),
    ] {
        let response = app
            .gql_as(Some(&token), UPDATE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{input}");
    }
    let viewer = app.gql_as(Some(&token), VIEWER, json!({})).await;
    assert_eq!(data(&viewer)["viewer"]["email"], "alice@example.com");
    assert!(data(&viewer)["viewer"]["bio"].is_null());
}

#[tokio::test]
async fn update_viewer_needs_a_signed_in_user() {
    let app = spawn_app().await;
    let response = app.gql(UPDATE, json!({ "input": { "bio": "x" } })).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
}

#[tokio::test]
async fn update_viewer_rejects_a_taken_username() {
    let app = spawn_app().await;
    app.register("bob").await;
    let token = app.register("alice").await;
    let response = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "input": { "username": "BOB", "bio": "changed" } }),
        )
        .await;
    assert_eq!(error_code(&response), "CONFLICT");
    assert!(names_field(&response, "username"));
    let viewer = app.gql_as(Some(&token), VIEWER, json!({})).await;
    assert_eq!(data(&viewer)["viewer"]["username"], "alice");
    assert!(
        data(&viewer)["viewer"]["bio"].is_null(),
        "a failed mutation changes nothing"
    );
}

/// A token issued by the release before the token cryptography moved from jsonwebtoken's
/// RustCrypto backend to `ring` (HS256 with the tests' secret, for the first user, version 0,
/// expiring in 2036): it still signs its user in, and a changed signature does not.
#[tokio::test]
async fn tokens_issued_before_the_cryptography_moved_stay_valid() {
    const ISSUED_BEFORE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiaWF0IjoxNzk2MzE4Nzg2LCJleHAiOjIxMTE2Nzg3ODYsInZlciI6MH0.9FKef3wu_wxsnjeO5ujVf6YMIvY9upYiGGh_gvU9oMc";
    let app = spawn_app().await;
    app.register("legacy").await;
    let viewer = app
        .gql_as(Some(ISSUED_BEFORE), "{ viewer { username } }", json!({}))
        .await;
    assert_eq!(data(&viewer)["viewer"]["username"], "legacy", "{viewer}");
    let forged = format!("{}A", &ISSUED_BEFORE[..ISSUED_BEFORE.len() - 1]);
    let refused = app
        .gql_as(Some(&forged), "{ viewer { username } }", json!({}))
        .await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED");
}

#[tokio::test]
async fn old_tokens_stay_valid_after_a_username_change() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    let response = app
        .gql_as(
            Some(&token),
            UPDATE,
            json!({ "input": { "username": "alice2" } }),
        )
        .await;
    assert_eq!(
        data(&response)["updateViewer"]["user"]["username"],
        "alice2"
    );
    let viewer = app.gql_as(Some(&token), VIEWER, json!({})).await;
    assert_eq!(data(&viewer)["viewer"]["username"], "alice2");
    let login = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "alice@example.com", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(data(&login)["login"]["user"]["username"], "alice2");
}

#[tokio::test]
async fn follow_and_unfollow_are_idempotent() {
    let app = spawn_app().await;
    app.register("celeb").await;
    let fan = app.register("fan").await;
    for _ in 0..2 {
        let response = app
            .gql_as(Some(&fan), FOLLOW, json!({ "username": "celeb" }))
            .await;
        let user = &data(&response)["followUser"]["user"];
        assert_eq!(user["following"], true);
        assert_eq!(user["followersCount"], 1);
    }
    let profile = app
        .gql_as(
            Some(&fan),
            r#"{ user(username: "celeb") { following followersCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data(&profile)["user"]["following"], true);
    let anonymous = app
        .gql(r#"{ user(username: "celeb") { following } }"#, json!({}))
        .await;
    assert_eq!(data(&anonymous)["user"]["following"], false);

    for _ in 0..2 {
        let response = app
            .gql_as(Some(&fan), UNFOLLOW, json!({ "username": "celeb" }))
            .await;
        let user = &data(&response)["unfollowUser"]["user"];
        assert_eq!(user["following"], false);
        assert_eq!(user["followersCount"], 0);
    }
}

#[tokio::test]
async fn following_rejects_yourself_unknown_users_and_anonymous_callers() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let myself = app
        .gql_as(Some(&alice), FOLLOW, json!({ "username": "ALICE" }))
        .await;
    assert_eq!(error_code(&myself), "BAD_USER_INPUT");
    let unknown = app
        .gql_as(Some(&alice), FOLLOW, json!({ "username": "nobody" }))
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    let unknown_unfollow = app
        .gql_as(Some(&alice), UNFOLLOW, json!({ "username": "nobody" }))
        .await;
    assert_eq!(error_code(&unknown_unfollow), "NOT_FOUND");
    let anonymous = app.gql(FOLLOW, json!({ "username": "alice" })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let anonymous_unfollow = app.gql(UNFOLLOW, json!({ "username": "alice" })).await;
    assert_eq!(error_code(&anonymous_unfollow), "UNAUTHENTICATED");
}
