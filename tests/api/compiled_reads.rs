//! Compiled reads against the executor: generated documents over the schema (the cost property
//! test's generator family, with scalars, aliases, named and inline fragments, `@include` and
//! `@skip` with variables, `node` of each type, nested connections with cursors, filters, the
//! feed) run through both paths against the same data, anonymous and signed in, and must give
//! the same bytes, errors, cache policy, cache tags, cost and `extensions`. Then what compiling
//! changes on purpose: fewer statements, and the switch that turns it off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use conduit::auth::{
    AuthThrottle, ClientAddress, Passwords, Revocations, ThrottlePolicy, Tokens, Viewer,
};
use conduit::buckets::{BucketPolicy, Buckets};
use conduit::cache::ResponseCache;
use conduit::cache::memory_store::MemoryStore;
use conduit::config::Config;
use conduit::gateway::limits::Limits;
use conduit::gateway::persisted::PersistedQueries;
use conduit::gateway::schema_info::SchemaInfo;
use conduit::gateway::{Caller, Exchange, Gateway, OperationState, RawOperation, Transport};
use conduit::graphql::GlobalId;
use conduit::metrics::Metrics;
use conduit::schema::{self, Backstop, SharedData};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{TestApp, data, spawn_app, spawn_app_with};

/// The server's pipeline on `app`'s database, compiling reads or not.
async fn gateway(app: &TestApp, compiled: bool) -> Gateway {
    let config = Config::with_database(app.database_url.clone());
    let db = conduit::db::connect(&app.database_url, 2, Default::default())
        .await
        .expect("database");
    let buckets = Buckets::new(None);
    let policy = BucketPolicy::per_window(1_000, 1);
    let tokens = Tokens::new(
        crate::helpers::JWT_SECRET.as_bytes(),
        Duration::from_secs(3600),
    );
    let shared = SharedData {
        db: db.clone(),
        passwords: Passwords::new(1).expect("hasher"),
        tokens: tokens.clone(),
        throttle: AuthThrottle::new(
            buckets.clone(),
            ThrottlePolicy {
                login_per_account: policy,
                login_per_address: policy,
                registrations_per_address: policy,
            },
        ),
        revocations: Revocations::new(db.clone(), Duration::from_secs(60)),
    };
    let limits = Limits::from(&config.limits);
    let backstop = Backstop {
        max_depth: limits.max_depth * 2,
        max_complexity: limits.max_fields * 4,
        max_directives: limits.max_directives,
    };
    let executing = schema::build(shared.clone(), backstop, false);
    Gateway {
        schema_info: SchemaInfo::from_sdl(&executing.sdl())
            .expect("sdl")
            .with_hints(schema::cache_hints()),
        validator: schema::validator(shared.clone(), backstop),
        schema: executing,
        limits,
        persisted: PersistedQueries::new(&config.persisted, None, None, buckets),
        budget: None,
        cache: None,
        metrics: Arc::new(Metrics::default()),
        tokens,
        revocations: shared.revocations.clone(),
        db,
        introspection: true,
        documents: conduit::gateway::DocumentCache::new(4 * 1024 * 1024),
        changes: Arc::new(conduit::changes::ChangeFeed::new(16)),
        in_flight: Arc::new(tokio::sync::Semaphore::new(16)),
        execution_timeout: Duration::from_secs(30),
        replicas: None,
        max_response_bytes: 4 * 1024 * 1024,
        compiled_reads: compiled,
        usage: None,
        deprecation_dates: Default::default(),
    }
}

/// What one path answered, everything a client or the cache sees.
#[derive(Debug, PartialEq)]
struct Answer {
    data: Option<String>,
    errors: String,
    extensions: String,
    policy: Option<String>,
    tags: Vec<String>,
    actual: u64,
    produced: bool,
}

