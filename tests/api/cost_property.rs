//! A property of pricing: for generated documents over the schema (repeated fields, fragments,
//! aliases, connections, lists, interfaces), the requested cost is never below what the execution
//! itself counts: every object it resolved and every list item it returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};
use conduit::auth::{
    AuthThrottle, ClientAddress, Passwords, Revocations, ThrottlePolicy, Tokens, Viewer,
};
use conduit::buckets::{BucketPolicy, Buckets};
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
use serde_json::json;

use crate::helpers::{data, spawn_app_with};

/// Counts the objects the execution resolved: async-graphql calls `resolve` for every field and
/// for every item of a list, so each object is counted once where it is resolved.
#[derive(Clone, Default)]
struct CountObjects(Arc<AtomicU64>);

impl ExtensionFactory for CountObjects {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for CountObjects {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let introspection = info.is_for_introspection;
        let value = next.run(ctx, info).await?;
        if matches!(&value, Some(Value::Object(_))) && !introspection {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(value)
    }
}

fn pick(options: Vec<BoxedStrategy<String>>, most: usize) -> BoxedStrategy<String> {
    prop::collection::vec(Union::new(options), 1..=most)
        .prop_map(|items| items.join(" "))
        .boxed()
}

fn leaf(text: &'static str) -> BoxedStrategy<String> {
    Just(text.to_owned()).boxed()
}

/// A connection's selection; the node type's selection from `node`.
fn connection(node: BoxedStrategy<String>) -> BoxedStrategy<String> {
    pick(
        vec![
            leaf("totalCount"),
            leaf("pageInfo { hasNextPage endCursor }"),
            node.clone()
                .prop_map(|s| format!("nodes {{ {s} }}"))
                .boxed(),
            node.prop_map(|s| format!("edges {{ cursor node {{ {s} }} }}"))
                .boxed(),
        ],
        3,
    )
}

/// `key{n}: field(first: n)`: one alias per page size, so that fields of one key always merge.
fn paged(field: &'static str, selection: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (0u8..4, connection(selection))
        .prop_map(move |(n, s)| format!("{field}{n}: {field}(first: {n}) {{ {s} }}"))
        .boxed()
}

fn article(depth: u32) -> BoxedStrategy<String> {
    let mut options = vec![
        leaf("id"),
        leaf("title"),
        leaf("slug"),
        leaf("favoritesCount"),
        leaf("favorited"),
        leaf("tags { name }"),
    ];
    if depth > 0 {
        options.push(
            user(depth - 1)
                .prop_map(|s| format!("author {{ {s} }}"))
                .boxed(),
        );
        options.push(paged("comments", comment(depth - 1)));
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
        leaf("id"),
        leaf("username"),
        leaf("email"),
        leaf("following"),
        leaf("followersCount"),
    ];
    if depth > 0 {
        options.push(paged("articles", article(depth - 1)));
        options.push(paged("favoriteArticles", article(depth - 1)));
        options.push(user(depth - 1).prop_map(|s| format!("...U {s}")).boxed());
    }
    pick(options, 4)
}

fn comment(depth: u32) -> BoxedStrategy<String> {
    let mut options = vec![leaf("id"), leaf("body")];
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

fn document() -> impl Strategy<Value = String> {
    let depth = 3;
    let root = pick(
        vec![
            paged("articles", article(depth)),
            paged("tags", leaf("name")),
            user(depth)
                .prop_map(|s| format!("viewer {{ {s} }}"))
                .boxed(),
            article(depth)
                .prop_map(|s| format!("article(slug: \"SLUG\") {{ {s} }}"))
                .boxed(),
            (user(depth), article(depth))
                .prop_map(|(u, a)| {
                    format!(
                        "node(id: \"USER\") {{ id ... on User {{ {u} }} ... on Article {{ {a} }} }}"
                    )
                })
                .boxed(),
        ],
        4,
    );
    // `U` is a named fragment spread inside users; it is defined when used.
    root.prop_map(|selection| {
        if selection.contains("...U") {
            format!("{{ {selection} }} fragment U on User {{ username ... on Node {{ id }} }}")
        } else {
            format!("{{ {selection} }}")
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requested_cost_covers_everything_that_executes() {
    let app = spawn_app_with(|config| {
        config.cache.enabled = false;
        config.rate_limit.enabled = false;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut slug = String::new();
    for (token, n) in [(&alice, 0), (&bob, 1), (&alice, 2)] {
        slug = app
            .create_article(token, &format!("Article {n}"), &["a", "b", "c"])
            .await;
        app.add_comment(&alice, &slug, "Nice").await;
        app.add_comment(&bob, &slug, "Indeed").await;
    }
    app.gql_as(
        Some(&bob),
        "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { id } } }",
        json!({ "slug": slug }),
    )
    .await;
    app.gql_as(
        Some(&bob),
        "mutation { followUser(username: \"alice\") { user { id } } }",
        json!({}),
    )
    .await;
    let viewer =
        data(&app.gql_as(Some(&bob), "{ viewer { id } }", json!({})).await)["viewer"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let author = data(
        &app.gql("{ user(username: \"alice\") { id } }", json!({}))
            .await,
    )["user"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let viewer_id = GlobalId::decode(&viewer).expect("a global id").id;

    // The same pipeline as the server's, on the same database, with the counting extension.
    let config = Config::with_database(app.database_url.clone());
    let db = conduit::db::connect(&app.database_url, 2, Default::default())
        .await
        .expect("database");
    let buckets = Buckets::new(None);
    let throttle_policy = BucketPolicy::per_window(1_000, 1);
    let tokens = Tokens::new(
        crate::helpers::JWT_SECRET.as_bytes(),
        Duration::from_secs(60),
    );
    let shared = SharedData {
        db: db.clone(),
        passwords: Passwords::new(1).expect("hasher"),
        tokens: tokens.clone(),
        throttle: AuthThrottle::new(
            buckets.clone(),
            ThrottlePolicy {
                login_per_account: throttle_policy,
                login_per_address: throttle_policy,
                registrations_per_address: throttle_policy,
            },
        ),
        revocations: Revocations::new(db.clone(), Duration::from_secs(60)),
    };
    let limits = Limits::from(&config.limits);
    let backstop = Backstop {
        max_depth: 100,
        max_complexity: 100_000,
        max_directives: 100,
    };
    let counter = CountObjects::default();
    let counted = schema::builder(shared.clone(), backstop)
        .extension(counter.clone())
        .finish();
    let gateway = Gateway {
        schema_info: SchemaInfo::from_sdl(&counted.sdl())
            .expect("sdl")
            .with_hints(schema::cache_hints()),
        validator: schema::validator(shared.clone(), backstop),
        schema: counted,
        limits,
        persisted: PersistedQueries::new(&config.persisted, None, None, buckets),
        budget: None,
        cache: None,
        metrics: Arc::new(Metrics::default()),
        tokens,
        revocations: shared.revocations.clone(),
        db,
        introspection: true,
        documents: conduit::gateway::DocumentCache::new(1024 * 1024),
        changes: Arc::new(conduit::changes::ChangeFeed::new(16)),
        in_flight: Arc::new(tokio::sync::Semaphore::new(16)),
        execution_timeout: std::time::Duration::from_secs(30),
        replicas: None,
        max_response_bytes: 4 * 1024 * 1024,
        compiled_reads: false,
        usage: None,
        deprecation_dates: Default::default(),
    };
    let transport = Transport {
        mutations: false,
        cacheable: false,
        subscriptions: false,
    };
    let handle = tokio::runtime::Handle::current();
    let ran = AtomicU64::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&document(), |text| {
        let text = text.replace("SLUG", &slug).replace("USER", &author);
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let caller = Caller::new(
                    Viewer::user(viewer_id),
                    ClientAddress::new("127.0.0.1".parse().expect("ip")),
                );
                let raw = RawOperation {
                    query: text.clone(),
                    ..RawOperation::default()
                };
                let operation = gateway
                    .prepare(raw, transport, &caller)
                    .await
                    .map_err(|err| TestCaseError::fail(err.to_string()))?;
                let requested = operation.requested;
                if let OperationState::Refused(errors) = &operation.state {
                    // Refused before running: nothing executed.
                    let _ = errors;
                    return Ok(());
                }
                let mut exchange = Exchange::new(caller, false, vec![operation]);
                counter.0.store(0, Ordering::Relaxed);
                gateway.execute(&mut exchange, transport).await;
                let executed = counter.0.load(Ordering::Relaxed);
                if let OperationState::Ran { outcome, .. } = &exchange.operations[0].state {
                    prop_assert!(
                        outcome.errors.is_empty(),
                        "{text} failed: {:?}",
                        outcome.errors
                    );
                }
                ran.fetch_add(1, Ordering::Relaxed);
                prop_assert!(
                    requested >= executed,
                    "{text}: requested {requested} < executed {executed}"
                );
                Ok(())
            })
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    assert!(
        ran.load(Ordering::Relaxed) >= 48,
        "most generated documents run: {}",
        ran.load(Ordering::Relaxed)
    );
}
