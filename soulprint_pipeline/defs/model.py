"""The ``llm`` resource: the soulprint step's configuration in Dagster (``SOULPRINT_MODEL``).

The step itself is :func:`soulprint_pipeline.soulprint.generate.generate` (the backends, the
sample, the model call). This resource validates its config, hands it over as
:class:`~soulprint_pipeline.soulprint.generate.ModelSettings`, and puts the result in Dagster's
terms: a permanent model error fails the step with no retry, the evidence summary is JSON
metadata. Throttling past the client's retries is retried by the asset (``max_step_retries``,
``retry_delay_seconds``).
"""

import dataclasses
from collections.abc import Callable

import dagster as dg

from soulprint_pipeline.lake.store import StoredParts
from soulprint_pipeline.soulprint.generate import BACKENDS, Generated, ModelSettings
from soulprint_pipeline.soulprint.generate import generate as generate_soulprint
from soulprint_pipeline.soulprint.llm import PermanentModelError


class SoulprintModel(dg.ConfigurableResource):
    """Writes the quick-pass soulprint from a user's parsed conversations."""

    backend: str = "offline"
    model_id: str | None = None  # the backend's default when unset
    aws_region: str | None = None  # else AWS_REGION / AWS_DEFAULT_REGION
    token_budget: int = 50_000
    max_conversations: int = 50
    max_output_tokens: int = 4096
    max_retries: int = 4  # the SDK's, with exponential backoff and jitter
    max_step_retries: int = 3  # then Dagster's: the step again, after a longer wait
    retry_delay_seconds: float = 30.0
    timeout_seconds: float = 120.0

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.backend not in BACKENDS:
            raise dg.DagsterInvalidConfigError(
                f"SOULPRINT_MODEL={self.backend!r} is not a backend; choose one of {BACKENDS}.",
                [],
                self.backend,
            )

    @property
    def settings(self) -> ModelSettings:
        """The step's settings: these fields but Dagster's own step retries."""
        return ModelSettings(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(ModelSettings)}
        )

    @property
    def model(self) -> str:
        """The model that writes the soulprint."""
        return self.settings.model

    def generate(
        self, parts: StoredParts, on_progress: Callable[[float], None] | None = None
    ) -> Generated:
        """The validated sections for the rows in ``parts``."""
        try:
            generated = generate_soulprint(parts, self.settings, on_progress)
        except PermanentModelError as error:
            # no Dagster retry either: credentials or access will not fix themselves
            raise dg.Failure(description=str(error), allow_retries=False) from error
        metadata = dict(generated.metadata)
        if "evidence" in metadata:
            metadata["evidence"] = dg.MetadataValue.json(metadata["evidence"])
        return dataclasses.replace(generated, metadata=metadata)
