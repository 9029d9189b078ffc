//! `conduit seed`: deterministic demo data (users, follows, articles with tags, favorites and
//! comments), so a new database has something to look at in the playground.
//!
//! The same seed and sizes give the same rows on SQLite and PostgreSQL. The first user is
//! registered through the users service (its rules, a real argon2id hash); the others share that
//! hash, so every demo account signs in with the same password and seeding takes seconds, not
//! one hash per user. Rows go in by batches, one transaction per batch.

use std::collections::HashSet;
use std::io::IsTerminal;

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::{article, article_tag, comment, favorite, follow, tag, user};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::auth::Passwords;
use crate::config::{Config, SeedArgs};
use crate::error::AppError;
use crate::users::service::{self as users, Registration};
use crate::{articles, db};

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "conduit-demo";

/// Rows per insert statement (well under SQLite's limit on bound values).
const BATCH: usize = 500;

/// Why seeding stopped.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The database holds data and `--force` was not given.
    #[error(
        "the database already holds {users} users and {articles} articles; \
         pass --force to add demo data anyway"
    )]
    NotEmpty {
        /// Users found.
        users: u64,
        /// Articles found.
        articles: u64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A rule of the domain refused the demo data.
    #[error("{0}")]
    App(#[from] AppError),
}

/// Fills the database of `config` with the demo data `sizes` ask for, and prints how to sign in.
pub async fn run(config: &Config, sizes: SeedArgs) -> Result<(), SeedError> {
    let db = db::connect(&config.database.url, 2, Default::default()).await?;
    db::migrate(&db).await?;
    let existing_users = user::Entity::find().count(&db).await?;
    let existing_articles = article::Entity::find().count(&db).await?;
    if (existing_users > 0 || existing_articles > 0) && !sizes.force {
        return Err(SeedError::NotEmpty {
            users: existing_users,
            articles: existing_articles,
        });
    }
    let started = std::time::Instant::now();
    let mut seeder = Seeder::new(&db, sizes, existing_users)?;
    let first = seeder.users().await?;
    seeder.follows().await?;
    seeder.tags().await?;
    seeder.articles().await?;
    seeder.favorites().await?;
    seeder.comments().await?;
    seeder.progress.finish();
    println!(
        "Seeded {} users, {} articles, {} comments, {} favorites and {} follows in {:.1}s.",
        sizes.users,
        seeder.article_ids.len(),
        sizes.comments,
        seeder.favorites_made,
        seeder.follows_made,
        started.elapsed().as_secs_f64()
    );
    println!(
        "Sign in with email {} and password {DEMO_PASSWORD} (every demo account has it), e.g. \
         in the playground:\n  mutation {{ login(input: {{email: \"{}\", password: \"{DEMO_PASSWORD}\"}}) {{ token }} }}",
        first.email, first.email
    );
    Ok(())
}

/// Progress: a bar with rate and ETA on a terminal, a plain line per step otherwise.
enum Progress {
    Bar(ProgressBar),
    Lines,
}

impl Progress {
    fn new(total: u64) -> Self {
        if !std::io::stdout().is_terminal() {
            return Self::Lines;
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} rows  {per_sec}  ETA {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self::Bar(bar)
    }

    fn step(&self, name: &'static str) {
        match self {
            Self::Bar(bar) => bar.set_message(name),
            Self::Lines => println!("seeding {name}..."),
        }
    }

    fn advance(&self, rows: usize) {
        if let Self::Bar(bar) = self {
            bar.inc(rows as u64);
        }
    }

    fn done(&self, name: &'static str, rows: usize) {
        if let Self::Lines = self {
            println!("seeded {rows} {name}");
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_with_message("done");
        }
    }
}

/// The state of one seeding run.
struct Seeder<'a> {
    db: &'a DatabaseConnection,
    sizes: SeedArgs,
    rng: StdRng,
    /// Numbers the new users' names after those already there (with `--force`).
    offset: u64,
    progress: Progress,
    user_ids: Vec<i64>,
    tag_ids: Vec<i64>,
    article_ids: Vec<(i64, DateTime<Utc>)>,
    favorites_made: usize,
    follows_made: usize,
}

impl<'a> Seeder<'a> {
    fn new(db: &'a DatabaseConnection, sizes: SeedArgs, offset: u64) -> Result<Self, SeedError> {
        let total = u64::from(sizes.users)
            + u64::from(sizes.follows)
            + TAGS.len() as u64
            + u64::from(sizes.articles)
            + u64::from(sizes.favorites)
            + u64::from(sizes.comments);
        Ok(Self {
            db,
            sizes,
            rng: StdRng::seed_from_u64(sizes.seed),
            offset,
            progress: Progress::new(total),
            user_ids: Vec::new(),
            tag_ids: Vec::new(),
            article_ids: Vec::new(),
            favorites_made: 0,
            follows_made: 0,
        })
    }

    /// Registers the first user through the service, then inserts the others with its hash.
    async fn users(&mut self) -> Result<user::Model, SeedError> {
        self.progress.step("users");
        let passwords = Passwords::new(1)?;
        let first_name = self.username(0);
        let first = users::register(
            self.db,
            &passwords,
            Registration {
                username: first_name.clone(),
                email: format!("{first_name}@example.com"),
                password: DEMO_PASSWORD.to_owned(),
            },
        )
        .await?;
        self.user_ids.push(first.id);
        self.progress.advance(1);
        let count = self.sizes.users as usize;
        let mut rows = Vec::with_capacity(BATCH);
        for index in 1..count {
            let username = self.username(index as u64);
            let joined = epoch() + Duration::minutes(index as i64);
            rows.push(user::ActiveModel {
                email: Set(format!("{username}@example.com")),
                username: Set(username),
                password_hash: Set(first.password_hash.clone()),
                bio: Set(Some(self.sentence(6, 14))),
                image: Set(None),
                created_at: Set(joined),
                updated_at: Set(joined),
                token_version: Set(0),
                ..Default::default()
            });
            if rows.len() == BATCH || index + 1 == count {
                self.insert_users(std::mem::take(&mut rows)).await?;
            }
        }
        let names: Vec<String> = (0..count as u64).map(|i| self.username(i)).collect();
        self.user_ids = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Username.is_in(names))
            .order_by_asc(user::Column::Id)
            .into_tuple::<i64>()
            .all(self.db)
            .await?;
        self.progress.done("users", count);
        Ok(first)
    }

    async fn insert_users(&self, rows: Vec<user::ActiveModel>) -> Result<(), SeedError> {
        let count = rows.len();
        let txn = self.db.begin().await?;
        user::Entity::insert_many(rows).exec(&txn).await?;
        txn.commit().await?;
        self.progress.advance(count);
        Ok(())
    }

    /// Distinct pairs of different users.
    async fn follows(&mut self) -> Result<(), SeedError> {
        self.progress.step("follows");
        let users = self.user_ids.len();
        let wanted = (self.sizes.follows as usize).min(users * users.saturating_sub(1));
        let mut pairs = HashSet::with_capacity(wanted);
        let mut rows = Vec::with_capacity(BATCH);
        while pairs.len() < wanted {
            let follower = self.user_ids[self.rng.random_range(0..users)];
            let followee = self.user_ids[skewed(&mut self.rng, users)];
            if follower == followee || !pairs.insert((follower, followee)) {
                continue;
            }
            rows.push(follow::ActiveModel {
                follower_id: Set(follower),
                followee_id: Set(followee),
                created_at: Set(epoch() + Duration::hours(pairs.len() as i64)),
            });
            if rows.len() == BATCH || pairs.len() == wanted {
                let count = rows.len();
                let txn = self.db.begin().await?;
                follow::Entity::insert_many(std::mem::take(&mut rows))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
                self.progress.advance(count);
            }
        }
        self.follows_made = wanted;
        self.progress.done("follows", wanted);
        Ok(())
    }

    /// The tag vocabulary (kept when already there).
    async fn tags(&mut self) -> Result<(), SeedError> {
        self.progress.step("tags");
        let known: HashSet<String> = tag::Entity::find()
            .select_only()
            .column(tag::Column::Name)
            .filter(tag::Column::Name.is_in(TAGS.iter().copied()))
            .into_tuple::<String>()
            .all(self.db)
            .await?
            .into_iter()
            .collect();
        let missing: Vec<tag::ActiveModel> = TAGS
            .iter()
            .filter(|name| !known.contains(**name))
            .map(|name| tag::ActiveModel {
                name: Set((*name).to_owned()),
                ..Default::default()
            })
            .collect();
        if !missing.is_empty() {
            tag::Entity::insert_many(missing).exec(self.db).await?;
        }
        let mut ids: Vec<(String, i64)> = tag::Entity::find()
            .select_only()
            .column(tag::Column::Name)
            .column(tag::Column::Id)
            .filter(tag::Column::Name.is_in(TAGS.iter().copied()))
            .into_tuple()
            .all(self.db)
            .await?;
        ids.sort_by_key(|(name, _)| TAGS.iter().position(|tag| tag == name));
        self.tag_ids = ids.into_iter().map(|(_, id)| id).collect();
        self.progress.advance(TAGS.len());
        self.progress.done("tags", TAGS.len());
        Ok(())
    }

    /// Articles by random authors (some write much more than others), each with one to four tags.
    async fn articles(&mut self) -> Result<(), SeedError> {
        self.progress.step("articles");
        let count = self.sizes.articles as usize;
        let mut taken: HashSet<String> = HashSet::new();
        let mut batch: Vec<(article::ActiveModel, Vec<i64>)> = Vec::with_capacity(BATCH);
        for index in 0..count {
            let title = self.title();
            let base = articles::slug::slugify(&title);
            let mut slug = format!("{base}-{}", self.offset + index as u64 + 1);
            while !taken.insert(slug.clone()) {
                slug.push('x');
            }
            let author = self.user_ids[skewed(&mut self.rng, self.user_ids.len())];
            let published = epoch()
                + Duration::minutes((index as i64) * 7 + self.rng.random_range(0..7))
                + Duration::days(1);
            let tag_count = self.rng.random_range(1..=4).min(self.tag_ids.len());
            let tags: Vec<i64> = self
                .tag_ids
                .choose_multiple(&mut self.rng, tag_count)
                .copied()
                .collect();
            let description = self.sentence(8, 16);
            let body = self.body();
            batch.push((
                article::ActiveModel {
                    slug: Set(slug),
                    title: Set(title),
                    description: Set(description),
                    body: Set(body),
                    author_id: Set(author),
                    created_at: Set(published),
                    updated_at: Set(published),
                    ..Default::default()
                },
                tags,
            ));
            if batch.len() == BATCH || index + 1 == count {
                self.insert_articles(std::mem::take(&mut batch)).await?;
            }
        }
        self.progress.done("articles", count);
        Ok(())
    }

    async fn insert_articles(
        &mut self,
        batch: Vec<(article::ActiveModel, Vec<i64>)>,
    ) -> Result<(), SeedError> {
        let count = batch.len();
        let txn = self.db.begin().await?;
        let mut links = Vec::new();
        for (row, tags) in batch {
            let published = match &row.created_at {
                Set(at) => *at,
                _ => epoch(),
            };
            let created = article::Entity::insert(row).exec(&txn).await?;
            let id = created.last_insert_id;
            self.article_ids.push((id, published));
            links.extend(tags.into_iter().map(|tag_id| article_tag::ActiveModel {
                article_id: Set(id),
                tag_id: Set(tag_id),
            }));
        }
        for chunk in links.chunks(BATCH) {
            article_tag::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        self.progress.advance(count);
        Ok(())
    }

    /// Distinct user and article pairs; popular articles gather more.
    async fn favorites(&mut self) -> Result<(), SeedError> {
        self.progress.step("favorites");
        let articles = self.article_ids.len();
        let users = self.user_ids.len();
        let wanted = (self.sizes.favorites as usize).min(articles * users);
        let mut pairs = HashSet::with_capacity(wanted);
        let mut rows = Vec::with_capacity(BATCH);
        while pairs.len() < wanted {
            let user_id = self.user_ids[self.rng.random_range(0..users)];
            let (article_id, published) = self.article_ids[skewed(&mut self.rng, articles)];
            if !pairs.insert((user_id, article_id)) {
                continue;
            }
            rows.push(favorite::ActiveModel {
                user_id: Set(user_id),
                article_id: Set(article_id),
                created_at: Set(published + Duration::hours(self.rng.random_range(1..240))),
            });
            if rows.len() == BATCH || pairs.len() == wanted {
                let count = rows.len();
                let txn = self.db.begin().await?;
                favorite::Entity::insert_many(std::mem::take(&mut rows))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
                self.progress.advance(count);
            }
        }
        self.favorites_made = wanted;
        self.progress.done("favorites", wanted);
        Ok(())
    }

    /// Comments on random articles by random users, after the article was published.
    async fn comments(&mut self) -> Result<(), SeedError> {
        self.progress.step("comments");
        let count = if self.article_ids.is_empty() {
            0
        } else {
            self.sizes.comments as usize
        };
        let mut rows = Vec::with_capacity(BATCH);
        for index in 0..count {
            let (article_id, published) =
                self.article_ids[skewed(&mut self.rng, self.article_ids.len())];
            let author = self.user_ids[self.rng.random_range(0..self.user_ids.len())];
            let at = published + Duration::minutes(self.rng.random_range(5..20_000));
            let sentences = self.rng.random_range(1..=3);
            let body = (0..sentences)
                .map(|_| self.sentence(5, 18))
                .collect::<Vec<_>>()
                .join(" ");
            rows.push(comment::ActiveModel {
                body: Set(body),
                article_id: Set(article_id),
                author_id: Set(author),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            });
            if rows.len() == BATCH || index + 1 == count {
                let batch = rows.len();
                let txn = self.db.begin().await?;
                comment::Entity::insert_many(std::mem::take(&mut rows))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
                self.progress.advance(batch);
            }
        }
        self.progress.done("comments", count);
        Ok(())
    }

    /// The username of the `index`-th demo user: a name and a number, unique per run.
    fn username(&self, index: u64) -> String {
        let number = self.offset + index + 1;
        let first = FIRST_NAMES[(number as usize * 7) % FIRST_NAMES.len()];
        let last = LAST_NAMES[(number as usize * 13) % LAST_NAMES.len()];
        format!("{first}_{last}{number}")
    }

    /// An article title.
    fn title(&mut self) -> String {
        let pattern = *TITLES.choose(&mut self.rng).unwrap_or(&"{} in practice");
        let subject = *SUBJECTS.choose(&mut self.rng).unwrap_or(&"software");
        let title = pattern.replacen("{}", subject, 1);
        let mut chars = title.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or(title)
    }

    /// A sentence of `min..=max` words, capitalised and with a full stop.
    fn sentence(&mut self, min: usize, max: usize) -> String {
        let length = self.rng.random_range(min..=max);
        let mut words: Vec<&str> = (0..length)
            .map(|_| *WORDS.choose(&mut self.rng).unwrap_or(&"code"))
            .collect();
        words.shuffle(&mut self.rng);
        let text = words.join(" ");
        let mut chars = text.chars();
        let capitalised: String = chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        format!("{capitalised}.")
    }

    /// An article body: a few Markdown paragraphs, one of them sometimes a list.
    fn body(&mut self) -> String {
        let paragraphs = self.rng.random_range(3..=6);
        let mut out = Vec::with_capacity(paragraphs);
        for index in 0..paragraphs {
            if index == 2 && self.rng.random_bool(0.4) {
                let items: Vec<String> = (0..3)
                    .map(|_| format!("- {}", self.sentence(3, 8)))
                    .collect();
                out.push(items.join("\n"));
            } else {
                let sentences = self.rng.random_range(2..=5);
                let text: Vec<String> = (0..sentences).map(|_| self.sentence(6, 16)).collect();
                out.push(text.join(" "));
            }
        }
        out.join("\n\n")
    }
}

/// An index in `0..len` that favours the start: a few authors and articles get most of the
/// attention, as on a real site.
fn skewed(rng: &mut StdRng, len: usize) -> usize {
    let uniform: f64 = rng.random();
    ((uniform * uniform) * len as f64) as usize % len.max(1)
}

/// When the demo timeline starts: fixed, so the data is the same at every run.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The tags articles are filed under.
const TAGS: &[&str] = &[
    "rust",
    "graphql",
    "postgresql",
    "sqlite",
    "redis",
    "performance",
    "testing",
    "security",
    "architecture",
    "devops",
    "observability",
    "kubernetes",
    "frontend",
    "react",
    "typescript",
    "design",
    "career",
    "open-source",
    "databases",
    "caching",
    "async",
    "api-design",
    "tutorial",
    "opinion",
];

const FIRST_NAMES: &[&str] = &[
    "ada", "alan", "barbara", "brian", "claude", "dennis", "donald", "edsger", "frances", "grace",
    "guido", "hedy", "ivan", "james", "joan", "john", "ken", "leslie", "linus", "margaret",
    "niklaus", "radia", "rob", "sophie", "tim", "yukihiro",
];

const LAST_NAMES: &[&str] = &[
    "allen",
    "backus",
    "cerf",
    "dijkstra",
    "engelbart",
    "floyd",
    "goldberg",
    "hamilton",
    "hopper",
    "iverson",
    "kay",
    "knuth",
    "lamport",
    "liskov",
    "lovelace",
    "mccarthy",
    "perlman",
    "ritchie",
    "stroustrup",
    "thompson",
    "torvalds",
    "turing",
    "wirth",
];

const TITLES: &[&str] = &[
    "{} in practice",
    "what I learned shipping {}",
    "a gentle introduction to {}",
    "why {} is harder than it looks",
    "ten mistakes with {}",
    "{}: the missing guide",
    "rethinking {}",
    "how we scaled {}",
    "{} without the hype",
    "debugging {} in production",
    "notes on {}",
    "the case for boring {}",
];

const SUBJECTS: &[&str] = &[
    "connection pools",
    "cursor pagination",
    "response caching",
    "rate limiting",
    "password hashing",
    "schema evolution",
    "data loaders",
    "graceful shutdown",
    "distributed tracing",
    "feature flags",
    "database migrations",
    "async Rust",
    "GraphQL subscriptions",
    "load testing",
    "code review",
    "error handling",
    "read replicas",
    "zero-downtime deploys",
    "API design",
    "on-call rotations",
];

const WORDS: &[&str] = &[
    "the",
    "a",
    "every",
    "our",
    "this",
    "team",
    "service",
    "query",
    "request",
    "latency",
    "cache",
    "index",
    "schema",
    "client",
    "server",
    "database",
    "deploy",
    "release",
    "test",
    "bug",
    "fix",
    "design",
    "trade-off",
    "budget",
    "page",
    "cursor",
    "token",
    "user",
    "article",
    "comment",
    "measure",
    "profile",
    "ship",
    "review",
    "refactor",
    "simple",
    "fast",
    "careful",
    "small",
    "clear",
    "robust",
    "usually",
    "never",
    "always",
    "before",
    "after",
    "because",
    "while",
    "when",
    "then",
    "with",
    "without",
    "across",
    "under",
    "load",
    "traffic",
    "error",
    "retry",
    "timeout",
    "queue",
    "worker",
    "thread",
    "memory",
    "disk",
    "network",
    "replica",
    "primary",
    "writes",
    "reads",
    "scales",
    "breaks",
    "works",
    "matters",
    "helps",
    "costs",
    "saves",
    "learns",
    "grows",
    "changes",
    "stays",
    "runs",
    "waits",
    "fails",
    "recovers",
];
