//! The responder: issuer index, signers, the in-memory response cache, pre-production and the
//! background tasks (replica sync, refresh, signer rotation).
//!
//! Hot path (one CertID, no nonce, lease valid, cached): one `RwLock` read and one hash lookup;
//! no database, no HSM. Everything else (miss, nonce, several CertIDs) signs live in the HSM
//! (`spawn_blocking`) and, for single-CertID answers about certificates we issued, stores the
//! result in `ocsp_responses` and the cache so the next request is a hit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use der::Encode;
use futures_util::future::BoxFuture;
use sha2::Digest;

use super::budget::{LiveBudget, LiveStats};
use super::negative::NegativeCache;
use super::wire::{
    CertId, CertStatus, ErrorStatus, OcspRequest, SingleResponseSpec, WireError,
    encode_basic_response, encode_response_data, issuer_hashes, parse_request,
};
use crate::alg::HashAlg;
use crate::ca::events::{Observer, Revoked};
use crate::ca::ocsp::OcspSigner;
use crate::ca::{Ca, CaError};
use crate::client_ip::ClientIp;
use crate::clock::SharedClock;
use crate::config::{OcspSettings, SignWith};
use crate::model::CertStatus as StoredStatus;
use crate::store::ocsp::{CertState, StoredResponse};
use crate::store::{Backend, Store};

/// Hash forms pre-produced for every certificate (what OpenSSL, Go and EVerest send: SHA-1 is
/// the RFC 5019 default, SHA-256 is what OCPP 2.0.1 stations use). Others are signed on demand.
pub const PRODUCED_ALGS: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];

/// Concurrent live signatures (the HSM layer keeps 4 pooled sessions by default).
pub const SIGN_CONCURRENCY: usize = 4;

/// Issuances and revocations waiting for their responses to be pre-produced. When full, new
/// ones are dropped: the refresher finds them within a minute, and the first request signs live.
const PRODUCE_QUEUE: usize = 1024;

/// Certificates whose pre-produced responses are stored in one transaction at most.
const PRODUCE_BATCH: usize = 64;

/// One CA key this responder answers for: a CA's current key, or a retired one (`ca rollover`)
/// whose certificate has not expired, for the certificates it signed.
#[derive(Debug)]
struct IssuerInfo {
    id: String,
    /// Which key of the CA (the certificates' `issuer_generation`).
    generation: i64,
    /// Whether it is the CA's current key (only those get delegated signers renewed).
    current: bool,
    name_hashes: HashMap<HashAlg, (Vec<u8>, Vec<u8>)>,
    signer: Arc<OcspSigner>,
}

#[derive(Debug, Default)]
struct Index {
    issuers: Vec<IssuerInfo>,
    by_hash: HashMap<(HashAlg, Vec<u8>, Vec<u8>), usize>,
    /// Issuer name hashes of our CAs: a request with one of them but a key hash we do not know
    /// may be for a key another process rolled over to since the index was loaded.
    names: std::collections::HashSet<(HashAlg, Vec<u8>)>,
    /// The store's [`Store::ca_keys_fingerprint`] this index was built from.
    fingerprint: (i64, i64),
}

/// One cached, signed response for one CertID.
#[derive(Debug)]
pub struct Entry {
    /// The CertID TLV this response answers (the cache key).
    pub cert_id: Vec<u8>,
    /// Issuing CA id.
    pub issuer_id: String,
    /// Serial, hex as stored.
    pub serial_hex: String,
    /// The status it states.
    pub status: CertStatus,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: i64,
    /// producedAt, unix seconds.
    pub produced_at: i64,
    /// The signed OCSPResponse.
    pub der: Bytes,
    /// Strong validator for GET: hex SHA-256 prefix of the DER, quoted.
    pub etag: String,
    /// GET headers (ETag, Last-Modified, Expires), rendered once (see `http`).
    pub http: OnceLock<[Option<axum::http::HeaderValue>; 3]>,
}

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<Vec<u8>, Arc<Entry>>,
    by_cert: HashMap<(String, String), Vec<Vec<u8>>>,
    /// Last revocation epoch applied to this cache.
    applied: i64,
}

/// What a request gets.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A signed response. `entry` is set when it is a cacheable single-CertID response
    /// (GET may carry RFC 5019 caching headers).
    Signed {
        /// The OCSPResponse, DER.
        der: Bytes,
        /// The cache entry it came from.
        entry: Option<Arc<Entry>>,
    },
    /// An OCSP error status (`malformedRequest`, `unauthorized`, `tryLater`, …).
    Error(ErrorStatus),
}

/// Verdict for one CertID (OCPP lookups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: the issuer is not one of ours.
    pub status: Option<CertStatus>,
    /// Until when the verdict holds, unix seconds.
    pub next_update: i64,
}

struct Inner {
    ca: Ca,
    store: Store,
    clock: SharedClock,
    settings: OcspSettings,
    replica_id: String,
    index: RwLock<Arc<Index>>,
    index_loaded: AtomicBool,
    index_lock: tokio::sync::Mutex<()>,
    cache: RwLock<Cache>,
    /// Until when this replica may answer from memory (unix ms); 0 = not yet.
    lease_until_ms: AtomicI64,
    wake: tokio::sync::Notify,
    /// Live signatures in flight: no more than the HSM session pool holds, so every signature
    /// reuses a logged-in session instead of opening (and logging in) a new one.
    sign_slots: tokio::sync::Semaphore,
    /// Live signatures waiting for a slot (see `OcspSettings::max_sign_queue`).
    sign_waiting: AtomicUsize,
    /// What anonymous callers' live signatures may spend (see `super::budget`).
    live: LiveBudget,
    /// Signed "unknown" answers for never-issued serials (see `super::negative`).
    negative: NegativeCache,
    /// Certificates to pre-produce, fed by the CA's events.
    produce_tx: tokio::sync::mpsc::Sender<(String, String)>,
    produce_rx: Mutex<Option<tokio::sync::mpsc::Receiver<(String, String)>>>,
    /// Requests answered (every `answer`), for `/metrics` and the console.
    requests: AtomicU64,
    /// Single-certificate requests answered from memory (the cache or the negative cache).
    cache_hits: AtomicU64,
    /// Single-certificate requests that memory could not answer (the store, or a signature).
    cache_misses: AtomicU64,
    /// Time of every `answer`, from the parsed request to the answer (`/metrics`).
    latency: crate::stats::Latency,
}

