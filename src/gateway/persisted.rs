//! Persisted operations: Automatic Persisted Queries (Apollo's protocol, stored in Redis when
//! configured and in this process otherwise) and the trusted-documents mode, where only the
//! operations of a manifest run.
//!
//! Hand-written rather than async-graphql's `ApolloPersistedQueries` extension: that one
//! registers a document while the request is being prepared, before this server has checked the
//! limits and charged the budget, keeps no bound per client, and has no trusted-documents mode.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use moka::sync::Cache;
use redis::Script;
use sha2::{Digest, Sha256};

use crate::buckets::{BucketPolicy, Buckets};
use crate::config::PersistedSettings;
use crate::redis_client::RedisClient;
use crate::usage::ClientApp;

/// How long a registered query is kept after its last registration or use.
const APQ_TTL: Duration = Duration::from_secs(24 * 3600);

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
    /// The client a trusted document's manifest names.
    pub client: Option<ClientApp>,
}

/// A trusted documents manifest: the documents by id and by SHA-256, and the client each
/// document belongs to (by id and SHA-256), when the manifest names one.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Documents by id and by SHA-256.
    pub documents: HashMap<String, String>,
    /// Clients by the ids and the SHA-256 of their documents.
    pub clients: HashMap<String, ClientApp>,
}

/// Persisted operations of both kinds.
#[derive(Clone)]
pub struct PersistedQueries {
    memory: Cache<String, Arc<str>>,
    redis: Option<RedisClient>,
    trusted: Option<Arc<Manifest>>,
    buckets: Buckets,
    registrations: BucketPolicy,
    max_bytes: u64,
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
    /// Each client may register `settings.apq_registrations_per_hour` documents an hour, and
    /// at most `settings.apq_max_bytes` of documents are kept (in process, and in Redis).
    pub fn new(
        settings: &PersistedSettings,
        redis: Option<RedisClient>,
        trusted: Option<Manifest>,
        buckets: Buckets,
    ) -> Self {
        Self {
            memory: Cache::builder()
                .max_capacity(settings.apq_max_bytes)
                .weigher(|hash: &String, query: &Arc<str>| {
                    u32::try_from(hash.len() + query.len()).unwrap_or(u32::MAX)
                })
                .time_to_idle(APQ_TTL)
                .build(),
            redis,
            trusted: trusted.map(Arc::new),
            buckets,
            registrations: BucketPolicy::per_window(settings.apq_registrations_per_hour, 3600),
            max_bytes: settings.apq_max_bytes,
        }
    }

