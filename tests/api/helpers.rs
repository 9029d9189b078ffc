//! `spawn_app()`: the real application on port 0 with a database of its own, and request helpers.

use std::net::SocketAddr;
use std::sync::Arc;

use conduit::app::App;
use conduit::config::Config;
use conduit::db::StatementCounter;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The password every test user gets.
pub const PASSWORD: &str = "password123";

/// The secret that signs the tokens of test apps.
pub const JWT_SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

/// A database that lives as long as the test.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, database) = (admin_url.clone(), name.clone());
            // The test's runtime is busy dropping; drop the database from a runtime of our own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let admin = Database::connect(&admin_url)
                        .await
                        .map_err(std::io::Error::other)?;
                    admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                        ))
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok::<_, std::io::Error>(())
                })
            })
            .join();
            if let Ok(Err(err)) = dropped {
                eprintln!("could not drop test database {name}: {err}");
            }
        }
    }
}

/// A running application and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The separate `/metrics` listener, when configured.
    pub metrics_addr: Option<SocketAddr>,
    pub database_url: String,
    pub client: reqwest::Client,
    pub statements: StatementCounter,
    /// The settings the app started with.
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    _db: Arc<TestDb>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A fresh database for one test: its URL, and what drops it.
pub async fn test_database() -> (String, TestDb) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("conduit_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("TEST_DATABASE_URL must be reachable");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create the test database");
            let base = admin_url.split('?').next().unwrap_or(&admin_url);
            let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
            (
                format!("{server}/{name}"),
                TestDb::Postgres { admin_url, name },
            )
        }
        _ => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}", dir.path().join("conduit.db").display());
            (url, TestDb::Sqlite(dir))
        }
    }
}

/// Starts the real app on 127.0.0.1:0 with a fresh database (and Redis when `TEST_REDIS_URL` is set).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The Redis URL of the tests, when `TEST_REDIS_URL` is set.
pub fn test_redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Like [`spawn_app`], with settings changed by `configure` first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let (url, db) = test_database().await;
    let mut config = Config::with_database(url);
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.auth.jwt_secret = Some(JWT_SECRET.into());
    config.database.max_connections = 5;
    if let Some(redis_url) = test_redis_url() {
        config.redis.url = Some(redis_url);
        // Each test app has keys of its own; siblings share them.
        config.redis.prefix = format!("conduit-test:{}:", uuid::Uuid::new_v4().simple());
    }
    configure(&mut config);
    start(config, Arc::new(db)).await
}

async fn start(config: Config, db: Arc<TestDb>) -> TestApp {
    let app = App::build(&config).await.expect("the app starts");
    let addr = app.local_addr().expect("bound address");
    let metrics_addr = app.metrics_addr();
    let statements = app.state().statements.clone();
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        metrics_addr,
        database_url: config.database.url.clone(),
        client: reqwest::Client::new(),
        statements,
        config,
        shutdown: Some(shutdown),
        _db: db,
    }
}

impl TestApp {
    /// Sends the app the signal to stop (as SIGTERM does): it drains, then stops.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// A second instance of the same deployment: same database, same Redis keys, same settings.
    pub async fn sibling(&self) -> TestApp {
        start(self.config.clone(), self._db.clone()).await
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL operation, as `token`'s user when given; the JSON response.
    pub async fn gql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert!(
            response.status().is_success(),
            "HTTP status {}",
            response.status()
        );
        response.json().await.expect("a JSON response")
    }

    /// Sends `query` with `GET /graphql?query=...`; the raw HTTP response.
    pub async fn get_graphql(&self, query: &str) -> reqwest::Response {
        self.client
            .get(self.url("/graphql"))
            .query(&[("query", query)])
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs a GraphQL operation with a raw `Authorization` header value.
    pub async fn gql_with_authorization(&self, authorization: &str, query: &str) -> Value {
        self.client
            .post(self.url("/graphql"))
            .header("Authorization", authorization)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON response")
    }

    /// POSTs `body` (any JSON) to `/graphql` with `headers`; the raw HTTP response.
    pub async fn post_json(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(self.url("/graphql")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// `GET path`; the raw HTTP response.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path` on the admin listener (`CONDUIT_METRICS_LISTEN`, which the app must have); the
    /// raw HTTP response.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        let addr = self
            .metrics_addr
            .expect("the app has an admin listener (config.server.metrics_listen)");
        self.client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs raw bytes to `/graphql` with `content_type`; the raw HTTP response.
    pub async fn post_bytes(&self, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.client
            .post(self.url("/graphql"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs a GraphQL operation as `token`'s user (when given) with extra `headers`; the raw
    /// HTTP response.
    pub async fn post_as(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// POSTs a GraphQL operation anonymously.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(None, query, variables).await
    }

    /// Registers `username` (email `<username>@example.com`, password [`PASSWORD`]); its token.
    pub async fn register(&self, username: &str) -> String {
        let response = self
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "username": username, "email": format!("{username}@example.com"), "password": PASSWORD } }),
            )
            .await;
        response["data"]["register"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("registration failed: {response}"))
            .to_owned()
    }

    /// Publishes an article as `token`'s user; the article's `slug`.
    pub async fn create_article(&self, token: &str, title: &str, tags: &[&str]) -> String {
        let response = self
            .gql_as(
                Some(token),
                "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
                json!({ "input": { "title": title, "description": format!("About {title}"), "body": format!("All about {title}."), "tags": tags } }),
            )
            .await;
        response["data"]["createArticle"]["article"]["slug"]
            .as_str()
            .unwrap_or_else(|| panic!("createArticle failed: {response}"))
            .to_owned()
    }

    /// Comments on `slug` as `token`'s user; the comment's id.
    pub async fn add_comment(&self, token: &str, slug: &str, body: &str) -> String {
        let response = self
            .gql_as(
                Some(token),
                "mutation($slug: String!, $body: String!) { addComment(slug: $slug, input: { body: $body }) { comment { id } } }",
                json!({ "slug": slug, "body": body }),
            )
            .await;
        response["data"]["addComment"]["comment"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("addComment failed: {response}"))
            .to_owned()
    }
}

/// The `extensions.code` of the first error; panics when there is none.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {response}"))
}

/// Whether the first error names `field` in `extensions.fields`.
pub fn names_field(response: &Value, field: &str) -> bool {
    response["errors"][0]["extensions"]["fields"][field].is_string()
}

/// The `extensions.cost` of a response.
pub fn cost(response: &Value) -> &Value {
    let cost = &response["extensions"]["cost"];
    assert!(cost.is_object(), "expected extensions.cost in {response}");
    cost
}

/// The response's data, asserting there are no errors.
pub fn data(response: &Value) -> &Value {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {response}"
    );
    &response["data"]
}
