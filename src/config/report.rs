//! What `conduit config` prints (every setting, its value and where the value came from, secrets
//! redacted), and the one line an invalid setting is refused with at start.
//!
//! Both read clap's own description of the command line, so a new setting shows up here without
//! being listed twice.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, CommandFactory};

use super::Cli;

/// What replaces a secret.
const REDACTED: &str = "***";

/// The effective configuration of `matches`, one `NAME=value  # source` line per setting,
/// grouped under the headings of `--help`.
pub fn effective(matches: &ArgMatches) -> String {
    let command = Cli::command();
    let mut out = String::from(
        "# Effective configuration: each value and where it comes from (secrets redacted).\n",
    );
    let mut heading = None;
    let mut lines = Vec::new();
    for arg in settings(&command) {
        if arg.get_help_heading() != heading {
            flush(&mut out, &mut lines);
            heading = arg.get_help_heading();
            out.push_str(&format!("\n# {}\n", heading.unwrap_or("General")));
        }
        let id = arg.get_id().as_str();
        let value = matches
            .get_raw(id)
            .map(|values| {
                values
                    .map(|value| value.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .map(|value| redact(arg, &value));
        let source = match matches.value_source(id) {
            Some(ValueSource::DefaultValue) => "default".to_owned(),
            Some(ValueSource::EnvVariable) => "environment".to_owned(),
            Some(ValueSource::CommandLine) => format!("command line (--{})", long(arg)),
            _ => "not set".to_owned(),
        };
        lines.push((
            format!("{}={}", name(arg), value.unwrap_or_default()),
            source,
        ));
    }
    flush(&mut out, &mut lines);
    out
}

/// Appends `lines` with their sources aligned, and empties it.
fn flush(out: &mut String, lines: &mut Vec<(String, String)>) {
    let width = lines
        .iter()
        .map(|(line, _)| line.chars().count())
        .max()
        .unwrap_or(0);
    for (line, source) in lines.drain(..) {
        out.push_str(&format!("{line:<width$}  # {source}\n"));
    }
}

/// The one line that refuses an invalid setting, naming its variable (or flag) and why; `None`
/// for errors that are not about a value (unknown flags, `--help`), which clap reports itself.
pub fn refusal(err: &clap::Error) -> Option<String> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let ContextValue::String(flag) = err.get(ContextKind::InvalidArg)? else {
        return None;
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.clone(),
        _ => String::new(),
    };
    let reason = match (
        std::error::Error::source(err),
        err.get(ContextKind::ValidValue),
    ) {
        (Some(source), _) => source.to_string(),
        (None, Some(ContextValue::Strings(valid))) => {
            format!("expected one of {}", valid.join(", "))
        }
        _ => "not a valid value".to_owned(),
    };
    let long = flag
        .split_whitespace()
        .next()
        .unwrap_or(flag)
        .trim_start_matches('-');
    let command = Cli::command();
    let arg = settings(&command).find(|arg| arg.get_long() == Some(long));
    let on_command_line = std::env::args()
        .any(|word| word == format!("--{long}") || word.starts_with(&format!("--{long}=")));
    let shown = match arg {
        Some(arg) if arg.is_hide_env_values_set() => REDACTED.to_owned(),
        _ => format!("{value:?}"),
    };
    let subject = match arg.and_then(Arg::get_env) {
        Some(env) if !on_command_line => env.to_string_lossy().into_owned(),
        _ => format!("--{long}"),
    };
    Some(format!("invalid {subject}={shown}: {reason}"))
}

/// The settings of the command line: every named argument but `--help` and `--version`.
fn settings(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command
        .get_arguments()
        .filter(|arg| arg.get_long().is_some() && !matches!(long(arg), "help" | "version"))
}

/// The setting's long flag.
fn long(arg: &Arg) -> &str {
    arg.get_long().unwrap_or_default()
}

/// The name a setting is shown by: its environment variable, or its flag when it has none.
fn name(arg: &Arg) -> String {
    arg.get_env().map_or_else(
        || format!("--{}", long(arg)),
        |env| env.to_string_lossy().into_owned(),
    )
}

/// `value` as it may be shown: secrets replaced, and the password of a URL.
fn redact(arg: &Arg, value: &str) -> String {
    if arg.is_hide_env_values_set() {
        return REDACTED.to_owned();
    }
    redact_url_password(value)
}

/// `scheme://user:password@host/...` with the password replaced; anything else unchanged.
pub fn redact_url_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:{REDACTED}@{host}{tail}"),
            None => value.to_owned(),
        },
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://app:s3cret@db:5432/conduit?sslmode=require"),
            "postgres://app:***@db:5432/conduit?sslmode=require"
        );
        assert_eq!(
            redact_url_password("postgres://app@db/conduit"),
            "postgres://app@db/conduit"
        );
        assert_eq!(
            redact_url_password("sqlite://conduit.db"),
            "sqlite://conduit.db"
        );
    }

    #[test]
    fn the_report_names_each_source_and_hides_secrets() {
        let matches = Cli::command()
            .try_get_matches_from([
                "conduit",
                "--jwt-secret",
                "0123456789abcdef0123456789abcdef",
                "--database-url",
                "postgres://app:hunter2@db/conduit",
            ])
            .expect("valid");
        let report = effective(&matches);
        assert!(report.contains("CONDUIT_JWT_SECRET=***"), "{report}");
        assert!(!report.contains("0123456789abcdef"), "{report}");
        assert!(!report.contains("hunter2"), "{report}");
        assert!(
            report.contains("DATABASE_URL=postgres://app:***@db/conduit"),
            "{report}"
        );
        let listen = report
            .lines()
            .find(|line| line.starts_with("CONDUIT_LISTEN="))
            .expect("listen shown");
        assert!(listen.ends_with("# default"), "{listen}");
        assert!(
            report.contains("# command line (--database-url)"),
            "{report}"
        );
        assert!(report.contains("OTEL_EXPORTER_OTLP_ENDPOINT="), "{report}");
    }

    #[test]
    fn an_invalid_value_is_refused_in_one_line_naming_the_setting() {
        let err = Cli::command()
            .try_get_matches_from(["conduit", "--max-depth", "deep"])
            .expect_err("invalid");
        let line = refusal(&err).expect("a value error");
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("max-depth") || line.contains("CONDUIT_MAX_DEPTH"),
            "{line}"
        );
        assert!(line.contains("\"deep\""), "{line}");
        let err = Cli::command()
            .try_get_matches_from(["conduit", "--env", "staging"])
            .expect_err("invalid");
        let line = refusal(&err).expect("a value error");
        assert!(
            line.contains("expected one of development, production"),
            "{line}"
        );
    }
}
