"""The shared fixtures, registered once for every test module (see support/)."""

pytest_plugins = [
    "soulprint_pipeline_tests.support.bedrock_stub",
    "soulprint_pipeline_tests.support.env",
    "soulprint_pipeline_tests.support.postgres",
    "soulprint_pipeline_tests.support.s3",
]
