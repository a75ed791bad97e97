-- memory_chunks: a person's conversations cut into chunks and embedded, for recall
-- (PostgreSQL with pgvector / Supabase migration).
--
-- Idempotent: run it as often as you like (Supabase SQL editor, `supabase db push`, psql -f).
-- It makes the tables PgvectorStore.ensure_schema() (soulprint_pipeline/memory/pgvector.py)
-- makes, column for column (the tests check both); the pipeline creates them itself when its
-- role may, so run this first where it may not.
--
-- The embedding dimension is 1024 (Amazon Titan Text Embeddings V2's default). For another
-- one (Titan also makes 256 and 512), replace `vector(1024)` below before the first run;
-- the pipeline refuses a table whose dimension is not the embedder's. Changing it later means
-- dropping both tables (the memory is rebuilt from the conversations on the next import).

-- On Supabase, enabling "vector" in the dashboard puts it in the `extensions` schema, which is
-- on the search path; this line then does nothing.
CREATE EXTENSION IF NOT EXISTS vector;

-- The live chunks: what recall searches. Replaced per user in one transaction by a build.
CREATE TABLE IF NOT EXISTS public.memory_chunks (
    user_id text NOT NULL,
    chunk_id text NOT NULL,
    conversation_id text,
    conversation_title text,
    conversation_created_at timestamp with time zone,
    first_message_at timestamp with time zone,
    last_message_at timestamp with time zone,
    chunk_index integer NOT NULL,
    text text NOT NULL,
    tokens integer NOT NULL,
    content_hash text NOT NULL,
    embedding vector(1024) NOT NULL,
    PRIMARY KEY (user_id, chunk_id)
);

-- Cosine distance (`<=>`), what recall orders by. The primary key already serves lookups by
-- user_id (its first column), so user_id has no index of its own.
CREATE INDEX IF NOT EXISTS memory_chunks_embedding_idx
    ON public.memory_chunks USING hnsw (embedding vector_cosine_ops);

-- A build's rows before it publishes them. No vector index: nothing searches here.
-- The same columns as memory_chunks (LIKE copies them, their types and NOT NULLs, not the key).
CREATE TABLE IF NOT EXISTS public.memory_chunks_staging (
    LIKE public.memory_chunks,
    build_key text NOT NULL
);

CREATE INDEX IF NOT EXISTS memory_chunks_staging_user_id_build_key_idx
    ON public.memory_chunks_staging (user_id, build_key);

-- Row level security (Supabase). Every table in `public` is reachable through the REST API
-- with the anon key, so RLS must be on. The pipeline connects as a role that bypasses RLS
-- (the table owner or the service role), so it needs no policy. If the app reads the live
-- chunks with a user's token, add a policy, for example:
--
--   CREATE POLICY "read own memory" ON public.memory_chunks
--       FOR SELECT TO authenticated USING ((SELECT auth.uid())::text = user_id);
--
-- The staging table needs none: only the pipeline uses it.
ALTER TABLE public.memory_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memory_chunks_staging ENABLE ROW LEVEL SECURITY;
