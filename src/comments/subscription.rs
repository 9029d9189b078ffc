//! The root subscription fields of comments.

use std::sync::Arc;

use async_graphql::{Context, Subscription};
use entity::comment;
use futures::Stream;
use sea_orm::DatabaseConnection;

use super::service;
use super::types::Comment;
use crate::articles;
use crate::changes::Change;
use crate::graphql::subscription::{self, Interest};
use crate::graphql::{ContextExt, FieldResult, NodeKind};
use crate::users;
use crate::users::loaders::UserById;
use crate::users::service::Profile;

/// Comments' part of `Subscription`.
#[derive(Default)]
pub struct CommentsSubscription;

/// The authors of the new comments of a change, read once for every subscriber (each subscriber's
/// loaders are fed them instead of reading them again).
async fn authors(
    change: &Change,
    db: &DatabaseConnection,
    comments: &[comment::Model],
) -> Arc<Vec<Profile>> {
    let ids: Vec<i64> = comments.iter().map(|comment| comment.author_id).collect();
    change
        .shared(&format!("Comment:authors:{ids:?}"), async {
            match users::service::find_by_ids(db, &ids).await {
                Ok(profiles) => Arc::new(profiles),
                Err(err) => {
                    tracing::warn!(error = %err, "the authors of new comments could not be read");
                    Arc::default()
                }
            }
        })
        .await
}

/// The new comments of a change, read once for every subscriber.
async fn created(change: &Change, db: &DatabaseConnection) -> Arc<Vec<comment::Model>> {
    let ids = change.created(NodeKind::Comment.name());
    if ids.is_empty() {
        return Arc::default();
    }
    change
        .shared("Comment:created", async {
            match service::find_by_ids(db, &ids).await {
                Ok(comments) => Arc::new(comments),
                Err(err) => {
                    tracing::warn!(error = %err, "new comments could not be read");
                    Arc::default()
                }
            }
        })
        .await
}

#[Subscription]
impl CommentsSubscription {
    /// A comment added to this article, after its transaction commits.
    async fn comment_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The slug of the article.")] slug: String,
    ) -> FieldResult<impl Stream<Item = Comment> + use<>> {
        let step = subscription::step(ctx)?;
        let scope = &step.scope;
        let Some(change) = &step.change else {
            let article = articles::service::find_by_slug(ctx.db(), &slug)
                .await?
                .ok_or_else(|| articles::service::no_such_article(&slug))?;
            scope.anchor(article.id, &article.slug);
            let (db, article_id) = (ctx.db().clone(), article.id);
            let interest: Interest = Arc::new(move |change: Arc<Change>| {
                let db = db.clone();
                Box::pin(async move {
                    created(&change, &db)
                        .await
                        .iter()
                        .any(|comment| comment.article_id == article_id)
                })
            });
            scope.listen(interest);
            return Ok(futures::stream::iter(Vec::new()));
        };
        let article_id = scope.anchored();
        let comments: Vec<comment::Model> = created(change, ctx.db())
            .await
            .iter()
            .filter(|comment| Some(comment.article_id) == article_id)
            .cloned()
            .collect();
        let authors = authors(change, ctx.db(), &comments).await;
        ctx.loader::<UserById>()
            .feed_many(authors.iter().map(|profile| (profile.id, profile.clone())))
            .await;
        Ok(futures::stream::iter(
            comments.into_iter().map(Comment).collect::<Vec<_>>(),
        ))
    }
}
