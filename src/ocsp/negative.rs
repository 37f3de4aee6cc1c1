//! A short-lived cache of signed "unknown" answers for serials we never issued, so that a
//! charger asking again about a bad serial does not cost another signature. Bounded in entries
//! and time (`unknown_cache`); an issuance drops the entries of its serial at once, so a new
//! certificate is never answered "unknown" by this replica once it is recorded. (Another
//! replica's issuance reaches this cache only by expiry: "unknown" is never "good", so the
//! worst case is a charger retrying for up to `unknown_cache`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::responder::Entry;

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 8192;

/// A signed "unknown" answer and until when (unix seconds) it is served.
type Kept = (Arc<Entry>, i64);

/// CertID DER → the answer kept for it.
#[derive(Default)]
pub struct NegativeCache {
    map: Mutex<HashMap<Vec<u8>, Kept>>,
    /// Bumped by every issuance: an answer signed from a store read older than the latest
    /// issuance is not kept (that issuance may be of its serial, and its `forget` came first).
    issued: AtomicU64,
}

impl NegativeCache {
    /// The cached answer for `cert_id` at `now`.
    pub fn get(&self, cert_id: &[u8], now: i64) -> Option<Arc<Entry>> {
        let g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        g.get(cert_id)
            .filter(|(_, until)| now < *until)
            .map(|(e, _)| e.clone())
    }

    /// Read before the store is asked whether a serial exists; give it back to [`Self::put`].
    pub fn generation(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// Keep `entry` until `until`, unless an issuance happened since `generation` was read.
    /// When full, expired entries go first; if none has expired, nothing is added (the next
    /// request for it signs again, within the live budget).
    pub fn put(&self, entry: Arc<Entry>, until: i64, now: i64, generation: u64) {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock, so that a `forget` cannot slip between this check and the insert.
        if self.issued.load(Ordering::SeqCst) != generation {
            return;
        }
        if g.len() >= MAX_ENTRIES {
            g.retain(|_, (_, u)| *u > now);
            if g.len() >= MAX_ENTRIES {
                return;
            }
        }
        g.insert(entry.cert_id.clone(), (entry, until));
    }

    /// Forget every answer about `issuer_id`/`serial_hex` (it was just issued).
    pub fn forget(&self, issuer_id: &str, serial_hex: &str) {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        self.issued.fetch_add(1, Ordering::SeqCst);
        if g.is_empty() {
            return;
        }
        let serial = serial_hex.trim_start_matches('0').to_ascii_lowercase();
        g.retain(|_, (e, _)| {
            !(e.issuer_id == issuer_id
                && e.serial_hex
                    .trim_start_matches('0')
                    .eq_ignore_ascii_case(&serial))
        });
    }

    /// How many answers are cached.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocsp::wire::CertStatus;

    fn entry(cert_id: u8, serial_hex: &str) -> Arc<Entry> {
        Arc::new(Entry {
            cert_id: vec![cert_id],
            issuer_id: "ca".into(),
            serial_hex: serial_hex.into(),
            status: CertStatus::Unknown,
            this_update: 0,
            next_update: 0,
            produced_at: 0,
            der: Default::default(),
            etag: String::new(),
            http: Default::default(),
        })
    }

    #[test]
    fn answers_expire_and_an_issuance_forgets_its_serial() {
        let c = NegativeCache::default();
        let g = c.generation();
        c.put(entry(1, "00ab"), 100, 0, g);
        c.put(entry(2, "cd"), 100, 0, g);
        assert!(c.get(&[1], 99).is_some());
        assert!(c.get(&[1], 100).is_none(), "expired");
        c.forget("ca", "AB");
        assert!(
            c.get(&[1], 50).is_none(),
            "issued: forgotten, whatever the spelling"
        );
        assert!(c.get(&[2], 50).is_some(), "other serials stay");
        c.forget("other-ca", "cd");
        assert!(c.get(&[2], 50).is_some(), "same serial of another CA stays");
    }

    #[test]
    fn an_answer_signed_before_an_issuance_is_not_kept() {
        let c = NegativeCache::default();
        let before = c.generation();
        // The store said "never issued", then the serial was issued (its forget found nothing
        // cached yet), then the "unknown" signed from the old read arrives.
        c.forget("ca", "ab");
        c.put(entry(1, "ab"), 100, 0, before);
        assert!(c.get(&[1], 1).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = NegativeCache::default();
        for i in 0..(MAX_ENTRIES + 100) {
            let mut e = entry(0, &format!("{i:x}"));
            Arc::get_mut(&mut e).unwrap().cert_id = (i as u64).to_be_bytes().to_vec();
            c.put(e, 10, 0, c.generation());
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        // Once they have expired, room is made.
        let mut e = entry(0, "new");
        Arc::get_mut(&mut e).unwrap().cert_id = b"new".to_vec();
        c.put(e, 100, 20, c.generation());
        assert!(c.get(b"new", 21).is_some());
        assert_eq!(c.len(), 1);
    }
}
