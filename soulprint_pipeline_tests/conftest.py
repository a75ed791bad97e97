"""The shared fixtures, registered once for every test module (see support/)."""

pytest_plugins = [
    "soulprint_pipeline_tests.support.bedrock_stub",
    "soulprint_pipeline_tests.support.env",
    "soulprint_pipeline_tests.support.postgres",
    # after postgres, whose helpers it imports (imported first, it would not be assert-rewritten)
    "soulprint_pipeline_tests.support.pgvector",
    "soulprint_pipeline_tests.support.s3",
    # after postgres, whose skip-or-fail rule it uses
    "soulprint_pipeline_tests.support.browser",
]
