"""Shared fixtures live in tests/fixtures/ as factories; this file only loads them."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.leaks",
    "tests.fixtures.machine",
    "tests.fixtures.registry",
    "tests.fixtures.tls",
    "tests.fixtures.toy_registry",
]
