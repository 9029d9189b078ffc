//! The root subscription fields of articles.

use std::sync::Arc;

use async_graphql::{Context, Subscription};
use entity::article;
use futures::Stream;
use sea_orm::DatabaseConnection;

use super::service;
use super::types::{Article, ArticleChange};
use crate::changes::Change;
use crate::error::AppError;
use crate::graphql::subscription::{self, Interest};
use crate::graphql::{ContextExt, FieldResult, NodeKind};
use crate::users::loaders::UserById;
use crate::users::service::Profile;
use crate::{tags, users};

/// Articles' part of `Subscription`.
#[derive(Default)]
pub struct ArticlesSubscription;

/// A new article as every subscriber of a change sees it: its row, tag names and author.
#[derive(Clone, Default)]
struct Published(Option<Arc<(article::Model, Vec<String>, Profile)>>);

/// An article as a change left it, read once for every subscriber.
#[derive(Clone, Default)]
enum Current {
    /// It could not be read (logged): neither its state nor its deletion is known.
    #[default]
    Unreadable,
    /// It is gone.
    Deleted,
    /// Its row and its author.
    Present(Arc<(article::Model, Option<Profile>)>),
}

/// The article `id` and its author as the change left them.
async fn current(change: &Change, db: &DatabaseConnection, id: i64) -> Current {
    change
        .shared(&format!("Article:{id}"), async {
            let article = match service::find_by_ids(db, &[id]).await {
                Ok(mut found) => match found.pop() {
                    Some(article) => article,
                    None => return Current::Deleted,
                },
                Err(err) => {
                    tracing::warn!(error = %err, "a changed article could not be read");
                    return Current::Unreadable;
                }
            };
            match users::service::find_by_ids(db, &[article.author_id]).await {
                Ok(mut authors) => Current::Present(Arc::new((article, authors.pop()))),
                Err(err) => {
                    tracing::warn!(error = %err, "a changed article's author could not be read");
                    Current::Unreadable
                }
            }
        })
        .await
}

/// The new article `id` with its tag names and author's name, read once per change.
async fn published(change: &Change, db: &DatabaseConnection, id: i64) -> Published {
    change
        .shared(&format!("Published:{id}"), async {
            let Current::Present(now) = current(change, db, id).await else {
                return None;
            };
            let (article, author) = now.as_ref();
            let tags = tags::service::names_by_article(db, &[id]).await.ok()?;
            let tags = tags.get(&id).cloned().unwrap_or_default();
            Some(Arc::new((article.clone(), tags, author.clone()?)))
        })
        .await
        .map_or_else(Published::default, |article| Published(Some(article)))
}

/// The articles a change published with `tag` and by `author` (each when given).
async fn matching(
    change: &Change,
    db: &DatabaseConnection,
    (tag, author): &(Option<String>, Option<String>),
) -> Vec<Arc<(article::Model, Vec<String>, Profile)>> {
    let mut found = Vec::new();
    for id in change.created(NodeKind::Article.name()) {
        let Published(Some(new)) = published(change, db, id).await else {
            continue;
        };
        let (_, tags, profile) = new.as_ref();
        let tagged = tag.as_ref().is_none_or(|tag| tags.contains(tag));
        // As `articles(author:)` and `user(username:)` match: normalised, in any case.
        let by = author.as_ref().is_none_or(|author| {
            crate::validate::normalize_username(author).to_lowercase()
                == profile.username.to_lowercase()
        });
        if tagged && by {
            found.push(new);
        }
    }
    found
}

#[Subscription]
impl ArticlesSubscription {
    /// An article published after the subscription started, optionally only with this tag or by this author.
    async fn article_published(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only articles with this tag.")] tag: Option<String>,
        #[graphql(desc = "Only articles by the user with this username.")] author: Option<String>,
    ) -> FieldResult<impl Stream<Item = Article> + use<>> {
        let step = subscription::step(ctx)?;
        let wanted = Arc::new((tag, author));
        let Some(change) = &step.change else {
            let db = ctx.db().clone();
            let interest: Interest = Arc::new(move |change: Arc<Change>| {
                let (db, wanted) = (db.clone(), Arc::clone(&wanted));
                Box::pin(async move { !matching(&change, &db, &wanted).await.is_empty() })
            });
            step.scope.listen(interest);
            return Ok(futures::stream::iter(Vec::new()));
        };
        let new = matching(change, ctx.db(), &wanted).await;
        ctx.loader::<UserById>()
            .feed_many(new.iter().map(|new| (new.2.id, new.2.clone())))
            .await;
        Ok(futures::stream::iter(
            new.into_iter()
                .map(|new| Article(new.0.clone()))
                .collect::<Vec<_>>(),
        ))
    }

    /// A change to an article: its new state (also its favoritesCount), or null fields and `deleted: true` once deleted.
    async fn article_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The slug of the article to follow (it is followed when its slug changes)."
        )]
        slug: String,
    ) -> FieldResult<impl Stream<Item = ArticleChange> + use<>> {
        let step = subscription::step(ctx)?;
        let scope = &step.scope;
        let Some(change) = &step.change else {
            let article = service::find_by_slug(ctx.db(), &slug)
                .await?
                .ok_or_else(|| service::no_such_article(&slug))?;
            scope.anchor(article.id, &article.slug);
            let id = article.id;
            let interest: Interest = Arc::new(move |change: Arc<Change>| {
                Box::pin(async move { change.changed(NodeKind::Article.name()).contains(&id) })
            });
            scope.listen(interest);
            return Ok(futures::stream::iter(Vec::new()));
        };
        let Some(id) = scope.anchored() else {
            return Ok(futures::stream::iter(Vec::new()));
        };
        let event = match current(change, ctx.db(), id).await {
            Current::Present(now) => {
                let (article, author) = now.as_ref();
                if let Some(author) = author {
                    ctx.loader::<UserById>()
                        .feed_one(author.id, author.clone())
                        .await;
                }
                let article = article.clone();
                scope.relabel(&article.slug);
                ArticleChange {
                    slug: article.slug.clone(),
                    deleted: false,
                    article: Some(Article(article)),
                }
            }
            Current::Unreadable => {
                // Not a deletion: this event fails, and the subscription goes on.
                return Err(AppError::internal(std::io::Error::other(
                    "the changed article could not be read",
                ))
                .into());
            }
            Current::Deleted => {
                scope.finish();
                ArticleChange {
                    slug: scope.label(),
                    deleted: true,
                    article: None,
                }
            }
        };
        Ok(futures::stream::iter(vec![event]))
    }
}
