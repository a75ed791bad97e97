"""The export reader: containers, the JSON stream and its guard, dialects, rows."""
