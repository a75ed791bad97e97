"""soulprint_pipeline: a person's chat export in, a quick-pass soulprint out."""
