"""The person's memory: their conversations cut into chunks, embedded, stored for recall.

* :mod:`~soulprint_pipeline.memory.chunking` cuts the parsed rows into chunks (whole turns
  where they fit, never across conversations);
* :mod:`~soulprint_pipeline.memory.embedders` turns texts into unit vectors (``offline``, a
  local deterministic embedder; ``bedrock``, Amazon Titan Text Embeddings V2);
* :mod:`~soulprint_pipeline.memory.store` keeps them (LanceDB by default, Postgres with
  pgvector for the app), one user's chunks replaced atomically;
* :mod:`~soulprint_pipeline.memory.build` is the whole step, resumable, without Dagster;
* :mod:`~soulprint_pipeline.memory.recall` finds a user's best chunks for a query.
"""
