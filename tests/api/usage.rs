//! Schema usage by client: what is recorded (per client and version, over HTTP, a WebSocket and
//! an event stream; through fragments, aliases, `node` and variables; nothing for refused or
//! unexecuted operations), across instances and restarts, within the bound on distinct clients;
//! `conduit schema check` and `conduit schema usage` against those records; the `Deprecation` and
//! `Sunset` headers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use entity::schema_usage;
use futures::StreamExt;
use sea_orm::{Database, EntityTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, data, spawn_app_with};
use crate::process::conduit;
use crate::realtime_client::{EventStream, Received, Socket};

/// Every stored row of the usage records.
async fn rows(app: &TestApp) -> Vec<schema_usage::Model> {
    let db = Database::connect(&app.database_url)
        .await
        .expect("the test database");
    schema_usage::Entity::find()
        .all(&db)
        .await
        .expect("schema_usage is readable")
}

/// The coordinates each client (`name version`) used, summed over rows.
fn by_client(rows: &[schema_usage::Model]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut clients: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for row in rows {
        let client = format!("{} {}", row.client_name, row.client_version)
            .trim()
            .to_owned();
        *clients
            .entry(client)
            .or_default()
            .entry(row.coordinate.clone())
            .or_default() += row.uses;
    }
    clients
}

