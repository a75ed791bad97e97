"""The ``user_profiles`` mirror: where an import's progress and its soulprint land for the app.

``user_profiles`` is the app's table. The pipeline owns the columns in
:data:`~soulprint_pipeline.mirror.columns.COLUMNS`: it creates the table if it is missing and
adds any of its columns that are missing, and it never drops, rewrites or reads the app's other
columns. :func:`~soulprint_pipeline.mirror.registry.open_profile_store` picks the backend by URL:

- ``sqlite:///path.sqlite3``: a local SQLite file (the embedded default), WAL mode (sqlite.py).
- ``postgresql://...`` / ``postgres://...``: PostgreSQL through psycopg 3, including Supabase's
  own Postgres (direct or through its pooler: prepared statements are off for that reason)
  (postgres.py).
- ``https://<project>.supabase.co``: Supabase's REST API (PostgREST) with the service role key
  (supabase.py).

progress.py writes an import's stages through whichever store was opened.
"""
