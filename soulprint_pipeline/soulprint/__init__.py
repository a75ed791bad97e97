"""The soulprint: sections, the offline model (evidence, facts, themes, offline), the sample,
the prompt, the Claude client, and generate: the whole step, any backend, without Dagster."""
