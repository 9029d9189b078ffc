//! Users, follows, articles, tags, article tags, favorites and comments, with their keys and indexes.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates the whole first schema.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000001_create_schema"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Username,
    Email,
    PasswordHash,
    Bio,
    Image,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Follows {
    Table,
    FollowerId,
    FolloweeId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Articles {
    Table,
    Id,
    Slug,
    Title,
    Description,
    Body,
    AuthorId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tags {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden, Clone, Copy)]
enum ArticleTags {
    Table,
    ArticleId,
    TagId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Favorites {
    Table,
    UserId,
    ArticleId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Comments {
    Table,
    Id,
    Body,
    ArticleId,
    AuthorId,
    CreatedAt,
    UpdatedAt,
}

/// A foreign key from `from_table.from_col` to `to_table.id` that cascades deletes.
fn cascade(
    name: &str,
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// A plain (non-unique) index on `columns` of `table`.
fn index<T: IntoIden + Copy, C: IntoIden + Copy>(
    name: &str,
    table: T,
    columns: &[C],
) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement.name(name).table(table);
    for column in columns {
        statement.col(*column);
    }
    statement.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string(Users::Username))
                    .col(string(Users::Email))
                    .col(string(Users::PasswordHash))
                    .col(text_null(Users::Bio))
                    .col(text_null(Users::Image))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Case-insensitive uniqueness needs expression indexes, which both backends support.
        let db = manager.get_connection();
        db.execute_unprepared("CREATE UNIQUE INDEX users_username_key ON users (lower(username))")
            .await?;
        db.execute_unprepared("CREATE UNIQUE INDEX users_email_key ON users (lower(email))")
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Follows::Table)
                    .col(big_integer(Follows::FollowerId))
                    .col(big_integer(Follows::FolloweeId))
                    .col(timestamp_with_time_zone(Follows::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Follows::FollowerId)
                            .col(Follows::FolloweeId),
                    )
                    .foreign_key(&mut cascade(
                        "follows_follower_fk",
                        Follows::Table,
                        Follows::FollowerId,
                        Users::Table,
                        Users::Id,
                    ))
                    .foreign_key(&mut cascade(
                        "follows_followee_fk",
                        Follows::Table,
                        Follows::FolloweeId,
                        Users::Table,
                        Users::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "follows_followee_idx",
                Follows::Table,
                &[Follows::FolloweeId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Articles::Table)
                    .col(big_pk_auto(Articles::Id))
                    .col(string(Articles::Slug))
                    .col(text(Articles::Title))
                    .col(text(Articles::Description))
                    .col(text(Articles::Body))
                    .col(big_integer(Articles::AuthorId))
                    .col(timestamp_with_time_zone(Articles::CreatedAt))
                    .col(timestamp_with_time_zone(Articles::UpdatedAt))
                    .foreign_key(&mut cascade(
                        "articles_author_fk",
                        Articles::Table,
                        Articles::AuthorId,
                        Users::Table,
                        Users::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("articles_slug_key")
                    .table(Articles::Table)
                    .col(Articles::Slug)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "articles_created_idx",
                Articles::Table,
                &[Articles::CreatedAt, Articles::Id],
            ))
            .await?;
        manager
            .create_index(index(
                "articles_author_created_idx",
                Articles::Table,
                &[Articles::AuthorId, Articles::CreatedAt, Articles::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tags::Table)
                    .col(big_pk_auto(Tags::Id))
                    .col(string(Tags::Name))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tags_name_key")
                    .table(Tags::Table)
                    .col(Tags::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ArticleTags::Table)
                    .col(big_integer(ArticleTags::ArticleId))
                    .col(big_integer(ArticleTags::TagId))
                    .primary_key(
                        Index::create()
                            .col(ArticleTags::ArticleId)
                            .col(ArticleTags::TagId),
                    )
                    .foreign_key(&mut cascade(
                        "article_tags_article_fk",
                        ArticleTags::Table,
                        ArticleTags::ArticleId,
                        Articles::Table,
                        Articles::Id,
                    ))
                    .foreign_key(&mut cascade(
                        "article_tags_tag_fk",
                        ArticleTags::Table,
                        ArticleTags::TagId,
                        Tags::Table,
                        Tags::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "article_tags_tag_idx",
                ArticleTags::Table,
                &[ArticleTags::TagId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Favorites::Table)
                    .col(big_integer(Favorites::UserId))
                    .col(big_integer(Favorites::ArticleId))
                    .col(timestamp_with_time_zone(Favorites::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Favorites::UserId)
                            .col(Favorites::ArticleId),
                    )
                    .foreign_key(&mut cascade(
                        "favorites_user_fk",
                        Favorites::Table,
                        Favorites::UserId,
                        Users::Table,
                        Users::Id,
                    ))
                    .foreign_key(&mut cascade(
                        "favorites_article_fk",
                        Favorites::Table,
                        Favorites::ArticleId,
                        Articles::Table,
                        Articles::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "favorites_article_idx",
                Favorites::Table,
                &[Favorites::ArticleId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Comments::Table)
                    .col(big_pk_auto(Comments::Id))
                    .col(text(Comments::Body))
                    .col(big_integer(Comments::ArticleId))
                    .col(big_integer(Comments::AuthorId))
                    .col(timestamp_with_time_zone(Comments::CreatedAt))
                    .col(timestamp_with_time_zone(Comments::UpdatedAt))
                    .foreign_key(&mut cascade(
                        "comments_article_fk",
                        Comments::Table,
                        Comments::ArticleId,
                        Articles::Table,
                        Articles::Id,
                    ))
                    .foreign_key(&mut cascade(
                        "comments_author_fk",
                        Comments::Table,
                        Comments::AuthorId,
                        Users::Table,
                        Users::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "comments_article_created_idx",
                Comments::Table,
                &[Comments::ArticleId, Comments::CreatedAt, Comments::Id],
            ))
            .await?;
        manager
            .create_index(index(
                "comments_author_idx",
                Comments::Table,
                &[Comments::AuthorId],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Comments::Table.into_iden(),
            Favorites::Table.into_iden(),
            ArticleTags::Table.into_iden(),
            Tags::Table.into_iden(),
            Articles::Table.into_iden(),
            Follows::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
