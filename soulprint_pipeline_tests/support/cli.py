"""The installed console script, as a person runs it."""

import sys
from pathlib import Path

#: The installed entry point (pyproject's [project.scripts]), beside the test's interpreter.
CONSOLE_SCRIPT = Path(sys.executable).parent / "soulprint-pipeline"
