//! Schema evolution against real traffic: `conduit schema check` classifies every change from a
//! baseline schema to a proposed one (see [`diff`]) and names, for each breaking or dangerous
//! change, the clients and operations that used what it touches in the usage records (see
//! [`crate::usage`]); `conduit schema usage` answers who uses one coordinate.

pub mod diff;

use std::fmt::Write as _;

use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;

use self::diff::{Change, Criticality, DiffError};
use crate::usage::now_secs;
use crate::usage::store::{self, Use};

/// Why a check or a usage report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvolutionError {
    /// A schema file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A schema cannot be parsed.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// The usage records cannot be read.
    #[error("cannot read the usage records: {0}")]
    Database(#[from] DbErr),
}

/// One change and who used what it touches.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedChange {
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// The coordinate whose usage was looked up.
    pub looked_up: String,
    /// The clients and operations that used it in the window (breaking and dangerous changes).
    pub usage: Vec<Use>,
}

/// The result of `conduit schema check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// What the proposed schema is compared with.
    pub against: String,
    /// The window of usage, in days.
    pub days: u32,
    /// Every change, breaking first.
    pub changes: Vec<CheckedChange>,
}

impl CheckReport {
    /// Breaking changes that some client used in the window.
    pub fn breaking_used(&self) -> usize {
        self.changes
            .iter()
            .filter(|checked| {
                checked.change.criticality == Criticality::Breaking && !checked.usage.is_empty()
            })
            .count()
    }

    /// Changes of `criticality`.
    pub fn count(&self, criticality: Criticality) -> usize {
        self.changes
            .iter()
            .filter(|checked| checked.change.criticality == criticality)
            .count()
    }

    /// The report for a person.
    pub fn human(&self) -> String {
        let mut out = format!(
            "schema check against {}, usage over the last {} day(s)\n",
            self.against, self.days
        );
        for checked in &self.changes {
            let label = match checked.change.criticality {
                Criticality::Breaking => "breaking",
                Criticality::Dangerous => "dangerous",
                Criticality::Safe => "safe",
            };
            let _ = writeln!(
                out,
                "{label:<9}  {}  ({})",
                checked.change.message, checked.change.coordinate
            );
            if checked.change.criticality == Criticality::Safe {
                continue;
            }
            if checked.usage.is_empty() {
                let _ = writeln!(out, "           unused in the window");
            }
            for used in &checked.usage {
                let _ = writeln!(out, "           used by {}", describe(used));
            }
        }
        let _ = writeln!(
            out,
            "{} change(s): {} breaking ({} used by clients), {} dangerous, {} safe",
            self.changes.len(),
            self.count(Criticality::Breaking),
            self.breaking_used(),
            self.count(Criticality::Dangerous),
            self.count(Criticality::Safe),
        );
        out
    }
}

/// The report of `conduit schema usage`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    /// The coordinate.
    pub coordinate: String,
    /// The window, in days.
    pub days: u32,
    /// Who used it, most uses first.
    pub usage: Vec<Use>,
}

impl UsageReport {
    /// The report for a person, ending with whether anyone still uses the coordinate.
    pub fn human(&self) -> String {
        let mut out = format!(
            "usage of {} over the last {} day(s)\n",
            self.coordinate, self.days
        );
        for used in &self.usage {
            let _ = writeln!(out, "  {}", describe(used));
        }
        let clients: std::collections::BTreeSet<_> = self
            .usage
            .iter()
            .map(|used| (&used.client_name, &used.client_version))
            .collect();
        if self.usage.is_empty() {
            let _ = writeln!(
                out,
                "no client used {} in the window: nothing recorded depends on it",
                self.coordinate
            );
        } else {
            let _ = writeln!(
                out,
                "{} client version(s) in {} operation(s) still use {}",
                clients.len(),
                self.usage.len(),
                self.coordinate
            );
        }
        out
    }
}

/// `web 2.1.0: operation ArticleList (1a2b...) 12 time(s), last 2026-12-03 10:00 UTC`.
fn describe(used: &Use) -> String {
    let version = if used.client_version.is_empty() {
        String::new()
    } else {
        format!(" {}", used.client_version)
    };
    let operation = if used.operation_name.is_empty() {
        "an anonymous operation".to_owned()
    } else {
        format!("operation {}", used.operation_name)
    };
    let last = chrono::DateTime::from_timestamp(used.last_seen, 0)
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    format!(
        "{}{version}: {operation} ({}) {} time(s), last {last}",
        used.client_name, used.operation_hash, used.uses
    )
}

/// Reads a schema file.
pub fn read_schema(path: &std::path::Path) -> Result<String, EvolutionError> {
    std::fs::read_to_string(path).map_err(|source| EvolutionError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Classifies the changes from `old` to `new` and looks up, for each breaking or dangerous one,
/// who used what it touches in the last `days` days.
pub async fn check(
    db: &DatabaseConnection,
    against: &str,
    old: &str,
    new: &str,
    days: u32,
) -> Result<CheckReport, EvolutionError> {
    let since = now_secs() - i64::from(days) * 86_400;
    let mut changes = Vec::new();
    for change in diff::diff(old, new)? {
        let looked_up = affected(&change);
        let usage = if change.criticality == Criticality::Safe {
            Vec::new()
        } else {
            store::uses_of(db, &looked_up, since).await?
        };
        changes.push(CheckedChange {
            change,
            looked_up,
            usage,
        });
    }
    Ok(CheckReport {
        against: against.to_owned(),
        days,
        changes,
    })
}

/// Who used `coordinate` in the last `days` days.
pub async fn usage(
    db: &DatabaseConnection,
    coordinate: &str,
    days: u32,
) -> Result<UsageReport, EvolutionError> {
    let since = now_secs() - i64::from(days) * 86_400;
    Ok(UsageReport {
        coordinate: coordinate.to_owned(),
        days,
        usage: store::uses_of(db, coordinate, since).await?,
    })
}

/// The coordinate whose users a change affects: the coordinate itself when something was
/// removed or changed; for something added (a required argument, an enum value, a union
/// member), what it was added to, since no one can have used the new thing yet.
fn affected(change: &Change) -> String {
    let coordinate = change.coordinate.as_str();
    if !change.message.contains(" added") {
        return coordinate.to_owned();
    }
    if let Some((field, _)) = coordinate.split_once('(') {
        return field.to_owned();
    }
    coordinate
        .split_once('.')
        .map_or(coordinate, |(ty, _)| ty)
        .to_owned()
}
