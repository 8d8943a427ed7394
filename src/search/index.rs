//! The tantivy index of the metric metadata catalog: derived state, never the source
//! of truth. One index holds every tenant, each document carrying a `tenant` term that
//! every query is confined to — one writer (one indexing thread, a fixed heap) however
//! many tenants there are, where an index per tenant would need a writer (at least
//! 15 MB) per tenant. The commit payload records the raft index the index reflects, so
//! a restart knows whether it must rebuild from the store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use metacenter_storage::{MetricDoc, Store};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, FAST, STORED, STRING, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

/// Heap of the one index writer (tantivy needs at least 15 MB per indexing thread).
const WRITER_HEAP: usize = 48 * 1024 * 1024;
/// Most query words used.
const MAX_WORDS: usize = 16;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("search index: {0}")]
    Open(String),
    #[error("catalog: {0}")]
    Store(#[from] metacenter_storage::Error),
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    tenant: Field,
    name_s: Field,
    name: Field,
    help: Field,
    labels: Field,
    kind: Field,
    label_kv: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        key: b.add_text_field("key", STRING),
        tenant: b.add_text_field("tenant", STRING | STORED),
        name_s: b.add_text_field("name_s", STRING | STORED | FAST),
        name: b.add_text_field("name", TEXT),
        help: b.add_text_field("help", TEXT),
        labels: b.add_text_field("labels", TEXT),
        kind: b.add_text_field("kind", STRING),
        label_kv: b.add_text_field("label_kv", STRING),
    };
    (b.build(), f)
}

fn doc_key(tenant: &str, name: &str) -> String {
    format!("{tenant}\u{0}{name}")
}

/// What a search asks for (already validated at the edge).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub tenant: String,
    pub text: String,
    pub types: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub limit: usize,
    pub offset: usize,
}

