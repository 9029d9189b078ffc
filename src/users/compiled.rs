//! How the fields of users compile (see `crate::compiled`): `User` wherever it is reached, and
//! the root fields `user(username)` and `viewer`. A field not declared here is not compiled: a
//! query selecting it runs through the executor.

use sea_orm::DatabaseConnection;

use crate::articles::compiled::{ArticleFetch, ArticleSelection, Fetched, Requests};
use crate::articles::service::UserList;
use crate::error::AppError;
use crate::graphql::compiled::{
    ConnectionSelection, Fallback, FieldId, FieldIds, Key, Selected, Writer,
};
use crate::graphql::{GlobalId, NodeKind, cache_tags};
use crate::pagination::{Page, PageArgs};

use super::service::{self, ProfileExtras, ProfileRow};

/// What to fetch with each user, whoever asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProfileFetch {
    /// `following` is selected (the viewer's follows are fetched when signed in).
    pub following: bool,
    /// `followersCount` is selected.
    pub followers_count: bool,
    /// `email` is selected.
    pub email: bool,
    /// `bio` is selected.
    pub bio: bool,
    /// `image` is selected.
    pub image: bool,
}

impl ProfileFetch {
    /// The extras to fetch for `viewer`.
    pub fn extras(self, viewer: Option<i64>) -> ProfileExtras {
        ProfileExtras {
            following_of: viewer.filter(|_| self.following),
            followers_count: self.followers_count,
            without_email: !self.email,
            without_bio: !self.bio,
            without_image: !self.image,
        }
    }

    /// What both ask.
    pub fn union(self, other: Self) -> Self {
        Self {
            following: self.following || other.following,
            followers_count: self.followers_count || other.followers_count,
            email: self.email || other.email,
            bio: self.bio || other.bio,
            image: self.image || other.image,
        }
    }
}

/// `User.articles` or `User.favoriteArticles`, compiled: a page of the user's list, fetched for
/// every user at its level in one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct UserArticlesField {
    /// Where its rows are kept.
    pub id: FieldId,
    /// Which list.
    pub list: UserList,
    /// Which page.
    pub args: PageArgs,
    /// Its selection.
    pub connection: ConnectionSelection<ArticleSelection>,
    /// What to fetch with each article (every node selection of the connection).
    pub fetch: ArticleFetch,
}

impl UserArticlesField {
    fn compile(field: &Selected, list: UserList, ids: &mut FieldIds) -> Result<Self, Fallback> {
        let args = PageArgs::keyset(field.int("first")?, field.string("after")?.as_deref())
            .map_err(|_| Fallback::Unsupported("invalid page arguments"))?;
        let connection = ConnectionSelection::compile(
            field.object("ArticleConnection")?,
            "ArticleConnection",
            "ArticleEdge",
            "Article",
            |fields| ArticleSelection::compile(fields, ids),
        )?;
        let fetch = ArticleFetch::of(connection.nodes());
        Ok(Self {
            id: ids.allocate(),
            list,
            args,
            connection,
            fetch,
        })
    }
}

/// A field of `User`.
#[derive(Debug, Clone, PartialEq)]
pub enum UserField {
    /// `__typename`.
    Typename,
    /// `id`.
    Id,
    /// `username`.
    Username,
    /// `email` (private).
    Email,
    /// `bio`.
    Bio,
    /// `image`.
    Image,
    /// `following` (private).
    Following,
    /// `followersCount`.
    FollowersCount,
    /// `createdAt`.
    CreatedAt,
    /// `articles(first, after)` or `favoriteArticles(first, after)`.
    Articles(Box<UserArticlesField>),
}

/// A selection of `User`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSelection {
    /// The fields, in selection order.
    pub fields: Vec<(Key, UserField)>,
    /// What to fetch with the user.
    pub fetch: ProfileFetch,
}

impl UserSelection {
    /// Compiles the selection `fields` of `User`.
    pub fn compile(fields: &[Selected], ids: &mut FieldIds) -> Result<Self, Fallback> {
        let mut compiled = Vec::with_capacity(fields.len());
        let mut fetch = ProfileFetch::default();
        for field in fields {
            let item =
                match field.name.as_str() {
                    "__typename" => UserField::Typename,
                    "id" => UserField::Id,
                    "username" => UserField::Username,
                    "email" => {
                        fetch.email = true;
                        UserField::Email
                    }
                    "bio" => {
                        fetch.bio = true;
                        UserField::Bio
                    }
                    "image" => {
                        fetch.image = true;
                        UserField::Image
                    }
                    "following" => {
                        fetch.following = true;
                        UserField::Following
                    }
                    "followersCount" => {
                        fetch.followers_count = true;
                        UserField::FollowersCount
                    }
                    "createdAt" => UserField::CreatedAt,
                    "articles" => UserField::Articles(Box::new(UserArticlesField::compile(
                        field,
                        UserList::Written,
                        ids,
                    )?)),
                    "favoriteArticles" => UserField::Articles(Box::new(
                        UserArticlesField::compile(field, UserList::Favorited, ids)?,
                    )),
                    _ => return Err(Fallback::Unsupported("a field of User")),
                };
            compiled.push((Key::of(&field.key), item));
        }
        Ok(Self {
            fields: compiled,
            fetch,
        })
    }