/// Request counters of one responder since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests answered.
    pub requests: u64,
    /// Requests answered from memory without the database or a signature.
    pub cache_hits: u64,
    /// Single-certificate requests memory could not answer.
    pub cache_misses: u64,
}

/// Counts a waiter for as long as it waits, cancellation included.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Responder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("replica", &self.inner.replica_id)
            .finish()
    }
}

/// DER INTEGER contents of a serial → its spellings in `certificates.serial_hex`.
pub fn serial_spellings(serial: &[u8]) -> Vec<String> {
    let h = hex::encode(serial);
    if serial.first().is_some_and(|b| *b >= 0x80) {
        vec![h.clone(), format!("00{h}")]
    } else {
        vec![h]
    }
}

/// Unsigned serial bytes (no leading zeros, `[0]` for zero) from our hex form.
pub fn serial_bytes(serial_hex: &str) -> Option<Vec<u8>> {
    let b = hex::decode(serial_hex).ok()?;
    let start = b
        .iter()
        .position(|x| *x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    let s = b.get(start..)?.to_vec();
    if s.is_empty() { None } else { Some(s) }
}

#[derive(der::Sequence)]
struct AlgIdNull {
    oid: der::asn1::ObjectIdentifier,
    params: der::asn1::Null,
}

#[derive(der::Sequence)]
struct CertIdDer {
    alg: AlgIdNull,
    name_hash: der::asn1::OctetString,
    key_hash: der::asn1::OctetString,
    serial: der::asn1::Uint,
}

/// Build a CertID as OpenSSL and Go encode it (hash AlgorithmIdentifier with NULL parameters).
pub fn build_cert_id(
    alg: HashAlg,
    name_hash: &[u8],
    key_hash: &[u8],
    serial: &[u8],
) -> Result<CertId, WireError> {
    let e = |e: der::Error| WireError::InvalidInput(e.to_string());
    let der = CertIdDer {
        alg: AlgIdNull {
            oid: alg.oid(),
            params: der::asn1::Null,
        },
        name_hash: der::asn1::OctetString::new(name_hash).map_err(e)?,
        key_hash: der::asn1::OctetString::new(key_hash).map_err(e)?,
        serial: der::asn1::Uint::new(serial).map_err(e)?,
    }
    .to_der()
    .map_err(e)?;
    let stripped = serial_bytes(&hex::encode(serial))
        .ok_or_else(|| WireError::InvalidInput("empty serial".into()))?;
    Ok(CertId {
        hash_alg: alg,
        issuer_name_hash: name_hash.to_vec(),
        issuer_key_hash: key_hash.to_vec(),
        serial: stripped,
        der,
    })
}

fn etag_of(der: &[u8]) -> String {
    let h = sha2::Sha256::digest(der);
    format!("\"{}\"", hex::encode(&h[..16]))
}

fn status_of_state(st: &CertState) -> CertStatus {
    match st.status {
        StoredStatus::Revoked => CertStatus::Revoked {
            time: st.revoked_at.unwrap_or(0),
            reason: st.revocation_reason.and_then(|r| r.encoded_code()),
        },
        StoredStatus::Valid => CertStatus::Good,
    }
}

fn status_column(s: CertStatus) -> StoredStatus {
    match s {
        CertStatus::Revoked { .. } => StoredStatus::Revoked,
        _ => StoredStatus::Valid,
    }
}

impl Responder {
    /// A responder for the CAs of `ca`, reading `store`; no I/O (the issuer index loads on first
    /// use). Start the background tasks with [`Responder::start`]; without them every answer goes
    /// to the database, which is always correct.
    pub fn new(ca: Ca, store: Store, clock: SharedClock, settings: OcspSettings) -> Responder {
        let (produce_tx, produce_rx) = tokio::sync::mpsc::channel(PRODUCE_QUEUE);
        Responder {
            inner: Arc::new(Inner {
                ca,
                store,
                clock,
                live: LiveBudget::new(&settings),
                negative: NegativeCache::default(),
                settings,
                replica_id: hex::encode(rand::random::<[u8; 8]>()),
                index: RwLock::new(Arc::new(Index::default())),
                index_loaded: AtomicBool::new(false),
                index_lock: tokio::sync::Mutex::new(()),
                cache: RwLock::new(Cache::default()),
                lease_until_ms: AtomicI64::new(0),
                wake: tokio::sync::Notify::new(),
                sign_slots: tokio::sync::Semaphore::new(SIGN_CONCURRENCY),
                sign_waiting: AtomicUsize::new(0),
                produce_tx,
                produce_rx: Mutex::new(Some(produce_rx)),
                requests: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                cache_misses: AtomicU64::new(0),
                latency: crate::stats::Latency::default(),
            }),
        }
    }

    /// Unix seconds by the responder's clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Join the replica set, warm the cache from `ocsp_responses`, subscribe to the CA's events
    /// and spawn the background tasks. Call once, inside the runtime.
    pub async fn start(self) -> Result<Responder, CaError> {
        let store = &self.inner.store;
        self.reload_index().await?;
        let epoch = store.ocsp_epoch().await?;
        store
            .ocsp_register_replica(&self.inner.replica_id, epoch)
            .await?;
        {
            let now = self.now();
            let min_this = now - self.inner.settings.refresh_after.as_secs_i64();
            let rows = store.ocsp_load_all_responses(min_this, now + 60).await?;
            let mut c = self.write_cache();
            c.applied = epoch;
            for r in rows {
                if let Some(e) = self.entry_from_stored(r) {
                    Self::insert_locked(&mut c, Arc::new(e));
                }
            }
            tracing::info!(
                entries = c.map.len(),
                epoch,
                "OCSP cache warmed from the store"
            );
        }
        // Local events first: the freshness protocol (subscribed after us) then waits for a
        // replica set that includes this process's already woken sync loop.
        self.inner.ca.subscribe(Arc::new(self.clone()));
        let me = self.clone();
        tokio::spawn(async move { me.sync_loop().await });
        if store.backend() == Backend::Postgres {
            let me = self.clone();
            tokio::spawn(async move { me.listen_loop().await });
        }
        let me = self.clone();
        tokio::spawn(async move { me.refresh_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.signer_loop().await });
        let rx = self
            .inner
            .produce_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = rx {
            let me = self.clone();
            tokio::spawn(async move { me.produce_loop(rx).await });
        }
        Ok(self)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.inner.cache.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.inner.cache.write().unwrap_or_else(|p| p.into_inner())
    }
    fn index(&self) -> Arc<Index> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    // ---------------------------------------------------------------- issuers and signers

    /// (Re)build the issuer index and signers from the store: every CA's current key, and the
    /// retired keys whose certificates have not expired.
    pub async fn reload_index(&self) -> Result<(), CaError> {
        let _g = self.inner.index_lock.lock().await;
        self.reload_index_locked().await
    }

    async fn reload_index_locked(&self) -> Result<(), CaError> {
        let delegated = self.inner.settings.sign_with == SignWith::Delegated;
        let store = &self.inner.store;
        // Read first: a change after it makes the next check reload again, never miss one.
        let mut idx = Index {
            fingerprint: store.ca_keys_fingerprint().await?,
            ..Index::default()
        };
        let current = store.list_cas().await?;
        let retired = store.retired_ca_keys(None, self.now()).await?;
        let keys = current
            .into_iter()
            .map(|r| (r, true))
            .chain(retired.into_iter().map(|r| (r, false)));
        for (rec, is_current) in keys {
            let signer = self
                .inner
                .ca
                .ocsp_signer(&rec.id, rec.generation, delegated)
                .await?;
            let mut name_hashes = HashMap::new();
            for alg in HashAlg::ALL {
                let (n, k) = issuer_hashes(&rec.cert_der, alg)
                    .map_err(|e| CaError::Internal(format!("CA {}: {e}", rec.id)))?;
                idx.by_hash
                    .insert((alg, n.clone(), k.clone()), idx.issuers.len());
                idx.names.insert((alg, n.clone()));
                name_hashes.insert(alg, (n, k));
            }
            idx.issuers.push(IssuerInfo {
                id: rec.id.clone(),
                generation: rec.generation,
                current: is_current,
                name_hashes,
                signer: Arc::new(signer),
            });
        }
        *self.inner.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(idx);
        self.inner.index_loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Reload the index if a CA was added or rolled over since it was built (another process
    /// ran `ca rollover`); `true` when the index is newer than when this was called. The check is
    /// one aggregate over the small `cas` table, what a lookup of an unknown serial costs
    /// anyway; the reload happens once per change, whoever asks (single flight).
    async fn reload_if_changed(&self) -> bool {
        let seen = self.index().fingerprint;
        let now = match self.inner.store.ca_keys_fingerprint().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "OCSP: cannot check the CA keys");
                return false;
            }
        };
        if now == seen {
            return false;
        }
        let _g = self.inner.index_lock.lock().await;
        if self.index().fingerprint != seen {
            return true; // another caller reloaded meanwhile
        }
        match self.reload_index_locked().await {
            Ok(()) => {
                tracing::info!("OCSP: CA keys changed, index reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "OCSP: cannot reload the CA index");
                false
            }
        }
    }

    async fn ensure_index(&self) -> Result<Arc<Index>, ErrorStatus> {
        if !self.inner.index_loaded.load(Ordering::Acquire)
            && let Err(e) = self.reload_index().await
        {
            tracing::error!(error = %e, "OCSP: cannot load the CA index");
            return Err(ErrorStatus::TryLater);
        }
        Ok(self.index())
    }

    // ---------------------------------------------------------------- cache

    fn insert_locked(c: &mut Cache, e: Arc<Entry>) {
        let ids = c
            .by_cert
            .entry((e.issuer_id.clone(), e.serial_hex.clone()))
            .or_default();
        if !ids.contains(&e.cert_id) {
            ids.push(e.cert_id.clone());
        }
        c.map.insert(e.cert_id.clone(), e);
    }

    /// Insert unless a revocation was applied since `seen_epoch` (the status may be stale).
    fn insert_guarded(&self, e: Arc<Entry>, seen_epoch: i64) {
        let mut c = self.write_cache();
        if c.applied == seen_epoch {
            Self::insert_locked(&mut c, e);
        }
    }

    fn applied_epoch(&self) -> i64 {
        self.read_cache().applied
    }

    fn lease_valid(&self) -> bool {
        self.now_ms() < self.inner.lease_until_ms.load(Ordering::Acquire)
    }

    fn entry_from_stored(&self, r: StoredResponse) -> Option<Entry> {
        // Reading the status back from the response itself would be costly; the row says it.
        let status = match r.status {
            // Time/reason are only needed for live multi-CertID answers, which read the store.
            StoredStatus::Revoked => CertStatus::Revoked {
                time: 0,
                reason: None,
            },
            StoredStatus::Valid => CertStatus::Good,
        };
        let etag = etag_of(&r.response_der);
        Some(Entry {
            cert_id: r.cert_id,
            issuer_id: r.issuer_id,
            serial_hex: r.serial_hex,
            status,
            this_update: r.this_update,
            next_update: r.next_update,
            produced_at: r.produced_at,
            der: Bytes::from(r.response_der),
            etag,
            http: OnceLock::new(),
        })
    }

    fn cached(&self, cert_id_der: &[u8]) -> Option<Arc<Entry>> {
        if !self.lease_valid() {
            return None;
        }
        let e = self.read_cache().map.get(cert_id_der).cloned()?;
        if e.next_update - 60 > self.now() {
            Some(e)
        } else {
            None
        }
    }

    // ---------------------------------------------------------------- signing

    fn times(&self, signer: &OcspSigner) -> (i64, i64) {
        let now = self.now();
        let this = now - self.inner.settings.backdate.as_secs_i64();
        let next = (now + self.inner.settings.validity.as_secs_i64())
            .min(signer.not_after)
            .max(this);
        (this, next)
    }

    /// Too many live signatures already wait for the HSM: answer tryLater instead of queueing.
    fn overloaded(&self) -> bool {
        let full = self.inner.sign_slots.available_permits() == 0
            && self.inner.sign_waiting.load(Ordering::Relaxed)
                >= self.inner.settings.max_sign_queue;
        if full {
            tracing::debug!("OCSP: live-signing queue full, answering tryLater");
        }
        full
    }

    async fn sign(
        &self,
        signer: &OcspSigner,
        singles: &[SingleResponseSpec],
        nonce: Option<&[u8]>,
    ) -> Result<(Vec<u8>, i64), CaError> {
        let produced = self.now();
        let wire = |e: WireError| CaError::Internal(format!("OCSP encoding: {e}"));
        let tbs = encode_response_data(&signer.key_hash, produced, singles, nonce).map_err(wire)?;
        let _slot = {
            let _waiting = Waiting::new(&self.inner.sign_waiting);
            self.inner
                .sign_slots
                .acquire()
                .await
                .map_err(|e| CaError::Internal(e.to_string()))?
        };
        let sig = self.inner.ca.sign_ocsp(signer, tbs.clone()).await?;
        let der =
            encode_basic_response(&tbs, signer.signature, &sig, &signer.certs).map_err(wire)?;
        Ok((der, produced))
    }

    /// Sign, store and cache the single-CertID response for a certificate we issued.
    async fn produce_one(
        &self,
        issuer: &IssuerInfo,
        cert_id: &CertId,
        state: &CertState,
        seen_epoch: i64,
    ) -> Result<Arc<Entry>, CaError> {
        let (entry, stored) = self.sign_one(issuer, cert_id, state, seen_epoch).await?;
        if let Err(e) = self.inner.store.ocsp_store_response(&stored).await {
            tracing::warn!(error = %e, "OCSP: cannot store a pre-produced response");
        }
        Ok(entry)
    }

    /// Sign and cache the single-CertID response for a certificate we issued; the row to store.
    async fn sign_one(
        &self,
        issuer: &IssuerInfo,
        cert_id: &CertId,
        state: &CertState,
        seen_epoch: i64,
    ) -> Result<(Arc<Entry>, StoredResponse), CaError> {
        let status = status_of_state(state);
        let (this, next) = self.times(&issuer.signer);
        let single = SingleResponseSpec {
            cert_id_der: cert_id.der.clone(),
            status,
            this_update: this,
            next_update: Some(next),
        };
        let (der, produced) = self.sign(&issuer.signer, &[single], None).await?;
        let stored = StoredResponse {
            cert_id: cert_id.der.clone(),
            issuer_id: issuer.id.clone(),
            serial_hex: state.serial_hex.clone(),
            status: status_column(status),
            this_update: this,
            next_update: next,
            produced_at: produced,
            response_der: der.clone(),
        };
        let entry = Entry {
            cert_id: cert_id.der.clone(),
            issuer_id: issuer.id.clone(),
            serial_hex: state.serial_hex.clone(),
            status,
            this_update: this,
            next_update: next,
            produced_at: produced,
            etag: etag_of(&der),
            der: Bytes::from(der),
            http: OnceLock::new(),
        };
        let entry = Arc::new(entry);
        self.insert_guarded(entry.clone(), seen_epoch);
        Ok((entry, stored))
    }

    /// Pre-produce (SHA-1 and SHA-256 CertIDs) for one certificate, and store the responses.
    pub async fn produce(&self, issuer_id: &str, serial_hex: &str) -> Result<(), CaError> {
        let mut rows = Vec::with_capacity(PRODUCED_ALGS.len());
        self.produce_into(issuer_id, serial_hex, &mut rows).await?;
        self.inner.store.ocsp_store_responses(&rows).await?;
        Ok(())
    }

    /// Pre-produce for one certificate: cached here, the rows to store appended to `rows`.
    async fn produce_into(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        rows: &mut Vec<StoredResponse>,
    ) -> Result<(), CaError> {
        let idx = self
            .ensure_index()
            .await
            .map_err(|s| CaError::Internal(format!("OCSP index: {s:?}")))?;
        let seen = self.applied_epoch();
        let Some(state) = self
            .inner
            .store
            .ocsp_cert_state(issuer_id, &[serial_hex.to_string()])
            .await?
        else {
            return Err(CaError::NotFound(format!(
                "no certificate {issuer_id}/{serial_hex}"
            )));
        };
        let find = |idx: &Index| {
            idx.issuers
                .iter()
                .position(|i| i.id == issuer_id && i.generation == state.issuer_generation)
        };
        let (idx, pos) = match find(&idx) {
            Some(p) => (idx, p),
            // Signed by a key this index does not know yet (a rollover in another process).
            None if self.reload_if_changed().await => {
                let idx = self.index();
                let p = find(&idx).ok_or_else(|| {
                    CaError::UnknownIssuer(format!(
                        "no key generation {} of CA {issuer_id}",
                        state.issuer_generation
                    ))
                })?;
                (idx, p)
            }
            None => {
                return Err(CaError::UnknownIssuer(format!(
                    "no key generation {} of CA {issuer_id} (yet)",
                    state.issuer_generation
                )));
            }
        };
        let issuer = &idx.issuers[pos];
        let serial = serial_bytes(serial_hex)
            .ok_or_else(|| CaError::Internal(format!("stored serial {serial_hex}")))?;
        for alg in PRODUCED_ALGS {
            let Some((n, k)) = issuer.name_hashes.get(&alg) else {
                continue;
            };
            let cid =
                build_cert_id(alg, n, k, &serial).map_err(|e| CaError::Internal(e.to_string()))?;
            let (_, row) = self.sign_one(issuer, &cid, &state, seen).await?;
            rows.push(row);
        }
        Ok(())
    }

    /// Pre-produce what the CA's events queued, one at a time.
    /// Pre-produce what the CA's events queued, storing what accumulated meanwhile (up to
    /// [`PRODUCE_BATCH`] certificates) in one transaction: under load, one commit for many
    /// certificates instead of two per certificate, next to the issuances' group commits.
    async fn produce_loop(&self, mut rx: tokio::sync::mpsc::Receiver<(String, String)>) {
        let mut queued = Vec::with_capacity(PRODUCE_BATCH);
        let mut rows = Vec::with_capacity(PRODUCE_BATCH * PRODUCED_ALGS.len());
        while rx.recv_many(&mut queued, PRODUCE_BATCH).await > 0 {
            for (issuer, serial) in queued.drain(..) {
                if let Err(e) = self.produce_into(&issuer, &serial, &mut rows).await {
                    tracing::warn!(error = %e, issuer = %issuer, serial = %serial, "OCSP: pre-production failed");
                }
            }
            if let Err(e) = self.inner.store.ocsp_store_responses(&rows).await {
                // Kept in memory; a request on another replica signs live, and the refresher
                // produces them again.
                tracing::warn!(error = %e, n = rows.len(), "OCSP: cannot store pre-produced responses");
            }
            rows.clear();
        }
    }

    fn queue_production(&self, issuer_id: &str, serial_hex: &str) {
        if self
            .inner
            .produce_tx
            .try_send((issuer_id.to_string(), serial_hex.to_string()))
            .is_err()
        {
            tracing::debug!("OCSP: pre-production queue full; the refresher will catch up");
        }
    }

    // ---------------------------------------------------------------- answering

    /// Answer a DER request (POST body or decoded GET path) from `ip` (`None`: not attributed
    /// to an address). Never panics; every failure is an OCSP error status.
    pub async fn answer_der(&self, der: &[u8], ip: Option<ClientIp>) -> Answer {
        match parse_request(der) {
            Ok(req) => self.answer(&req, ip).await,
            Err(e) => {
                tracing::debug!(error = %e, "OCSP: bad request");
                Answer::Error(e.ocsp_status())
            }
        }
    }

    /// Answer a parsed request from `ip`. Live signatures for it come out of the live budget
    /// (`super::budget`); over budget, a nonce is dropped and the pre-produced answer served,
    /// and what cannot be answered without signing gets `tryLater`.
    pub async fn answer(&self, req: &OcspRequest, ip: Option<ClientIp>) -> Answer {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        let a = self.answer_timed(req, ip).await;
        self.inner.latency.observe(t0.elapsed());
        a
    }

    async fn answer_timed(&self, req: &OcspRequest, ip: Option<ClientIp>) -> Answer {
        let mut idx = match self.ensure_index().await {
            Ok(i) => i,
            Err(s) => return Answer::Error(s),
        };
        let lookup = |idx: &Index| -> Vec<Option<usize>> {
            req.cert_ids
                .iter()
                .map(|c| {
                    idx.by_hash
                        .get(&(
                            c.hash_alg,
                            c.issuer_name_hash.clone(),
                            c.issuer_key_hash.clone(),
                        ))
                        .copied()
                })
                .collect()
        };
        let mut issuers = lookup(&idx);
        if issuers.iter().all(Option::is_none)
            && req.cert_ids.iter().any(|c| {
                idx.names
                    .contains(&(c.hash_alg, c.issuer_name_hash.clone()))
            })
            && self.reload_if_changed().await
        {
            // One of our CA names with a key we do not know: maybe a rollover elsewhere.
            idx = self.index();
            issuers = lookup(&idx);
        }
        let Some(primary) = issuers.iter().flatten().next().copied() else {
            return Answer::Error(ErrorStatus::Unauthorized);
        };
        let issuer = &idx.issuers[primary];
        let nonce = if self.inner.settings.nonce {
            req.nonce.as_deref()
        } else {
            None
        };
        let single_answer = |r: Result<Arc<Entry>, ErrorStatus>| match r {
            Ok(e) => Answer::Signed {
                der: e.der.clone(),
                entry: if e.cacheable() { Some(e) } else { None },
            },
            Err(s) => Answer::Error(s),
        };
        if req.cert_ids.len() == 1 && nonce.is_none() {
            return single_answer(self.single(issuer, &req.cert_ids[0], ip).await);
        }
        // Several CertIDs or a nonce: one live signature. CertIDs of another of our CAs cannot
        // be vouched for by this CA's signer: they are answered "unknown" (ask separately).
        if self.overloaded() {
            return Answer::Error(ErrorStatus::TryLater);
        }
        let Some(_permit) = self.inner.live.try_acquire(ip) else {
            if req.cert_ids.len() == 1 {
                // Over budget: the nonce is ignored (RFC 5019 §2.1.1), the cached answer served.
                return single_answer(self.single(issuer, &req.cert_ids[0], ip).await);
            }
            return Answer::Error(ErrorStatus::TryLater);
        };
        let (this, next) = self.times(&issuer.signer);
        let mut singles = Vec::with_capacity(req.cert_ids.len());
        for (cid, who) in req.cert_ids.iter().zip(&issuers) {
            let status = if *who == Some(primary) {
                match self.status(issuer, cid).await {
                    Ok(s) => s.map(|(s, _)| s).unwrap_or(CertStatus::Unknown),
                    Err(s) => return Answer::Error(s),
                }
            } else {
                CertStatus::Unknown
            };
            singles.push(SingleResponseSpec {
                cert_id_der: cid.der.clone(),
                status,
                this_update: this,
                next_update: Some(next),
            });
        }
        match self.sign(&issuer.signer, &singles, nonce).await {
            Ok((der, _)) => Answer::Signed {
                der: Bytes::from(der),
                entry: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "OCSP: signing failed");
                Answer::Error(ErrorStatus::TryLater)
            }
        }
    }

    /// Current status of one CertID of `issuer` (`None`: we never issued that serial), with the
    /// state row when it came from the store.
    async fn status(
        &self,
        issuer: &IssuerInfo,
        cid: &CertId,
    ) -> Result<Option<(CertStatus, Option<i64>)>, ErrorStatus> {
        if let Some(e) = self.cached(&cid.der)
            && matches!(e.status, CertStatus::Good)
        {
            return Ok(Some((CertStatus::Good, Some(e.next_update))));
        }
        match self
            .inner
            .store
            .ocsp_cert_state(&issuer.id, &serial_spellings(&cid.serial))
            .await
        {
            Ok(Some(st)) if st.issuer_generation == issuer.generation => {
                Ok(Some((status_of_state(&st), None)))
            }
            // Another key of the CA signed it: this key never issued that serial.
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "OCSP: store unavailable");
                Err(ErrorStatus::TryLater)
            }
        }
    }

    /// One CertID without nonce: cache, then store, then a signature (for a serial we never
    /// issued: the negative cache, then a live signature within the budget).
    async fn single(
        &self,
        issuer: &IssuerInfo,
        cid: &CertId,
        ip: Option<ClientIp>,
    ) -> Result<Arc<Entry>, ErrorStatus> {
        if let Some(e) = self.cached(&cid.der) {
            self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(e);
        }
        if let Some(e) = self.inner.negative.get(&cid.der, self.now()) {
            self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(e);
        }
        self.inner.cache_misses.fetch_add(1, Ordering::Relaxed);
        let issued_gen = self.inner.negative.generation();
        let store = &self.inner.store;
        let seen = self.applied_epoch();
        let now = self.now();
        let min_this = now - self.inner.settings.refresh_after.as_secs_i64();
        match store.ocsp_load_response(&cid.der, min_this, now + 60).await {
            Ok(Some(r)) => {
                if let Some(e) = self.entry_from_stored(r) {
                    let e = Arc::new(e);
                    self.insert_guarded(e.clone(), seen);
                    return Ok(e);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "OCSP: store unavailable");
                return Err(ErrorStatus::TryLater);
            }
        }
        let state = match store
            .ocsp_cert_state(&issuer.id, &serial_spellings(&cid.serial))
            .await
        {
            // Another key of the CA signed it: this key never issued that serial.
            Ok(s) => s.filter(|st| st.issuer_generation == issuer.generation),
            Err(e) => {
                tracing::error!(error = %e, "OCSP: store unavailable");
                return Err(ErrorStatus::TryLater);
            }
        };
        if self.overloaded() {
            return Err(ErrorStatus::TryLater);
        }
        let signed = match state {
            Some(st) => self.produce_one(issuer, cid, &st, seen).await,
            None => {
                let Some(_permit) = self.inner.live.try_acquire(ip) else {
                    return Err(ErrorStatus::TryLater);
                };
                self.unknown(issuer, cid, issued_gen).await
            }
        };
        signed.map_err(|e| {
            tracing::error!(error = %e, "OCSP: signing failed");
            ErrorStatus::TryLater
        })
    }

    /// "unknown" for a serial we never issued: signed live, never stored; kept briefly in the
    /// negative cache unless an issuance happened since `issued_gen` (read before the store).
    async fn unknown(
        &self,
        issuer: &IssuerInfo,
        cid: &CertId,
        issued_gen: u64,
    ) -> Result<Arc<Entry>, CaError> {
        let (this, next) = self.times(&issuer.signer);
        let single = SingleResponseSpec {
            cert_id_der: cid.der.clone(),
            status: CertStatus::Unknown,
            this_update: this,
            next_update: Some(next),
        };
        let (der, produced) = self.sign(&issuer.signer, &[single], None).await?;
        let entry = Arc::new(Entry {
            cert_id: cid.der.clone(),
            issuer_id: issuer.id.clone(),
            serial_hex: hex::encode(&cid.serial),
            status: CertStatus::Unknown,
            this_update: this,
            next_update: next,
            produced_at: produced,
            etag: etag_of(&der),
            der: Bytes::from(der),
            http: OnceLock::new(),
        });
        let keep = self.inner.settings.unknown_cache.as_secs_i64();
        if keep > 0 {
            self.inner.negative.put(
                entry.clone(),
                produced.saturating_add(keep),
                produced,
                issued_gen,
            );
        }
        Ok(entry)
    }

    /// Requests answered and cache hits since start (for `/metrics` and the console).
    pub fn request_stats(&self) -> RequestStats {
        RequestStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.inner.cache_misses.load(Ordering::Relaxed),
        }
    }

    /// Answer time of every request since start (`/metrics`).
    pub fn answer_latency(&self) -> crate::stats::LatencySnapshot {
        self.inner.latency.snapshot()
    }

    /// Live-signing counters (for `/metrics`).
    pub fn live_stats(&self) -> LiveStats {
        self.inner.live.stats()
    }

    /// Verdict for one CertID without producing a response (OCPP chain status).
    pub async fn verdict(&self, cid: &CertId) -> Result<Verdict, ErrorStatus> {
        let idx = self.ensure_index().await?;
        let Some(i) = idx.by_hash.get(&(
            cid.hash_alg,
            cid.issuer_name_hash.clone(),
            cid.issuer_key_hash.clone(),
        )) else {
            return Ok(Verdict {
                status: None,
                next_update: self.now(),
            });
        };
        let issuer = &idx.issuers[*i];
        let (_, next) = self.times(&issuer.signer);
        let st = self.status(issuer, cid).await?;
        Ok(match st {
            Some((s, n)) => Verdict {
                status: Some(s),
                next_update: n.unwrap_or(next),
            },
            None => Verdict {
                status: Some(CertStatus::Unknown),
                next_update: next,
            },
        })
    }

    // ---------------------------------------------------------------- background tasks

    /// Apply events after our epoch; returns false on a store error.
    async fn catch_up(&self) -> bool {
        let store = &self.inner.store;
        let applied = self.applied_epoch();
        let epoch = match store.ocsp_epoch().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "OCSP: cannot read the revocation epoch");
                return false;
            }
        };
        if epoch <= applied {
            return true;
        }
        let events = match store.ocsp_events_after(applied).await {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "OCSP: cannot read revocation events");
                return false;
            }
        };
        let new_applied = {
            let mut c = self.write_cache();
            let gap = events.first().is_none_or(|ev| ev.seq > c.applied + 1);
            if gap {
                // Events were pruned while we were away: start over from the store.
                c.map.clear();
                c.by_cert.clear();
                c.applied = epoch;
            } else {
                for ev in &events {
                    if let Some(ids) = c
                        .by_cert
                        .remove(&(ev.issuer_id.clone(), ev.serial_hex.clone()))
                    {
                        for id in ids {
                            c.map.remove(&id);
                        }
                    }
                    c.applied = ev.seq;
                }
            }
            c.applied
        };
        if let Err(e) = store.ocsp_ack(&self.inner.replica_id, new_applied).await {
            tracing::warn!(error = %e, "OCSP: cannot acknowledge the revocation epoch");
        }
        true
    }

    async fn sync_loop(&self) {
        let lease = self.inner.settings.lease.as_millis_i64().max(200);
        let poll = self
            .inner
            .settings
            .poll_interval
            .0
            .max(Duration::from_millis(5));
        loop {
            if self.catch_up().await {
                let left = self.inner.lease_until_ms.load(Ordering::Acquire) - self.now_ms();
                if left < lease * 2 / 3 {
                    let t = self.now_ms();
                    let applied = self.applied_epoch();
                    match self
                        .inner
                        .store
                        .ocsp_renew_lease(&self.inner.replica_id, applied, t + lease)
                        .await
                    {
                        Ok(true) => self
                            .inner
                            .lease_until_ms
                            .store(t + lease, Ordering::Release),
                        Ok(false) => continue, // a revocation arrived: apply it first
                        Err(e) => {
                            tracing::warn!(error = %e, "OCSP: cannot renew the replica lease")
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    async fn listen_loop(&self) {
        loop {
            match self.inner.store.ocsp_listener().await {
                Ok(Some(mut l)) => {
                    // Catch up on anything missed while not listening.
                    self.inner.wake.notify_one();
                    while l.recv().await.is_ok() {
                        self.inner.wake.notify_one();
                    }
                }
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "OCSP: cannot LISTEN for revocations"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One pass of the pre-producer; returns how many certificates were (re)produced.
    pub async fn refresh_once(&self) -> usize {
        let store = &self.inner.store;
        let now = self.now();
        let refresh_after = self.inner.settings.refresh_after.as_secs_i64();
        // Drop ageing entries from memory: the next request loads the refreshed row.
        {
            let mut c = self.write_cache();
            let stale: Vec<(Vec<u8>, String, String)> = c
                .map
                .iter()
                .filter(|(_, e)| e.this_update < now - refresh_after || e.next_update - 60 <= now)
                .map(|(k, e)| (k.clone(), e.issuer_id.clone(), e.serial_hex.clone()))
                .collect();
            for (k, i, s) in stale {
                c.map.remove(&k);
                if let Some(v) = c.by_cert.get_mut(&(i, s)) {
                    v.retain(|x| *x != k);
                }
            }
        }
        // Safety net for a revocation whose event was never written.
        let since = now - 2 * self.inner.settings.refresh_interval.as_secs_i64().max(60);
        if let Ok(revoked) = store.ocsp_revoked_since(since).await {
            let mut c = self.write_cache();
            for (i, s) in revoked {
                let ids = c
                    .by_cert
                    .get(&(i.clone(), s.clone()))
                    .cloned()
                    .unwrap_or_default();
                for id in ids {
                    if c.map
                        .get(&id)
                        .is_some_and(|e| matches!(e.status, CertStatus::Good))
                    {
                        c.map.remove(&id);
                    }
                }
            }
        }
        // Re-producing stored answers, and pruning, is shared work: one replica at a time.
        let interval = self
            .inner
            .settings
            .refresh_interval
            .0
            .max(Duration::from_secs(1));
        if !self.holds("ocsp.refresh", interval * 3).await {
            return 0;
        }
        let mut done = 0;
        match store
            .ocsp_due_for_production(now - refresh_after + 1, 500)
            .await
        {
            Ok(due) => {
                for d in due {
                    match self.produce(&d.issuer_id, &d.serial_hex).await {
                        Ok(()) => done += 1,
                        Err(e) => {
                            tracing::warn!(error = %e, issuer = %d.issuer_id, serial = %d.serial_hex, "OCSP: pre-production failed")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "OCSP: cannot list certificates due for pre-production")
            }
        }
        if let Err(e) = store.ocsp_prune_events(now - 86_400).await {
            tracing::warn!(error = %e, "OCSP: cannot prune revocation events");
        }
        if let Err(e) = store.ocsp_prune_responses().await {
            tracing::warn!(error = %e, "OCSP: cannot prune stored responses");
        }
        done
    }

    /// Whether this replica holds the lease of background job `job` (taken or renewed now for
    /// `ttl`): jobs that write for every replica run on one at a time.
    async fn holds(&self, job: &str, ttl: Duration) -> bool {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
        match self
            .inner
            .store
            .job_lease(job, &self.inner.replica_id, self.now_ms(), ttl_ms)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, job, "cannot take a job lease; skipping this round");
                false
            }
        }
    }

    async fn refresh_loop(&self) {
        loop {
            let n = self.refresh_once().await;
            if n > 0 {
                tracing::info!(count = n, "OCSP: responses pre-produced");
            }
            tokio::time::sleep(
                self.inner
                    .settings
                    .refresh_interval
                    .0
                    .max(Duration::from_secs(1)),
            )
            .await;
        }
    }

    /// Renew every delegated signer that has less than `signer_renew_margin` left (or that is
    /// missing); returns the CAs whose signer changed.
    pub async fn rotate_signers(&self) -> Vec<String> {
        let mut changed = Vec::new();
        if self.inner.settings.sign_with != SignWith::Delegated {
            return changed;
        }
        let margin = self.inner.settings.signer_renew_margin.as_secs_i64();
        let idx = self.index();
        let actor = format!("ocsp-responder:{}", self.inner.replica_id);
        for i in idx.issuers.iter().filter(|i| i.current) {
            let left = i.signer.not_after - self.now();
            if i.signer.serial_hex.is_some() && left >= margin {
                continue;
            }
            match self.inner.ca.ensure_ocsp_signer(&i.id, true, &actor).await {
                Ok(step) => {
                    tracing::info!(ca = %i.id, detail = %step.detail, "OCSP: delegated signer renewed");
                    changed.push(i.id.clone());
                }
                Err(e) => tracing::error!(ca = %i.id, error = %e, "OCSP: signer renewal failed"),
            }
        }
        if !changed.is_empty()
            && let Err(e) = self.reload_index().await
        {
            tracing::error!(error = %e, "OCSP: cannot reload signers");
        }
        changed
    }

    async fn signer_loop(&self) {
        loop {
            tokio::time::sleep(
                self.inner
                    .settings
                    .signer_check_interval
                    .0
                    .max(Duration::from_secs(1)),
            )
            .await;
            // Two replicas renewing at once would each make a new signer: one renews.
            let every = self
                .inner
                .settings
                .signer_check_interval
                .0
                .max(Duration::from_secs(1));
            if self.holds("ocsp.signers", every * 3).await {
                self.rotate_signers().await;
            }
            // Pick up CAs and signers created by other processes too.
            if let Err(e) = self.reload_index().await {
                tracing::warn!(error = %e, "OCSP: cannot reload the CA index");
            }
        }
    }

    /// Leave the replica set (graceful shutdown).
    pub async fn stop(&self) {
        self.inner.lease_until_ms.store(0, Ordering::Release);
        if let Err(e) = self
            .inner
            .store
            .ocsp_deregister_replica(&self.inner.replica_id)
            .await
        {
            tracing::warn!(error = %e, "OCSP: cannot leave the replica set; its lease runs out by itself");
        }
    }

    /// Apply new revocation events now rather than at the next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// The local cache's subscription to the CA: issuances and revocations queue their responses for
/// pre-production (the caller never waits for an OCSP signature), and a revocation wakes the
/// replica loop at once so that this process acknowledges the new epoch without polling.
impl Observer for Responder {
    fn issued(&self, issuer_id: &str, serial_hex: &str) {
        self.inner.negative.forget(issuer_id, serial_hex);
        self.queue_production(issuer_id, serial_hex);
    }

    fn revoked<'a>(&'a self, ev: &'a Revoked) -> BoxFuture<'a, Result<(), CaError>> {
        self.wake();
        self.queue_production(&ev.issuer_id, &ev.serial_hex);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Entry {
    /// Only answers about certificates we issued are cached and carry caching headers.
    pub fn cacheable(&self) -> bool {
        !matches!(self.status, CertStatus::Unknown)
    }
}
