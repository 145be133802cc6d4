"""Puts tests/data on sys.path (pytest adds a conftest's folder): `engine_fns` holds the functions that
process workers import by name, for the tests in every folder below."""
