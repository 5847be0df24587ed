"""Integration tests: the deployed stack's pieces run together, in-process (moto), with no AWS account."""