/// Runs `query` with `variables` for `viewer` through `gateway`, with a fresh response cache (so
/// that it runs, recording its tags); the answer and whether it ran compiled.
async fn answer(
    gateway: &mut Gateway,
    viewer: Option<i64>,
    query: &str,
    variables: &Value,
) -> Result<(Answer, bool), String> {
    gateway.cache = Some(Arc::new(ResponseCache::new(
        Arc::new(MemoryStore::new(16 * 1024 * 1024)),
        None,
        Duration::from_secs(60),
    )));
    let viewer = viewer.map_or_else(Viewer::anonymous, Viewer::user);
    let caller = Caller::new(viewer, ClientAddress::new("127.0.0.1".parse().expect("ip")));
    let raw = RawOperation {
        query: query.to_owned(),
        variables: variables.as_object().cloned().unwrap_or_default(),
        ..RawOperation::default()
    };
    let transport = Transport {
        mutations: false,
        cacheable: true,
        subscriptions: false,
    };
    // Boxed, as the server boxes them: unoptimised, these futures are large.
    let operation = Box::pin(gateway.prepare(raw, transport, &caller))
        .await
        .map_err(|err| err.to_string())?;
    let mut exchange = Exchange::new(caller, false, vec![operation]);
    Box::pin(gateway.execute(&mut exchange, transport)).await;
    let (tags, actual, produced, compiled) = match &exchange.operations[0].state {
        OperationState::Ran { outcome, .. } => (
            outcome.tags.clone(),
            outcome.actual,
            outcome.produced,
            outcome.compiled,
        ),
        _ => (Vec::new(), 0, false, false),
    };
    let settled = gateway.settle(exchange, "test").await;
    let answer = &settled.answers[0];
    Ok((
        Answer {
            data: answer
                .data
                .as_ref()
                .map(|data| String::from_utf8_lossy(data).into_owned()),
            errors: serde_json::to_string(&answer.errors).expect("json"),
            extensions: serde_json::to_string(&answer.extensions).expect("json"),
            policy: settled.policy.map(|policy| policy.header()),
            tags,
            actual,
            produced,
        },
        compiled,
    ))
}

fn pick(options: Vec<BoxedStrategy<String>>, most: usize) -> BoxedStrategy<String> {
    prop::collection::vec(Union::new(options), 1..=most)
        .prop_map(|items| items.join(" "))
        .boxed()
}

fn leaf(text: &'static str) -> BoxedStrategy<String> {
    Just(text.to_owned()).boxed()
}

/// Any of the `leaves`, aliased or not, under `@include`/`@skip` or not.
fn scalars(leaves: &'static [&'static str]) -> BoxedStrategy<String> {
    (
        proptest::sample::select(leaves),
        0u8..6,
        proptest::sample::select(
            &[
                "",
                " @include(if: $yes)",
                " @skip(if: $yes)",
                " @include(if: $no)",
            ][..],
        ),
    )
        .prop_map(|(leaf, alias, directive)| match alias {
            0 => format!("a{alias}{leaf}: {leaf}{directive}"),
            1 => format!("{leaf}{directive}"),
            _ => leaf.to_owned(),
        })
        .boxed()
}

/// A connection's selection; the node type's selection from `node`.
fn connection(node: BoxedStrategy<String>, type_name: &'static str) -> BoxedStrategy<String> {
    pick(
        vec![
            leaf("totalCount"),
            leaf("__typename"),
            leaf("pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }"),
            node.clone()
                .prop_map(|s| format!("nodes {{ {s} }}"))
                .boxed(),
            node.clone()
                .prop_map(|s| format!("edges {{ cursor __typename node {{ {s} }} }}"))
                .boxed(),
            node.prop_map(move |s| format!("... on {type_name} {{ nodes {{ {s} }} }}"))
                .boxed(),
        ],
        3,
    )
}

/// `key: field(first: n[, after: $cursor])`, one alias per (page size, cursor) so that fields of
/// one key always merge.
fn paged(
    field: &'static str,
    type_name: &'static str,
    cursor: &'static str,
    selection: BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    (0u8..4, any::<bool>(), connection(selection, type_name))
        .prop_map(move |(n, after, s)| {
            if after {
                format!("{field}{n}a: {field}(first: {n}, after: ${cursor}) {{ {s} }}")
            } else {
                format!("{field}{n}: {field}(first: {n}) {{ {s} }}")
            }
        })
        .boxed()
}