    /// What to fetch for every selection of `selections`.
    pub fn fetch_of<'a>(selections: impl Iterator<Item = &'a Self>) -> Option<ProfileFetch> {
        selections
            .map(|selection| selection.fetch)
            .reduce(ProfileFetch::union)
    }

    /// The later statements its fields need, for the users `ids` at this level.
    pub fn needs<'p>(&'p self, ids: &[i64], requests: &mut Requests<'p>) {
        for (_, field) in &self.fields {
            if let UserField::Articles(articles) = field {
                requests.user_articles.push((articles, ids.to_vec()));
            }
        }
    }

    /// Writes the user of `row`; its cost (an object: 1, with its connections).
    pub fn write(
        &self,
        out: &mut Writer,
        row: &ProfileRow,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        // Every field skipped: null, as async-graphql answers it.
        if self.fields.is_empty() {
            out.null();
            return Ok(0);
        }
        let profile = &row.profile;
        let mut cost = 1u64;
        out.byte(b'{');
        for (index, (key, field)) in self.fields.iter().enumerate() {
            out.key(key, index == 0);
            match field {
                UserField::Typename => out.str("User")?,
                UserField::Id => out.str(&GlobalId::encode(NodeKind::User, profile.id))?,
                UserField::Username => out.str(&profile.username)?,
                UserField::Email => {
                    out.private();
                    let own = out.viewer == Some(profile.id);
                    out.opt_str(own.then_some(profile.email.as_str()))?;
                }
                UserField::Bio => out.opt_str(profile.bio.as_deref())?,
                UserField::Image => out.opt_str(profile.image.as_deref())?,
                UserField::Following => {
                    out.private();
                    let following = match out.viewer {
                        None => false,
                        Some(_) => row
                            .following
                            .ok_or(Fallback::Missing("whether the viewer follows"))?,
                    };
                    out.bool(following);
                }
                UserField::FollowersCount => out.int(
                    row.followers_count
                        .ok_or(Fallback::Missing("a follower count"))?,
                ),
                UserField::CreatedAt => out.datetime(profile.created_at)?,
                UserField::Articles(articles) => {
                    cost = cost.saturating_add(write_list(out, articles, profile.id, fetched)?);
                }
            }
        }
        out.byte(b'}');
        Ok(cost)
    }
}

/// Writes one user's list of articles; its cost.
fn write_list(
    out: &mut Writer,
    field: &UserArticlesField,
    user_id: i64,
    fetched: &Fetched,
) -> Result<u64, Fallback> {
    let empty = Page::empty(field.args.after.is_some());
    let page = fetched
        .article_pages
        .get(&(field.id, user_id))
        .unwrap_or(&empty);
    let total = field.connection.total.then(|| {
        fetched
            .counts
            .get(&(field.id, user_id))
            .copied()
            .unwrap_or(0)
    });
    if field.connection.reads_list() {
        out.read(cache_tags::list(NodeKind::Article));
        for (_, row) in &page.items {
            out.read(cache_tags::entity(NodeKind::Article, row.article.id));
        }
    }
    field
        .connection
        .write(out, page, total, |out, selection, row| {
            selection.write(out, row, fetched)
        })
}

/// `Query.user(username)`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRoot {
    username: String,
    selection: UserSelection,
}

impl UserRoot {
    /// Compiles `user(username)`.
    pub fn compile(field: &Selected, ids: &mut FieldIds) -> Result<Self, Fallback> {
        let username = field
            .string("username")?
            .ok_or(Fallback::Unsupported("a missing username"))?;
        let selection = UserSelection::compile(field.object("User")?, ids)?;
        Ok(Self {
            username,
            selection,
        })
    }

    /// Runs its statement.
    pub async fn fetch(
        &self,
        db: &DatabaseConnection,
        viewer: Option<i64>,
    ) -> Result<Option<ProfileRow>, AppError> {
        service::profile_by_username_with(db, &self.username, self.selection.fetch.extras(viewer))
            .await
    }

    /// Its selection.
    pub fn selection(&self) -> &UserSelection {
        &self.selection
    }

    /// Writes the user (or null); its cost.
    pub fn write(
        &self,
        out: &mut Writer,
        row: Option<&ProfileRow>,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        out.read(cache_tags::list(NodeKind::User));
        match row {
            Some(row) => {
                out.read(cache_tags::entity(NodeKind::User, row.profile.id));
                self.selection.write(out, row, fetched)
            }
            None => {
                out.null();
                Ok(0)
            }
        }
    }
}

/// `Query.viewer`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewerRoot {
    selection: UserSelection,
}

impl ViewerRoot {
    /// Compiles `viewer`.
    pub fn compile(field: &Selected, ids: &mut FieldIds) -> Result<Self, Fallback> {
        Ok(Self {
            selection: UserSelection::compile(field.object("User")?, ids)?,
        })
    }

    /// Runs its statement (none for an anonymous viewer).
    pub async fn fetch(
        &self,
        db: &DatabaseConnection,
        viewer: Option<i64>,
    ) -> Result<Option<ProfileRow>, AppError> {
        let Some(user_id) = viewer else {
            return Ok(None);
        };
        let extras = self.selection.fetch.extras(viewer);
        Ok(service::profiles_by_ids_with(db, &[user_id], extras)
            .await?
            .pop())
    }

    /// Its selection.
    pub fn selection(&self) -> &UserSelection {
        &self.selection
    }

    /// Writes the viewer (or null); its cost.
    pub fn write(
        &self,
        out: &mut Writer,
        row: Option<&ProfileRow>,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        out.private();
        if let Some(viewer) = out.viewer {
            out.read(cache_tags::entity(NodeKind::User, viewer));
        }
        match row {
            Some(row) => self.selection.write(out, row, fetched),
            None => {
                out.null();
                Ok(0)
            }
        }
    }
}
