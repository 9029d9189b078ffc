//! Persisted operations: Automatic Persisted Queries (Apollo's protocol, stored in Redis when
//! configured and in this process otherwise) and the trusted-documents mode, where only the
//! operations of a manifest run.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::redis_client::RedisClient;

/// How long a registered query stays in Redis after its last registration.
const APQ_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most bytes of registered queries this process keeps.
const APQ_MEMORY_BYTES: usize = 16 * 1024 * 1024;

/// Why a persisted operation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistedError {
    /// The hash is not known (yet): send the query with it to register it.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// The query does not hash to the hash sent with it.
    #[error("The query does not match its sha256Hash")]
    HashMismatch,
    /// A protocol version other than 1.
    #[error("Unsupported persisted query version: only version 1 is supported")]
    UnsupportedVersion,
    /// Trusted-documents mode: the operation is not in the manifest.
    #[error("Only trusted documents run on this server, and this one is not in its manifest")]
    NotTrusted,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read the trusted documents manifest {path}: {source}")]
    Read {
        /// The manifest's path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a manifest.
    #[error(
        "the trusted documents manifest {path} is neither an Apollo persisted query manifest nor an object of hash -> document: {reason}"
    )]
    Format {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a request says about persisted operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistedRequest {
    /// `extensions.persistedQuery.sha256Hash`, or `documentId` (with or without `sha256:`).
    pub hash: Option<String>,
    /// `extensions.persistedQuery.version`, when sent.
    pub version: Option<i64>,
}

/// The document a request runs, and whether to register it once it passed the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The GraphQL document.
    pub query: String,
    /// The hash to register the document under (APQ registration).
    pub register: Option<String>,
}

/// Persisted operations of both kinds.
#[derive(Clone)]
pub struct PersistedQueries {
    memory: Arc<Mutex<MemoryStore>>,
    redis: Option<RedisClient>,
    trusted: Option<Arc<HashMap<String, String>>>,
}

/// The hex SHA-256 of `bytes` (a document, a response body).
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    Sha256::digest(bytes.as_ref())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl PersistedQueries {
    /// APQ in Redis when given (and in this process); with a manifest, trusted-documents mode.
    pub fn new(redis: Option<RedisClient>, trusted: Option<HashMap<String, String>>) -> Self {
        Self {
            memory: Arc::new(Mutex::new(MemoryStore::default())),
            redis,
            trusted: trusted.map(Arc::new),
        }
    }

    /// Reads a manifest: Apollo's `{"format": "apollo-persisted-query-manifest", "operations":
    /// [{"id", "body"}]}` or a plain object of hash -> document. Each document is also listed
    /// under its SHA-256, so clients may send the full text of a trusted operation.
    pub fn read_manifest(path: &Path) -> Result<HashMap<String, String>, ManifestError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: shown.clone(),
            source,
        })?;
        let format_error = |reason: String| ManifestError::Format {
            path: shown.clone(),
            reason,
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| format_error(err.to_string()))?;
        let mut entries = Vec::new();
        match &json {
            serde_json::Value::Object(object) if object.contains_key("operations") => {
                let operations = object["operations"]
                    .as_array()
                    .ok_or_else(|| format_error("`operations` is not an array".into()))?;
                for operation in operations {
                    let id = operation["id"].as_str();
                    let body = operation["body"].as_str();
                    match (id, body) {
                        (Some(id), Some(body)) => entries.push((id.to_owned(), body.to_owned())),
                        _ => return Err(format_error("an operation lacks `id` or `body`".into())),
                    }
                }
            }
            serde_json::Value::Object(object) => {
                for (id, body) in object {
                    let body = body.as_str().ok_or_else(|| {
                        format_error(format!("the value of {id} is not a string"))
                    })?;
                    entries.push((id.clone(), body.to_owned()));
                }
            }
            _ => return Err(format_error("not a JSON object".into())),
        }
        let mut documents = HashMap::new();
        for (id, body) in entries {
            documents.insert(sha256_hex(&body), body.clone());
            documents.insert(id, body);
        }
        Ok(documents)
    }

    /// Whether only the manifest's operations run.
    pub fn trusted_only(&self) -> bool {
        self.trusted.is_some()
    }

    /// The document to run for a request with `query` (possibly empty) and `persisted`.
    pub async fn resolve(
        &self,
        query: String,
        persisted: &PersistedRequest,
    ) -> Result<Resolved, PersistedError> {
        if persisted.version.is_some_and(|version| version != 1) {
            return Err(PersistedError::UnsupportedVersion);
        }
        let hash = persisted
            .hash
            .as_deref()
            .map(|hash| hash.strip_prefix("sha256:").unwrap_or(hash).to_owned());
        if let Some(trusted) = &self.trusted {
            return match hash {
                Some(hash) => match trusted.get(&hash) {
                    Some(document) if query.is_empty() || *document == query => Ok(Resolved {
                        query: document.clone(),
                        register: None,
                    }),
                    Some(_) => Err(PersistedError::HashMismatch),
                    None if query.is_empty() => Err(PersistedError::NotFound),
                    None => Err(PersistedError::NotTrusted),
                },
                None => match trusted.get(&sha256_hex(&query)) {
                    Some(_) => Ok(Resolved {
                        query,
                        register: None,
                    }),
                    None => Err(PersistedError::NotTrusted),
                },
            };
        }
        match hash {
            None => Ok(Resolved {
                query,
                register: None,
            }),
            Some(hash) if query.is_empty() => match self.lookup(&hash).await {
                Some(query) => Ok(Resolved {
                    query,
                    register: None,
                }),
                None => Err(PersistedError::NotFound),
            },
            Some(hash) if sha256_hex(&query) == hash.to_ascii_lowercase() => Ok(Resolved {
                query,
                register: Some(hash.to_ascii_lowercase()),
            }),
            Some(_) => Err(PersistedError::HashMismatch),
        }
    }

    /// Remembers `query` under `hash` (in Redis too when configured).
    pub async fn register(&self, hash: &str, query: &str) {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hash, query);
        if let Some(redis) = &self.redis {
            let key = redis.key(&format!("apq:{hash}"));
            let query = query.to_owned();
            let stored = redis
                .run(|mut connection| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(query)
                        .arg("EX")
                        .arg(APQ_TTL.as_secs())
                        .query_async::<()>(&mut connection)
                        .await
                })
                .await;
            if let Err(err) = stored {
                tracing::debug!(error = %err, "persisted query kept in this process only");
            }
        }
    }

    async fn lookup(&self, hash: &str) -> Option<String> {
        let local = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(hash);
        if local.is_some() {
            return local;
        }
        let redis = self.redis.as_ref()?;
        let key = redis.key(&format!("apq:{hash}"));
        redis
            .run(|mut connection| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut connection)
                    .await
            })
            .await
            .ok()
            .flatten()
    }
}

/// Registered queries of this process, oldest forgotten first beyond [`APQ_MEMORY_BYTES`].
#[derive(Default)]
struct MemoryStore {
    documents: HashMap<String, String>,
    order: VecDeque<String>,
    bytes: usize,
}

impl MemoryStore {
    fn get(&self, hash: &str) -> Option<String> {
        self.documents.get(hash).cloned()
    }

    fn insert(&mut self, hash: &str, query: &str) {
        if self.documents.contains_key(hash) {
            return;
        }
        self.bytes += query.len();
        self.documents.insert(hash.to_owned(), query.to_owned());
        self.order.push_back(hash.to_owned());
        while self.bytes > APQ_MEMORY_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(removed) = self.documents.remove(&oldest) {
                self.bytes -= removed.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }
}