fn article(depth: u32) -> BoxedStrategy<String> {
    let mut options = vec![
        scalars(&[
            "id",
            "title",
            "slug",
            "description",
            "body",
            "createdAt",
            "updatedAt",
            "favoritesCount",
            "favorited",
            "__typename",
            "tagList",
        ]),
        leaf("tags { name __typename }"),
        leaf("...ArticleFields"),
    ];
    if depth > 0 {
        options.push(
            user(depth - 1)
                .prop_map(|s| format!("author {{ {s} }}"))
                .boxed(),
        );
        options.push(paged(
            "comments",
            "CommentConnection",
            "commentCursor",
            comment(depth - 1),
        ));
        options.push(
            article(depth - 1)
                .prop_map(|s| format!("... on Article {{ {s} }}"))
                .boxed(),
        );
    }
    pick(options, 4)
}

fn user(depth: u32) -> BoxedStrategy<String> {
    let mut options = vec![
        scalars(&[
            "id",
            "username",
            "email",
            "bio",
            "image",
            "following",
            "followersCount",
            "createdAt",
            "__typename",
        ]),
        leaf("...UserFields"),
    ];
    if depth > 0 {
        options.push(paged(
            "articles",
            "ArticleConnection",
            "articleCursor",
            article(depth - 1),
        ));
        options.push(paged(
            "favoriteArticles",
            "ArticleConnection",
            "articleCursor",
            article(depth - 1),
        ));
    }
    pick(options, 4)
}

fn comment(depth: u32) -> BoxedStrategy<String> {
    let mut options = vec![scalars(&[
        "id",
        "body",
        "createdAt",
        "updatedAt",
        "__typename",
    ])];
    if depth > 0 {
        options.push(
            user(depth - 1)
                .prop_map(|s| format!("author {{ {s} }}"))
                .boxed(),
        );
        options.push(
            article(depth - 1)
                .prop_map(|s| format!("article {{ {s} }}"))
                .boxed(),
        );
    }
    pick(options, 3)
}

