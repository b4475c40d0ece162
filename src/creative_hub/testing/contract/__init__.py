"""The log contract suite: one set of tests every engine must pass.

``LogContract`` gathers the rules by theme (``records``, ``groups``,
``batches``, ``retention``); ``support`` holds the helpers they share.

In-repo engines run it from ``tests/contract/test_log.py``; a third-party
engine imports it and provides two fixtures::

    from creative_hub.testing.contract import LogContract

    class TestMyEngine(LogContract):
        @pytest.fixture
        def log_url(self): return "myengine://..."        # a server the test owns

        @pytest.fixture
        async def log(self, log_url):
            log = open_log(log_url); await log.open(); yield log; await log.close()

Every test uses topics of its own, so engines may share one server per
session.  No test measures speed; waits are bounded and only there so that a
broken engine fails instead of hanging.
"""

from __future__ import annotations

from .batches import BatchRules
from .groups import GroupRules
from .records import RecordRules
from .retention import RetentionRules
from .support import OPTIONAL_FEATURES, WAIT, eventually, features, make_entries, new_topic

__all__ = ["OPTIONAL_FEATURES", "WAIT", "LogContract", "eventually", "features", "make_entries", "new_topic"]


class LogContract(RecordRules, GroupRules, BatchRules, RetentionRules):
    """The rules of ``creative_hub.log.base.Log``, one test each."""
