//! The schema ids a reader holds: filled at start, extended when a record names an id it
//! lacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use schemas::SchemaIds;

use super::SchemaRegistry;

/// How long an id the registry did not give is not asked for again.
const REFUSED_FOR: Duration = Duration::from_secs(60);

/// The ids a reader holds, filled at start and extended when a record names an id it lacks
/// (a producer upgraded after this reader started): the registry is asked once per such id,
/// never per record, and an id it did not give is not asked again for a minute — its
/// records are dead letters meanwhile.
#[derive(Debug, Clone)]
pub struct SchemaCache {
    registry: SchemaRegistry,
    ids: Arc<RwLock<Arc<SchemaIds>>>,
    refused: Arc<Mutex<HashMap<u32, Instant>>>,
}

impl SchemaCache {
    pub fn new(registry: SchemaRegistry, ids: SchemaIds) -> Self {
        Self {
            registry,
            ids: Arc::new(RwLock::new(Arc::new(ids))),
            refused: Arc::default(),
        }
    }

    /// The ids known now.
    pub fn ids(&self) -> Arc<SchemaIds> {
        Arc::clone(&self.ids.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Asks the registry for those of `wanted` not known yet (nor refused within the last
    /// minute); gives how many it learnt.
    pub async fn learn(&self, wanted: impl IntoIterator<Item = u32>) -> usize {
        let known = self.ids();
        let now = Instant::now();
        let mut asking: Vec<u32> = {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            refused.retain(|_, at| now.duration_since(*at) < REFUSED_FOR);
            wanted
                .into_iter()
                .filter(|id| !known.knows(*id) && !refused.contains_key(id))
                .collect()
        };
        asking.sort_unstable();
        asking.dedup();
        if asking.is_empty() {
            return 0;
        }
        let mut ids = (*known).clone();
        let mut learnt = 0;
        for id in asking {
            let problem = match self.registry.schema(id).await {
                Ok(Some(schema)) => match ids.learn(id, &schema) {
                    Ok(_) => {
                        learnt += 1;
                        tracing::info!(id, "Learnt a schema id from the registry.");
                        continue;
                    }
                    Err(error) => error.to_string(),
                },
                Ok(None) => "the registry has no such schema".to_owned(),
                Err(error) => error.to_string(),
            };
            tracing::warn!(id, %problem, "A record names a schema id this reader cannot resolve.");
            self.refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, Instant::now());
        }
        if learnt > 0 {
            *self.ids.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ids);
        }
        learnt
    }
}