/// A whole document, and whether it is sent signed in.
fn document() -> impl Strategy<Value = (String, bool)> {
    let depth = 3;
    let filtered = (
        proptest::sample::select(
            &[
                "",
                ", tag: \"a\"",
                ", author: \"ALICE\"",
                ", favoritedBy: \"bob\"",
                ", tag: \"none\"",
            ][..],
        ),
        0u8..3,
        connection(article(depth), "ArticleConnection"),
    )
        .prop_map(|(filter, n, s)| format!("articles{n}: articles(first: {n}{filter}) {{ {s} }}"))
        .boxed();
    let root = pick(
        vec![
            filtered,
            paged("articles", "ArticleConnection", "articleCursor", article(depth)),
            paged("feed", "ArticleConnection", "articleCursor", article(depth)),
            paged("tags", "TagConnection", "tagCursor", leaf("name __typename")),
            leaf("__typename"),
            user(depth)
                .prop_map(|s| format!("viewer {{ {s} }}"))
                .boxed(),
            user(depth)
                .prop_map(|s| format!("user(username: \"Alice\") {{ {s} }}"))
                .boxed(),
            leaf("nobody: user(username: \"nobody\") { id }"),
            article(depth)
                .prop_map(|s| format!("article(slug: $slug) {{ {s} }}"))
                .boxed(),
            leaf("missing: article(slug: \"missing\") { id }"),
            (0u8..4, user(depth), article(depth), comment(depth))
                .prop_map(|(target, u, a, c)| {
                    let id = ["$user", "$article", "$comment", "\"not-an-id\""][target as usize];
                    format!(
                        "node{target}: node(id: {id}) {{ id __typename ... on User {{ {u} }} ... on Article {{ {a} }} ... on Comment {{ {c} }} }}"
                    )
                })
                .boxed(),
        ],
        3,
    );
    (root, any::<bool>()).prop_map(|(selection, signed_in)| {
        // The variables it uses, declared (an unused one fails validation).
        let mut definitions = Vec::new();
        for (name, definition) in [
            ("$yes", "$yes: Boolean = true"),
            ("$no", "$no: Boolean = false"),
            ("$slug", "$slug: String!"),
            ("$user", "$user: ID!"),
            ("$article", "$article: ID!"),
            ("$comment", "$comment: ID!"),
            ("$articleCursor", "$articleCursor: String"),
            ("$commentCursor", "$commentCursor: String"),
            ("$tagCursor", "$tagCursor: String"),
        ] {
            let used = selection.match_indices(name).any(|(at, _)| {
                !selection[at + name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            });
            if used {
                definitions.push(definition);
            }
        }
        let definitions = if definitions.is_empty() {
            String::new()
        } else {
            format!("({})", definitions.join(", "))
        };
        let mut document = format!("query Generated{definitions} {{ {selection} }}");
        // The named fragments, defined when used.
        if selection.contains("...ArticleFields") {
            document.push_str(
                " fragment ArticleFields on Article { slug favoritesCount ... on Node { id } }",
            );
        }
        if selection.contains("...UserFields") {
            document.push_str(" fragment UserFields on User { username bio following }");
        }
        (document, signed_in)
    })
}

/// The data both paths read: users who follow each other, articles with tags, comments and
/// favorites, a user with none of it.
async fn seed(app: &TestApp) -> (Value, i64) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    app.register("dave").await;
    let mut slug = String::new();
    for (n, token) in [&alice, &bob, &alice, &carol, &alice]
        .into_iter()
        .enumerate()
    {
        slug = app
            .create_article(
                token,
                &format!("Article {n}"),
                &["a", "b", &format!("t{n}")][..n % 3 + 1],
            )
            .await;
        for (author, text) in [
            (&bob, "First"),
            (&carol, "Second \"quoted\" \u{e9}"),
            (&alice, "Third"),
        ]
        .iter()
        .take(n % 4)
        {
            app.add_comment(author, &slug, text).await;
        }
        if n % 2 == 0 {
            data(
                &app.gql_as(
                    Some(&bob),
                    "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { id } } }",
                    json!({ "slug": slug }),
                )
                .await,
            );
        }
    }
    for (follower, followed) in [(&bob, "alice"), (&alice, "carol"), (&carol, "alice")] {
        data(
            &app.gql_as(
                Some(follower),
                "mutation($name: String!) { followUser(username: $name) { user { id } } }",
                json!({ "name": followed }),
            )
            .await,
        );
    }
    data(
        &app.gql_as(
            Some(&alice),
            "mutation { updateViewer(input: { bio: \"Writes \\\"things\\\"\\n\", image: \"https://example.com/a.png\" }) { user { id } } }",
            json!({}),
        )
        .await,
    );
    let ids = app
        .gql_as(
            Some(&bob),
            "query($slug: String!) { viewer { id } article(slug: $slug) { id comments(first: 1) { nodes { id } pageInfo { endCursor } } } articles(first: 1) { pageInfo { endCursor } } tags(first: 1) { pageInfo { endCursor } } }",
            json!({ "slug": slug }),
        )
        .await;
    let ids = data(&ids).clone();
    let viewer = GlobalId::decode(ids["viewer"]["id"].as_str().expect("id"))
        .expect("a global id")
        .id;
    let variables = json!({
        "slug": slug,
        "user": ids["viewer"]["id"],
        "article": ids["article"]["id"],
        "comment": ids["article"]["comments"]["nodes"][0]["id"],
        "articleCursor": ids["articles"]["pageInfo"]["endCursor"],
        "commentCursor": ids["article"]["comments"]["pageInfo"]["endCursor"],
        "tagCursor": ids["tags"]["pageInfo"]["endCursor"],
    });
    (variables, viewer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_reads_answer_exactly_what_the_executor_answers() {
    let app = spawn_app_with(|config| {
        config.cache.enabled = false;
        config.rate_limit.enabled = false;
    })
    .await;
    let (variables, viewer) = seed(&app).await;
    let compiled = tokio::sync::Mutex::new(gateway(&app, true).await);
    let executor = tokio::sync::Mutex::new(gateway(&app, false).await);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let ran_compiled = AtomicU32::new(0);
    let cases = AtomicU32::new(0);
    let result = runner.run(&document(), |(query, signed_in)| {
        let viewer = signed_in.then_some(viewer);
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let (fast, was_compiled) = Box::pin(answer(
                    &mut *compiled.lock().await,
                    viewer,
                    &query,
                    &variables,
                ))
                .await
                .map_err(TestCaseError::fail)?;
                let (slow, executed_compiled) = Box::pin(answer(
                    &mut *executor.lock().await,
                    viewer,
                    &query,
                    &variables,
                ))
                .await
                .map_err(TestCaseError::fail)?;
                prop_assert!(
                    !executed_compiled,
                    "the executor's gateway compiles nothing"
                );
                prop_assert_eq!(&fast, &slow, "{} (signed in: {})", query, signed_in);
                cases.fetch_add(1, Ordering::Relaxed);
                ran_compiled.fetch_add(u32::from(was_compiled), Ordering::Relaxed);
                Ok(())
            })
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    // The comparison means something only if most documents did run compiled.
    let (ran, all) = (ran_compiled.into_inner(), cases.into_inner());
    assert!(ran * 10 >= all * 7, "{ran} of {all} documents ran compiled");
}

/// The statements `query` takes on `app`, as `token`'s user.
async fn statements(app: &TestApp, token: Option<&str>, query: &str) -> (Value, u64) {
    let before = app.statements.get();
    let response = app.gql_as(token, query, json!({})).await;
    (response, app.statements.get() - before)
}

#[tokio::test]
async fn a_profile_with_its_articles_takes_at_most_three_statements() {
    let app = spawn_app_with(|config| config.cache.enabled = false).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for n in 0..12 {
        let slug = app
            .create_article(&alice, &format!("Article {n}"), &["x", "y"])
            .await;
        app.add_comment(&bob, &slug, "Hi").await;
    }
    let profile = "{ user(username: \"alice\") { username bio image following followersCount articles(first: 10) { totalCount pageInfo { hasNextPage endCursor } nodes { slug title description createdAt author { username image following } tags { name } favoritesCount favorited } } } }";
    let (response, count) = statements(&app, Some(&bob), profile).await;
    assert_eq!(
        data(&response)["user"]["articles"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(10)
    );
    assert!(count <= 3, "the profile took {count} statements");
    let nested = "{ articles(first: 20) { nodes { title slug author { username bio } tags { name } comments(first: 10) { nodes { body author { username } } } favoritesCount } } }";
    let (_, count) = statements(&app, None, nested).await;
    assert_eq!(count, 2, "articles with their comments");
    // Three levels of connections: at most four statements.
    let deep = "{ articles(first: 5) { nodes { author { articles(first: 3) { nodes { comments(first: 2) { nodes { body } } } } } } } }";
    let (response, count) = statements(&app, None, deep).await;
    data(&response);
    assert!(
        count <= 4,
        "three levels of connections took {count} statements"
    );
}

#[tokio::test]
async fn compiled_reads_can_be_turned_off_and_fields_outside_them_fall_back() {
    let on = spawn_app_with(|config| config.cache.enabled = false).await;
    let metrics = |app: &TestApp| {
        let app_url = app.url("/metrics");
        let client = app.client.clone();
        async move {
            let text = client
                .get(app_url)
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            let count = |path: &str| {
                text.lines()
                    .find_map(|line| {
                        line.strip_prefix(&format!(
                            "conduit_graphql_executions_total{{path=\"{path}\"}} "
                        ))
                    })
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            (count("compiled"), count("executor"))
        }
    };
    let query = "{ articles(first: 1) { totalCount } }";
    data(&on.gql(query, json!({})).await);
    assert_eq!(metrics(&on).await, (1, 0));
    // Introspection is not compiled: the whole query runs through the executor.
    data(
        &on.gql(
            "{ articles(first: 1) { totalCount } __schema { queryType { name } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(metrics(&on).await, (1, 1));
    let off = spawn_app_with(|config| {
        config.cache.enabled = false;
        config.server.compiled_reads = false;
    })
    .await;
    data(&off.gql(query, json!({})).await);
    assert_eq!(metrics(&off).await, (0, 1));
}

#[tokio::test]
async fn a_variable_used_only_in_a_directive_on_typename_is_used() {
    // async-graphql's own rule misses it; the generated documents above found it.
    let app = spawn_app().await;
    let response = app
        .gql(
            "query Q($yes: Boolean = true) { articles { edges { node { author { a: __typename @include(if: $yes) } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&response)["articles"]["edges"], json!([]));
}
