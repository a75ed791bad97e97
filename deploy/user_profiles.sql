-- user_profiles: the columns the soulprint pipeline owns (PostgreSQL / Supabase migration).
--
-- Idempotent: run it as often as you like (Supabase SQL editor, `supabase db push`, psql -f).
-- It creates the table if it is missing and adds any missing pipeline column; it never drops,
-- renames or retypes a column, so the app's own columns and data are left as they are.
-- Its columns are the table in soulprint_pipeline/mirror/columns.py (the tests check each line
-- against it) and it makes the table PostgresProfileStore.ensure_schema() makes; the Supabase
-- REST backend cannot change the schema, so on Supabase run this file first.

DO $$
BEGIN
    IF to_regclass('public.user_profiles') IS NULL THEN
        CREATE TABLE public.user_profiles (user_id text PRIMARY KEY);
    END IF;
END
$$;

ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS user_id text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS import_status text NOT NULL DEFAULT 'none';
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS import_stage text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS progress_percent integer NOT NULL DEFAULT 0;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS import_error text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS processing_started_at timestamptz;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS total_conversations integer;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS total_messages integer;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS soulprint jsonb;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS soulprint_text text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS soul_md text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS identity_md text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS user_md text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS agents_md text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS tools_md text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS ai_name text;
ALTER TABLE public.user_profiles ADD COLUMN IF NOT EXISTS archetype text;

-- Upserts (ON CONFLICT (user_id), PostgREST's ?on_conflict=user_id) need user_id to be unique.
-- A primary key or unique constraint already on user_id is enough; otherwise add an index.
-- (This fails if the table already holds duplicate user_ids: resolve those first.)
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'public.user_profiles'::regclass
          AND i.indisunique AND i.indnkeyatts = 1
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND a.attname = 'user_id'
    ) THEN
        CREATE UNIQUE INDEX IF NOT EXISTS user_profiles_user_id_key
            ON public.user_profiles (user_id);
    END IF;
END
$$;

-- Row level security (Supabase). Every table in `public` is reachable through the REST API
-- with the anon key, so RLS must be on. The pipeline writes with the service role key, which
-- bypasses RLS, so it needs no policy. The app's own access needs policies, for example:
--
--   CREATE POLICY "read own profile" ON public.user_profiles
--       FOR SELECT TO authenticated USING ((SELECT auth.uid())::text = user_id);
--
-- If the app's table had RLS off, enabling it here blocks anon/authenticated access until such
-- policies exist: add them in the same deploy.
ALTER TABLE public.user_profiles ENABLE ROW LEVEL SECURITY;