/// Waits until the records satisfy `done` (flushes come every second in these tests).
async fn records_until(
    app: &TestApp,
    done: impl Fn(&BTreeMap<String, BTreeMap<String, i64>>) -> bool,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut last = BTreeMap::new();
    for _ in 0..100 {
        last = by_client(&rows(app).await);
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the usage records never got there: {last:#?}");
}

/// An app whose usage is written every second.
async fn app_flushing_every_second() -> TestApp {
    spawn_app_with(|config| {
        config.usage.usage_flush_secs = 1;
        config.server.shutdown_grace_secs = 0;
    })
    .await
}

/// POSTs `query` with the client headers `(name header, name, version header, version)`.
async fn post_as_client(app: &TestApp, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut request = app.client.post(app.url("/graphql")).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn usage_is_recorded_per_client_and_version_over_every_transport() {
    let app = app_flushing_every_second().await;
    let token = app.register("writer").await;
    let slug = app.create_article(&token, "Recorded", &["rust"]).await;
    let article = app
        .gql(
            &format!(r#"{{ article(slug: "{slug}") {{ id }} }}"#),
            json!({}),
        )
        .await;
    let id = data(&article)["article"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    // HTTP: a fragment, an alias and variables, from `web 1.4.0`.
    let web = [
        ("apollographql-client-name", "web"),
        ("apollographql-client-version", "1.4.0"),
    ];
    let answer = post_as_client(
        &app,
        &web,
        json!({
            "query": "query List($tag: String, $first: Int) { list: articles(first: $first, tag: $tag) { nodes { ...Card } } } fragment Card on Article { title author { username } }",
            "variables": { "tag": "rust", "first": 2 },
        }),
    )
    .await
    .json::<Value>()
    .await
    .expect("json");
    assert_eq!(data(&answer)["list"]["nodes"][0]["title"], "Recorded");

    // `node`, from `ios 7` (the other header names).
    let ios = [
        ("graphql-client-name", "ios"),
        ("graphql-client-version", "7"),
    ];
    let answer = post_as_client(
        &app,
        &ios,
        json!({
            "query": "query One($id: ID!) { node(id: $id) { ... on Article { slug } } }",
            "variables": { "id": id },
        }),
    )
    .await
    .json::<Value>()
    .await
    .expect("json");
    assert_eq!(data(&answer)["node"]["slug"], slug.as_str());

    // Refused and unexecuted operations record nothing.
    let refused = [("apollographql-client-name", "refused")];
    let answer = post_as_client(
        &app,
        &refused,
        json!({ "query": "{ articles { nodes { nope } } }" }),
    )
    .await
    .json::<Value>()
    .await
    .expect("json");
    assert!(answer["errors"].is_array());
    let answer = post_as_client(
        &app,
        &refused,
        json!({ "query": "{ articles(first: 100000) { nodes { title } } }" }),
    )
    .await
    .json::<Value>()
    .await
    .expect("json");
    assert!(answer["errors"].is_array());
    let multi = [("apollographql-client-name", "multi")];
    post_as_client(
        &app,
        &multi,
        json!({
            "query": "query A { tags(first: 1) { nodes { name } } } query B { viewer { username } }",
            "operationName": "A",
        }),
    )
    .await;

    // No header: `unknown`.
    app.gql("{ tags(first: 1) { totalCount } }", json!({}))
        .await;

    // A WebSocket that names its client in `connection_init`.
    let mut socket = Socket::open(&app).await.expect("the upgrade succeeds");
    socket
        .send(json!({
            "type": "connection_init",
            "payload": { "apollographql-client-name": "desktop", "apollographql-client-version": "3.1" },
        }))
        .await;
    assert!(
        matches!(socket.receive().await, Received::Message(message) if message["type"] == "connection_ack")
    );
    socket
        .subscribe(
            "1",
            "query Tags { tags(first: 5) { nodes { name } } }",
            json!({}),
        )
        .await;
    let answer = socket.answer_of("1").await;
    assert_eq!(answer["data"]["tags"]["nodes"][0]["name"], "rust");

    // An event stream with the headers: the subscription counts as it opens.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "text/event-stream")
        .header("apollographql-client-name", "watcher")
        .header("apollographql-client-version", "0.9")
        .json(&json!({ "query": "subscription { articlePublished(tag: \"rust\") { title } }" }))
        .send()
        .await
        .expect("request sent");
    let stream = EventStream::of(response);

    let records = records_until(&app, |records| {
        [
            "web 1.4.0",
            "ios 7",
            "multi",
            "unknown",
            "desktop 3.1",
            "watcher 0.9",
        ]
        .iter()
        .all(|client| records.contains_key(*client))
    })
    .await;
    drop(stream);
    let used = |client: &str| -> BTreeSet<String> { records[client].keys().cloned().collect() };
    let expect = |coordinates: &[&str]| -> BTreeSet<String> {
        coordinates.iter().map(|c| (*c).to_owned()).collect()
    };
    assert_eq!(
        used("web 1.4.0"),
        expect(&[
            "Article.author",
            "Article.title",
            "ArticleConnection.nodes",
            "Query.articles",
            "Query.articles(first:)",
            "Query.articles(tag:)",
            "User.username",
        ])
    );
    assert_eq!(
        used("ios 7"),
        expect(&["Article.slug", "Query.node", "Query.node(id:)"])
    );
    assert_eq!(
        used("multi"),
        expect(&[
            "Query.tags",
            "Query.tags(first:)",
            "Tag.name",
            "TagConnection.nodes"
        ]),
        "operation B did not run"
    );
    assert!(used("unknown").contains("TagConnection.totalCount"));
    assert_eq!(
        used("desktop 3.1"),
        expect(&[
            "Query.tags",
            "Query.tags(first:)",
            "Tag.name",
            "TagConnection.nodes"
        ])
    );
    assert_eq!(
        used("watcher 0.9"),
        expect(&[
            "Article.title",
            "Subscription.articlePublished",
            "Subscription.articlePublished(tag:)",
        ])
    );
    assert!(!records.contains_key("refused"), "{records:#?}");
    assert_eq!(records["web 1.4.0"]["Query.articles"], 1);
}

#[tokio::test]
async fn usage_adds_up_across_two_instances_and_a_restart() {
    // Written only when each instance stops: what the shutdown flush keeps.
    let mut first = spawn_app_with(|config| {
        config.usage.usage_flush_secs = 3600;
        config.server.shutdown_grace_secs = 0;
    })
    .await;
    let mut second = first.sibling().await;
    let web = [
        ("apollographql-client-name", "web"),
        ("apollographql-client-version", "2"),
    ];
    let query = json!({ "query": "query Tags { tags(first: 3) { nodes { name } } }" });
    for app in [&first, &first, &first, &second, &second] {
        let response = post_as_client(app, &web, query.clone()).await;
        assert_eq!(response.status(), 200);
    }
    first.stop();
    second.stop();
    let records = records_until(&first, |records| {
        records
            .get("web 2")
            .is_some_and(|used| used.get("Query.tags") == Some(&5))
    })
    .await;
    assert_eq!(records["web 2"]["Tag.name"], 5);
    // A restart adds to what is stored.
    let mut restarted = first.sibling().await;
    post_as_client(&restarted, &web, query.clone()).await;
    restarted.stop();
    records_until(&first, |records| {
        records
            .get("web 2")
            .is_some_and(|used| used.get("Query.tags") == Some(&6))
    })
    .await;
}

#[tokio::test]
async fn ten_thousand_client_names_stay_within_the_bound() {
    let app = spawn_app_with(|config| {
        config.usage.usage_flush_secs = 1;
        config.rate_limit.enabled = false;
    })
    .await;
    let bound = app.config.usage.usage_max_clients as usize;
    let token = app.register("writer").await;
    app.create_article(&token, "Tagged", &["a"]).await;
    // A deprecated field, so the per-client metric counts too.
    let query = json!({ "query": "{ articles(first: 1) { nodes { tagList } } }" });
    futures::stream::iter(0..10_000)
        .for_each_concurrent(16, |n| {
            let app = &app;
            let query = query.clone();
            async move {
                let name = format!("client-{n}");
                let response =
                    post_as_client(app, &[("apollographql-client-name", &name)], query).await;
                assert_eq!(response.status(), 200);
            }
        })
        .await;
    let records = records_until(&app, |records| {
        records
            .get("other other")
            .is_some_and(|used| used.get("Article.tagList") == Some(&(10_000 - bound as i64)))
    })
    .await;
    let named = records
        .keys()
        .filter(|client| client.starts_with("client-"))
        .count();
    assert_eq!(
        named, bound,
        "the first {bound} names are kept, later ones count as `other`"
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    let labelled: BTreeSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("conduit_deprecated_field_uses_by_client_total{"))
        .filter_map(|line| line.split("client=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        labelled.len(),
        bound + 1,
        "the metric names the same bounded clients, and `other`: {labelled:?}"
    );
    assert!(labelled.contains("other"));
}

/// The served schema with the field of type `ty` whose line starts with `line` left out, with
/// its description.
fn without_line(sdl: &str, ty: &str, line: &str) -> String {
    let mut lines: Vec<&str> = sdl.lines().collect();
    let start = lines
        .iter()
        .position(|candidate| candidate.starts_with(&format!("type {ty} ")))
        .expect("the type");
    let at = (start..lines.len())
        .find(|&index| lines[index].trim_start().starts_with(line))
        .expect("the field");
    let mut from = at;
    if from > 0 && lines[from - 1].trim() == "\"\"\"" {
        from -= 1;
        while from > 0 && lines[from - 1].trim() != "\"\"\"" {
            from -= 1;
        }
        from -= 1;
    } else if from > 0 && lines[from - 1].trim().starts_with("\"\"\"") {
        from -= 1;
    }
    lines.drain(from..=at);
    lines.join("\n")
}

#[tokio::test]
async fn schema_check_names_the_client_that_used_a_removed_field_and_passes_an_unused_removal() {
    let app = app_flushing_every_second().await;
    let token = app.register("writer").await;
    app.create_article(&token, "Old style", &["a"]).await;
    let web = [
        ("apollographql-client-name", "web"),
        ("apollographql-client-version", "2.1"),
    ];
    let response = post_as_client(
        &app,
        &web,
        json!({ "query": "query Legacy { articles(first: 1) { nodes { tagList } } }" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    records_until(&app, |records| {
        records
            .get("web 2.1")
            .is_some_and(|used| used.contains_key("Article.tagList"))
    })
    .await;

    let dir = tempfile::tempdir().expect("temporary directory");
    let served = String::from_utf8(
        conduit(&["schema"], &[])
            .output()
            .expect("conduit schema runs")
            .stdout,
    )
    .expect("utf-8");
    let baseline = dir.path().join("baseline.graphql");
    std::fs::write(&baseline, &served).expect("written");
    let check = |proposed: String| {
        let path = dir.path().join("proposed.graphql");
        std::fs::write(&path, proposed).expect("written");
        let output = conduit(
            &[
                "schema",
                "check",
                "--against",
                baseline.to_str().expect("path"),
                "--schema",
                path.to_str().expect("path"),
                "--format",
                "json",
            ],
            &[("DATABASE_URL", &app.database_url)],
        )
        .output()
        .expect("conduit schema check runs");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), report)
    };

    // Removing `Article.tagList`, which web 2.1 used: exit 1, naming the client and operation.
    let (status, report) = check(without_line(&served, "Article", "tagList:"));
    assert_eq!(status, Some(1), "{report:#}");
    let change = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|change| change["coordinate"] == "Article.tagList")
        .expect("the removal is reported");
    assert_eq!(change["criticality"], "breaking");
    assert_eq!(change["usage"][0]["client_name"], "web");
    assert_eq!(change["usage"][0]["client_version"], "2.1");
    assert_eq!(change["usage"][0]["operation_name"], "Legacy");
    assert_eq!(change["usage"][0]["uses"], 1);

    // Removing `User.image`, which nobody used: breaking on paper, exit 0.
    let (status, report) = check(without_line(&served, "User", "image:"));
    assert_eq!(status, Some(0), "{report:#}");
    let change = &report["changes"][0];
    assert_eq!(change["coordinate"], "User.image");
    assert_eq!(change["criticality"], "breaking");
    assert_eq!(change["usage"], json!([]));

    // The same schema: nothing to report.
    let (status, report) = check(served.clone());
    assert_eq!(status, Some(0));
    assert_eq!(report["changes"], json!([]));

    // A schema that does not parse: exit 2.
    let (status, _) = {
        let path = dir.path().join("broken.graphql");
        std::fs::write(&path, "type {").expect("written");
        let output = conduit(
            &["schema", "check", "--schema", path.to_str().expect("path")],
            &[("DATABASE_URL", &app.database_url)],
        )
        .output()
        .expect("runs");
        (output.status.code(), ())
    };
    assert_eq!(status, Some(2));

    // Who uses it: the client, its version, the operation and the count.
    let output = conduit(
        &["schema", "usage", "Article.tagList", "--format", "json"],
        &[("DATABASE_URL", &app.database_url)],
    )
    .output()
    .expect("conduit schema usage runs");
    let usage: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(usage["usage"][0]["client_name"], "web");
    assert_eq!(usage["usage"][0]["uses"], 1);
    let output = conduit(
        &["schema", "usage", "User.image"],
        &[("DATABASE_URL", &app.database_url)],
    )
    .output()
    .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("no client used User.image"), "{text}");
}

#[tokio::test]
async fn deprecation_and_sunset_headers_come_exactly_when_a_deprecated_field_ran() {
    let app = spawn_app_with(|config| {
        config.usage.sunset = vec!["Article.tagList=2027-06-30".to_owned()];
    })
    .await;
    let token = app.register("writer").await;
    app.create_article(&token, "Tagged", &["a"]).await;
    let headers_of = |response: &reqwest::Response| {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        (header("deprecation"), header("sunset"))
    };
    let deprecated = (
        Some("@1795564800".to_owned()),
        Some("Wed, 30 Jun 2027 00:00:00 GMT".to_owned()),
    );
    let legacy = json!({ "query": "{ articles(first: 1) { nodes { tagList } } }" });
    for _ in 0..2 {
        // A miss, then a hit: the field is served both times.
        let response = post_as_client(&app, &[], legacy.clone()).await;
        assert_eq!(headers_of(&response), deprecated);
    }
    for body in [
        json!({ "query": "{ articles(first: 1) { nodes { tags { name } } } }" }),
        json!({ "query": "query($skip: Boolean!) { articles(first: 1) { nodes { title tagList @skip(if: $skip) } } }", "variables": { "skip": true } }),
        json!({ "query": "query A { tags(first: 1) { totalCount } } query B { articles(first: 1) { nodes { tagList } } }", "operationName": "A" }),
        json!({ "query": "{ articles(first: 1) { nodes { tagList nope } } }" }),
    ] {
        let response = post_as_client(&app, &[], body.clone()).await;
        assert_eq!(headers_of(&response), (None, None), "{body}");
    }
}

#[tokio::test]
async fn a_trusted_documents_client_comes_from_its_manifest() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let manifest = dir.path().join("manifest.json");
    let body = "query Tags { tags(first: 2) { nodes { name } } }";
    std::fs::write(
        &manifest,
        json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "client": { "name": "ios", "version": "5.0" },
            "operations": [{ "id": "tags-1", "name": "Tags", "type": "query", "body": body }],
        })
        .to_string(),
    )
    .expect("manifest written");
    let app = spawn_app_with(|config| {
        config.persisted.trusted_documents = Some(manifest.clone());
        config.usage.usage_flush_secs = 1;
    })
    .await;
    // By id and by full text; the headers say otherwise, the manifest wins.
    let headers = [("apollographql-client-name", "web")];
    for request in [
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "tags-1" } } }),
        json!({ "query": body }),
    ] {
        let answer = post_as_client(&app, &headers, request)
            .await
            .json::<Value>()
            .await
            .expect("json");
        assert!(answer["errors"].is_null(), "{answer}");
    }
    let records = records_until(&app, |records| {
        records
            .get("ios 5.0")
            .is_some_and(|used| used.get("Query.tags") == Some(&2))
    })
    .await;
    assert!(!records.contains_key("web"), "{records:#?}");
}
