//! Revocable tokens: changing the password or email needs the current password; a password change
//! and `signOutEverywhere` revoke every token issued before, on every instance.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, data, error_code, names_field, spawn_app, spawn_app_with};

const UPDATE: &str =
    "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { token user { email } } }";
const VIEWER: &str = "{ viewer { username } }";

async fn update(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql_as(Some(token), UPDATE, json!({ "input": input }))
        .await
}

#[tokio::test]
async fn changing_the_password_or_email_needs_the_current_password() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    for input in [
        json!({ "password": "a-new-password" }),
        json!({ "email": "new@example.com" }),
        json!({ "password": "a-new-password", "currentPassword": "not-the-password" }),
        json!({ "email": "new@example.com", "currentPassword": "not-the-password" }),
    ] {
        let response = update(&app, &token, input.clone()).await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{input}: {response}"
        );
        assert!(names_field(&response, "currentPassword"), "{response}");
    }
    // Nothing changed: the old password and email still sign in.
    let login = app
        .gql(
            "mutation($input: LoginInput!) { login(input: $input) { token } }",
            json!({ "input": { "email": "alice@example.com", "password": PASSWORD } }),
        )
        .await;
    data(&login);
    let response = update(
        &app,
        &token,
        json!({ "email": "new@example.com", "currentPassword": PASSWORD }),
    )
    .await;
    assert_eq!(
        data(&response)["updateViewer"]["user"]["email"],
        "new@example.com"
    );
    // An email change alone does not sign anyone out.
    data(&app.gql_as(Some(&token), VIEWER, json!({})).await);
}

#[tokio::test]
async fn a_password_change_revokes_every_earlier_token_on_every_instance() {
    let app = spawn_app_with(|config| config.auth.revocation_check_secs = 1).await;
    let other = app.sibling().await;
    let token = app.register("alice").await;
    // The other instance knows the token as valid.
    data(&other.gql_as(Some(&token), VIEWER, json!({})).await);

    let response = update(
        &app,
        &token,
        json!({ "password": "a-new-password", "currentPassword": PASSWORD }),
    )
    .await;
    let fresh = data(&response)["updateViewer"]["token"]
        .as_str()
        .expect("a fresh token")
        .to_owned();
    let old = app.gql_as(Some(&token), VIEWER, json!({})).await;
    assert_eq!(
        error_code(&old),
        "UNAUTHENTICATED",
        "at once on the serving instance"
    );
    assert_eq!(
        data(&app.gql_as(Some(&fresh), VIEWER, json!({})).await)["viewer"]["username"],
        "alice"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let elsewhere = other.gql_as(Some(&token), VIEWER, json!({})).await;
    assert_eq!(
        error_code(&elsewhere),
        "UNAUTHENTICATED",
        "within the check interval elsewhere"
    );
    data(&other.gql_as(Some(&fresh), VIEWER, json!({})).await);
}

#[tokio::test]
async fn sign_out_everywhere_revokes_every_token() {
    let app = spawn_app().await;
    let first = app.register("alice").await;
    let second = app
        .gql(
            "mutation($input: LoginInput!) { login(input: $input) { token } }",
            json!({ "input": { "email": "alice@example.com", "password": PASSWORD } }),
        )
        .await;
    let second = data(&second)["login"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = app
        .gql_as(
            Some(&first),
            "mutation { signOutEverywhere { token user { username } } }",
            json!({}),
        )
        .await;
    let payload = &data(&response)["signOutEverywhere"];
    assert_eq!(payload["user"]["username"], "alice");
    let fresh = payload["token"].as_str().expect("token").to_owned();
    for revoked in [&first, &second] {
        let response = app.gql_as(Some(revoked), VIEWER, json!({})).await;
        assert_eq!(error_code(&response), "UNAUTHENTICATED");
    }
    data(&app.gql_as(Some(&fresh), VIEWER, json!({})).await);
    let anonymous = app
        .gql("mutation { signOutEverywhere { token } }", json!({}))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}