/// The index, its reader and its one writer.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
    dir: PathBuf,
    /// Keys present in the index (so names noted again by points cost nothing).
    known: Mutex<HashSet<String>>,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (or recreating an unreadable one).
    pub fn open(dir: &Path) -> Result<SearchIndex, IndexError> {
        std::fs::create_dir_all(dir)?;
        let (schema, f) = schema();
        let index = match open_index(dir, &schema) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "search index unreadable; recreating it");
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                open_index(dir, &schema)?
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_HEAP)?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            f,
            dir: dir.to_path_buf(),
            known: Mutex::new(HashSet::new()),
        })
    }

    /// The raft index the last commit reflects (None: never committed).
    pub fn committed_at(&self) -> Option<u64> {
        let metas = self.index.load_metas().ok()?;
        metas.payload?.parse().ok()
    }

    /// Whether the key of (tenant, name) is in the index.
    pub fn knows(&self, tenant: &str, name: &str) -> bool {
        self.known
            .lock()
            .expect("known lock")
            .contains(&doc_key(tenant, name))
    }

    /// Bytes the index occupies on disk.
    pub fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Replaces the whole index with the catalog in `store`, as of raft index `at`.
    pub fn rebuild(&self, store: &Store, at: u64) -> Result<u64, IndexError> {
        let mut w = self.writer.lock().expect("writer lock");
        w.delete_all_documents()?;
        let mut known = HashSet::new();
        let mut err = None;
        store.catalog_for_each(|tenant, doc| {
            if err.is_none() {
                known.insert(doc_key(tenant, &doc.name));
                err = w.add_document(self.document(tenant, &doc)).err();
            }
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        let n = known.len() as u64;
        *self.known.lock().expect("known lock") = known;
        self.commit(&mut w, at)?;
        Ok(n)
    }

    /// Re-reads the given documents (and whole tenants) from `store`, then commits as
    /// of raft index `at`.
    pub fn refresh(
        &self,
        store: &Store,
        docs: &HashSet<(String, String)>,
        tenants: &HashSet<String>,
        at: u64,
    ) -> Result<(), IndexError> {
        let mut w = self.writer.lock().expect("writer lock");
        let mut known = self.known.lock().expect("known lock");
        for tenant in tenants {
            w.delete_term(Term::from_field_text(self.f.tenant, tenant));
            let prefix = doc_key(tenant, "");
            known.retain(|k| !k.starts_with(&prefix));
            for doc in store.catalog_docs(tenant)? {
                known.insert(doc_key(tenant, &doc.name));
                w.add_document(self.document(tenant, &doc))?;
            }
        }
        for (tenant, name) in docs.iter().filter(|(t, _)| !tenants.contains(t)) {
            let key = doc_key(tenant, name);
            w.delete_term(Term::from_field_text(self.f.key, &key));
            match store.catalog_doc(tenant, name)? {
                Some(doc) => {
                    w.add_document(self.document(tenant, &doc))?;
                    known.insert(key);
                }
                None => {
                    known.remove(&key);
                }
            }
        }
        drop(known);
        self.commit(&mut w, at)
    }

    fn commit(&self, w: &mut IndexWriter, at: u64) -> Result<(), IndexError> {
        let mut prepared = w.prepare_commit()?;
        prepared.set_payload(&at.to_string());
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, tenant: &str, doc: &MetricDoc) -> TantivyDocument {
        let f = &self.f;
        let mut d = TantivyDocument::new();
        d.add_text(f.key, doc_key(tenant, &doc.name));
        d.add_text(f.tenant, tenant);
        d.add_text(f.name_s, &doc.name);
        d.add_text(f.name, &doc.name);
        d.add_text(f.help, &doc.help);
        d.add_text(f.kind, &doc.kind);
        for (k, vs) in &doc.labels {
            d.add_text(f.labels, k);
            for v in vs {
                d.add_text(f.labels, v);
                d.add_text(f.label_kv, format!("{k}={v}"));
            }
        }
        d
    }

    /// Runs a search: the names of the page of matches, best first (by name when
    /// there are no words), and the total number of matches.
    /// Exact and prefix matches are tried first; only a query that matches nothing
    /// that way is retried with fuzzy matching (its automata are the costly part).
    pub fn search(&self, q: &SearchQuery) -> Result<(Vec<String>, usize), IndexError> {
        let found = self.run_search(q, false)?;
        if found.1 > 0 || words(&q.text).is_empty() {
            return Ok(found);
        }
        self.run_search(q, true)
    }

    fn run_search(&self, q: &SearchQuery, fuzzy: bool) -> Result<(Vec<String>, usize), IndexError> {
        let searcher = self.reader.searcher();
        let (query, has_words) = self.build_query(q, fuzzy);
        let limit = q.limit.max(1);
        let top = TopDocs::with_limit(limit).and_offset(q.offset);
        let (total, addrs): (usize, Vec<_>) = if has_words {
            let (total, hits) = searcher.search(&query, &(Count, top.order_by_score()))?;
            (total, hits.into_iter().map(|h| h.1).collect())
        } else {
            let by_name = top.order_by_string_fast_field("name_s", Order::Asc);
            let (total, hits) = searcher.search(&query, &(Count, by_name))?;
            (total, hits.into_iter().map(|h| h.1).collect())
        };
        Ok((self.names(&searcher, addrs.into_iter())?, total))
    }

    fn names(
        &self,
        searcher: &tantivy::Searcher,
        addrs: impl Iterator<Item = tantivy::DocAddress>,
    ) -> Result<Vec<String>, IndexError> {
        let mut out = Vec::new();
        for a in addrs {
            let d: TantivyDocument = searcher.doc(a)?;
            if let Some(name) = d.get_first(self.f.name_s).and_then(|v| v.as_str()) {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    fn build_query(&self, q: &SearchQuery, fuzzy: bool) -> (Box<dyn Query>, bool) {
        let f = &self.f;
        let mut must: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, term_query(f.tenant, &q.tenant))];
        let words = words(&q.text);
        for w in &words {
            must.push((Occur::Must, self.word_query(w, fuzzy)));
        }
        if !q.types.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = q
                .types
                .iter()
                .map(|t| (Occur::Should, term_query(f.kind, &t.to_lowercase())))
                .collect();
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        for (k, v) in &q.labels {
            must.push((Occur::Must, term_query(f.label_kv, &format!("{k}={v}"))));
        }
        if words.is_empty() && must.len() == 1 {
            must.push((Occur::Must, Box::new(AllQuery)));
        }
        (Box::new(BooleanQuery::new(must)), !words.is_empty())
    }

    /// One word matches a field exactly (best), as a prefix, or (`fuzzy`) within one edit.
    fn word_query(&self, w: &str, fuzzy: bool) -> Box<dyn Query> {
        let f = &self.f;
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, weight) in [(f.name, 3.0), (f.help, 1.5), (f.labels, 1.0)] {
            let term = Term::from_field_text(field, w);
            any.push((
                Occur::Should,
                boost(term_query_t(term.clone()), 2.0 * weight),
            ));
            let prefix = FuzzyTermQuery::new_prefix(term.clone(), 0, true);
            any.push((Occur::Should, boost(Box::new(prefix), weight)));
            if fuzzy && w.chars().count() >= 4 {
                let fuzzy = FuzzyTermQuery::new(term, 1, true);
                any.push((Occur::Should, boost(Box::new(fuzzy), 0.5 * weight)));
            }
        }
        Box::new(BooleanQuery::new(any))
    }
}

fn open_index(dir: &Path, schema: &Schema) -> Result<Index, IndexError> {
    let mmap = MmapDirectory::open(dir).map_err(|e| IndexError::Open(e.to_string()))?;
    let index = Index::open_or_create(mmap, schema.clone())?;
    Ok(index)
}

fn boost(q: Box<dyn Query>, by: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(q, by))
}

fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    term_query_t(Term::from_field_text(field, text))
}

fn term_query_t(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
}

/// The words of a query as the default tokenizer produces them: split on anything
/// not alphanumeric (so `_` and `:` in metric names), lower-cased.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() <= 40)
        .map(str::to_lowercase)
        .take(MAX_WORDS)
        .collect()
}
