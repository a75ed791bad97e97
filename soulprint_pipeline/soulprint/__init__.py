"""The soulprint: sections, the offline model (evidence, facts, themes, offline), the sample,
the prompt, the Claude client."""