    /// Reads a manifest: Apollo's `{"format": "apollo-persisted-query-manifest", "operations":
    /// [{"id", "body"}]}` or a plain object of hash -> document. Each document is also listed
    /// under its SHA-256, so clients may send the full text of a trusted operation. An Apollo
    /// manifest may name its client: `"client": {"name", "version"}` at the top level, or on an
    /// operation (which wins).
    pub fn read_manifest(path: &Path) -> Result<Manifest, ManifestError> {
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
        let mut clients = HashMap::new();
        let client_of = |value: &serde_json::Value| {
            let name = value["client"]["name"]
                .as_str()
                .or_else(|| value["client"].as_str())?;
            Some(ClientApp::new(
                Some(name),
                value["client"]["version"].as_str(),
            ))
        };
        match &json {
            serde_json::Value::Object(object) if object.contains_key("operations") => {
                let operations = object["operations"]
                    .as_array()
                    .ok_or_else(|| format_error("`operations` is not an array".into()))?;
                let manifest_client = client_of(&json);
                for operation in operations {
                    let id = operation["id"].as_str();
                    let body = operation["body"].as_str();
                    match (id, body) {
                        (Some(id), Some(body)) => {
                            if let Some(client) =
                                client_of(operation).or_else(|| manifest_client.clone())
                            {
                                // Under the id and the SHA-256, as the documents are.
                                clients.insert(sha256_hex(body), client.clone());
                                clients.insert(id.to_owned(), client);
                            }
                            entries.push((id.to_owned(), body.to_owned()));
                        }
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
        Ok(Manifest { documents, clients })
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
            // Clients are listed under the same keys as the documents: no hashing here.
            let client_of = |key: &str| trusted.clients.get(key).cloned();
            return match hash {
                Some(hash) => match trusted.documents.get(&hash) {
                    Some(document) if query.is_empty() || *document == query => Ok(Resolved {
                        client: client_of(&hash),
                        query: document.clone(),
                        register: None,
                    }),
                    Some(_) => Err(PersistedError::HashMismatch),
                    None if query.is_empty() => Err(PersistedError::NotFound),
                    None => Err(PersistedError::NotTrusted),
                },
                None => {
                    let key = sha256_hex(&query);
                    match trusted.documents.get(&key) {
                        Some(_) => Ok(Resolved {
                            client: client_of(&key),
                            query,
                            register: None,
                        }),
                        None => Err(PersistedError::NotTrusted),
                    }
                }
            };
        }
        match hash {
            None => Ok(Resolved {
                query,
                register: None,
                client: None,
            }),
            Some(hash) if query.is_empty() => match self.lookup(&hash).await {
                Some(query) => Ok(Resolved {
                    query,
                    register: None,
                    client: None,
                }),
                None => Err(PersistedError::NotFound),
            },
            Some(hash) if sha256_hex(&query) == hash.to_ascii_lowercase() => Ok(Resolved {
                query,
                register: Some(hash.to_ascii_lowercase()),
                client: None,
            }),
            Some(_) => Err(PersistedError::HashMismatch),
        }
    }

    /// Remembers `query` under `hash` (in Redis too when configured), unless `client` registered
    /// too many documents lately; whether it was registered. Call it only for an operation that
    /// passed every check and was admitted.
    pub async fn register(&self, client: &str, hash: &str, query: &str) -> bool {
        if self.memory.contains_key(hash) {
            return true;
        }
        let allowed = self
            .buckets
            .take(&format!("apq:{client}"), 1.0, self.registrations)
            .await
            .allowed;
        if !allowed {
            tracing::debug!("persisted query not registered: the client registers too many");
            return false;
        }
        self.memory.insert(hash.to_owned(), Arc::from(query));
        if let Some(redis) = &self.redis {
            let keys = [
                redis.key("apq:documents"),
                redis.key("apq:order"),
                redis.key("apq:bytes"),
            ];
            let (hash, query, max_bytes) = (hash.to_owned(), query.to_owned(), self.max_bytes);
            let stored = redis
                .run("apq.register", |mut connection| async move {
                    REGISTER
                        .key(&keys[0])
                        .key(&keys[1])
                        .key(&keys[2])
                        .arg(hash)
                        .arg(query)
                        .arg(APQ_TTL.as_millis() as u64)
                        .arg(max_bytes)
                        .invoke_async::<i64>(&mut connection)
                        .await
                })
                .await;
            if let Err(err) = stored {
                tracing::debug!(error = %err, "persisted query kept in this process only");
            }
        }
        true
    }

    async fn lookup(&self, hash: &str) -> Option<String> {
        if let Some(local) = self.memory.get(hash) {
            return Some(local.to_string());
        }
        let redis = self.redis.as_ref()?;
        let key = redis.key("apq:documents");
        let hash = hash.to_owned();
        redis
            .run("apq.lookup", |mut connection| async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg(hash)
                    .query_async::<Option<String>>(&mut connection)
                    .await
            })
            .await
            .ok()
            .flatten()
    }
}

/// Registers a document in Redis: documents in one hash, their registration times in a sorted set
/// and their total size in a counter; documents older than the time to live, then the oldest,
/// are dropped until the total is within the maximum.
static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function drop(hash)
  local length = redis.call('HSTRLEN', KEYS[1], hash)
  redis.call('HDEL', KEYS[1], hash)
  redis.call('ZREM', KEYS[2], hash)
  redis.call('DECRBY', KEYS[3], length)
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  return 0
end
for _, hash in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 100)) do
  drop(hash)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local bytes = redis.call('INCRBY', KEYS[3], string.len(ARGV[2]))
while bytes > tonumber(ARGV[4]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then break end
  drop(oldest)
  bytes = tonumber(redis.call('GET', KEYS[3]) or '0')
end
return 1
",
    )
});

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
