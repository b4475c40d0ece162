"""The log contract on every engine (see creative_hub.testing.contract)."""

from creative_hub.testing.contract import LogContract


class TestLog(LogContract):
    pass
