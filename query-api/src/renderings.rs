//! Renderings of whole store inventories, kept to answer the next read of an unchanged
//! store without rendering it again.

use crate::etag::Rendered;

/// Renderings of whole store inventories, reused while the cache's version of the store's
/// balances and the catalog's generation are what they were rendered from. Bounded in
/// bytes of JSON (the gzip made for a rendering adds about a tenth): past the budget the
/// oldest-inserted go first.
#[derive(Debug, Default)]
pub struct Renderings {
    entries: std::sync::Mutex<Renders>,
}

#[derive(Debug, Default)]
struct Renders {
    by_store: std::collections::HashMap<i64, (String, u64, Rendered)>,
    order: std::collections::VecDeque<i64>,
    bytes: usize,
}

/// The most bytes of renderings held.
const RENDERING_BUDGET: usize = 64 << 20;

impl Renderings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Renders> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, store: i64, version: &str, generation: u64) -> Option<Rendered> {
        let entries = self.lock();
        let (held_version, held_generation, rendered) = entries.by_store.get(&store)?;
        (held_version == version && *held_generation == generation).then(|| rendered.clone())
    }

    pub fn put(&self, store: i64, version: String, generation: u64, rendered: Rendered) {
        let mut entries = self.lock();
        entries.bytes += rendered.body.len();
        if let Some((_, _, old)) = entries
            .by_store
            .insert(store, (version, generation, rendered))
        {
            entries.bytes -= old.body.len();
        } else {
            entries.order.push_back(store);
        }
        while entries.bytes > RENDERING_BUDGET {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            if let Some((_, _, old)) = entries.by_store.remove(&oldest) {
                entries.bytes -= old.body.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_is_reused_only_for_its_version_and_generation_within_the_budget() {
        // A JSON string: its two quotes and `size - 2` spaces.
        let rendering = |size: usize| crate::etag::render(&" ".repeat(size - 2)).unwrap();
        let renderings = Renderings::default();
        renderings.put(1, "v1".into(), 7, rendering(10));
        assert!(renderings.get(1, "v1", 7).is_some());
        assert!(
            renderings.get(1, "v2", 7).is_none(),
            "the store's balances changed"
        );
        assert!(renderings.get(1, "v1", 8).is_none(), "the catalog changed");
        assert!(renderings.get(2, "v1", 7).is_none());
        renderings.put(2, "v1".into(), 7, rendering(RENDERING_BUDGET));
        assert!(
            renderings.get(1, "v1", 7).is_none(),
            "the oldest left for the budget"
        );
        assert!(renderings.get(2, "v1", 7).is_some());
    }
}
