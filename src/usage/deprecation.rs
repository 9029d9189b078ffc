//! What a response that ran a deprecated field tells the client over HTTP: `Deprecation`
//! (RFC 9745, the date the field was deprecated) and, when a removal date is configured for it
//! (`CONDUIT_SUNSET`), `Sunset` (RFC 8594), next to `extensions.deprecations` in the body.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveTime};

/// When each deprecated field was deprecated, and when it goes.
#[derive(Debug, Clone, Default)]
pub struct DeprecationDates {
    since: HashMap<String, i64>,
    sunset: HashMap<String, i64>,
}

impl DeprecationDates {
    /// Dates from `since` (`Type.field`, `YYYY-MM-DD`; dates that do not parse are left out) and
    /// the configured removal dates.
    pub fn new(since: &[(&str, &str)], sunsets: &[(String, NaiveDate)]) -> Self {
        let seconds = |date: NaiveDate| date.and_time(NaiveTime::MIN).and_utc().timestamp();
        Self {
            since: since
                .iter()
                .filter_map(|(field, date)| {
                    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
                    Some(((*field).to_owned(), seconds(date)))
                })
                .collect(),
            sunset: sunsets
                .iter()
                .map(|(field, date)| (field.clone(), seconds(*date)))
                .collect(),
        }
    }

    /// The `Deprecation` value for a response that ran `fields`: `@` and the Unix seconds of the
    /// earliest deprecation among them; `None` when none ran.
    pub fn deprecation(&self, fields: &[String]) -> Option<String> {
        if fields.is_empty() {
            return None;
        }
        let earliest = fields
            .iter()
            .filter_map(|field| self.since.get(field))
            .min()
            .copied()
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        Some(format!("@{earliest}"))
    }

    /// The `Sunset` value (an HTTP date): the earliest configured removal among `fields`.
    pub fn sunset(&self, fields: &[String]) -> Option<String> {
        let earliest = fields
            .iter()
            .filter_map(|field| self.sunset.get(field))
            .min()?;
        let at = chrono::DateTime::from_timestamp(*earliest, 0)?;
        Some(at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    }

    /// Whether `field` has a deprecation date.
    pub fn dated(&self, field: &str) -> bool {
        self.since.contains_key(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_earliest_dates() {
        let sunset = NaiveDate::from_ymd_opt(2027, 6, 30).expect("date");
        let dates = DeprecationDates::new(
            &[
                ("Article.tagList", "2026-11-25"),
                ("User.old", "2026-12-01"),
            ],
            &[("Article.tagList".to_owned(), sunset)],
        );
        let fields = vec!["User.old".to_owned(), "Article.tagList".to_owned()];
        assert_eq!(dates.deprecation(&fields).as_deref(), Some("@1795564800"));
        assert_eq!(
            dates.sunset(&fields).as_deref(),
            Some("Wed, 30 Jun 2027 00:00:00 GMT")
        );
        assert_eq!(dates.deprecation(&[]), None);
        assert_eq!(dates.sunset(&["User.old".to_owned()]), None);
    }
}
