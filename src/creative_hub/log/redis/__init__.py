"""The Redis Streams engine: ``redis://[user:password@]host:port/db[?partitions=8]``.

The same nouns as every engine package:

* ``engine.py`` -- ``RedisLog``: the key layout (its module docstring),
  connection and error translation, append, read, topics, retention, lag;
* ``group.py`` -- ``RedisSubscription``: a consumer-group member, partitions
  leased to members, XACK after the handler, claims after a member died;
* ``delivery.py`` -- ``RedisDelivery``: one record handed out, its ack queued
  for the member's next round trip;
* ``scripts.py`` -- the Lua scripts (append, join, lease, retention ...).
"""

from .engine import RedisLog
from .group import RedisSubscription

__all__ = ["RedisLog", "RedisSubscription"]
