"""What the tests share: servers (PostgreSQL, S3, a Bedrock stub), export builders, the
Dagster environment, the console script. Fixtures are registered once, by conftest.py."""
