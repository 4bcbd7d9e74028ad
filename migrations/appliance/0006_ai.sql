-- AI replies: the workspace's provider settings, its API keys (write-only, AES-256-GCM by the
-- field cipher on top of SQLCipher), the knowledge base the replies answer from, and a monthly
-- count of AI replies (for plan limits). Nothing here names a contact.

CREATE TABLE ai_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row per workspace
    provider TEXT NOT NULL CHECK (provider IN ('anthropic', 'openai')),
    model TEXT NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);

-- One key per provider, so a flow step may override the provider (`ai_reply.provider`).
CREATE TABLE ai_api_keys (
    provider TEXT PRIMARY KEY CHECK (provider IN ('anthropic', 'openai')),
    api_key_enc TEXT NOT NULL,               -- FieldCipher, context "ai.api_key:<provider>"
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE ai_usage (
    month TEXT PRIMARY KEY,                  -- '2026-11' (UTC)
    replies INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- `text` comes last: reading the columns before it never walks its overflow pages.
CREATE TABLE knowledge_documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('text', 'txt', 'md', 'html', 'pdf')),
    filename TEXT,
    chars INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    text TEXT NOT NULL                       -- the extracted text the chunks were cut from
);

-- A passage: cut on paragraph and heading boundaries. `*_terms` are the normalised words
-- (appliance/ai/knowledge/terms.py) that the full-text index holds; the index tokenizes them
-- with `ascii`, which splits them on the spaces between them and changes nothing else.
CREATE TABLE knowledge_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    heading TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    heading_terms TEXT NOT NULL DEFAULT '',
    body_terms TEXT NOT NULL DEFAULT ''
);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (document_id, position);

-- External-content FTS5 index over the chunks' terms, kept in step by triggers (a deleted or
-- changed chunk leaves the index in the same statement), ranked with bm25().
CREATE VIRTUAL TABLE knowledge_fts USING fts5(
    heading_terms, body_terms, content='knowledge_chunks', content_rowid='id', tokenize='ascii'
);
CREATE VIRTUAL TABLE knowledge_vocab USING fts5vocab(knowledge_fts, 'row');

-- How many passages hold each word (heading or body): the rarity weights of retrieval, kept by
-- the store with every change of passages. fts5vocab knows the same numbers but counts them
-- by walking a word's whole list of passages, too slow for common words in every question.
CREATE TABLE knowledge_terms (
    term TEXT PRIMARY KEY,
    chunks INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts (rowid, heading_terms, body_terms)
        VALUES (new.id, new.heading_terms, new.body_terms);
END;
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts (knowledge_fts, rowid, heading_terms, body_terms)
        VALUES ('delete', old.id, old.heading_terms, old.body_terms);
END;
CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts (knowledge_fts, rowid, heading_terms, body_terms)
        VALUES ('delete', old.id, old.heading_terms, old.body_terms);
    INSERT INTO knowledge_fts (rowid, heading_terms, body_terms)
        VALUES (new.id, new.heading_terms, new.body_terms);
END;
