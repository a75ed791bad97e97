"""The soulprint: sections, the offline model, the sample, the prompt, the Claude client."""
