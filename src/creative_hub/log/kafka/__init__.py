"""Kafka-API engine (Apache Kafka, Redpanda) on confluent-kafka (librdkafka).

``kafka://host:port[,host:port][?option=value&...]``; options: ``partitions``
(for topics it creates, default 4), ``replication`` (default: the broker's),
``prefix`` (prepended to Kafka topics and groups), ``timeout`` (seconds per
request and per produce, default 10), ``session_timeout`` / ``min_session``
(group sessions, seconds), ``dedup_window`` (ids per topic, default 100k),
``linger_ms`` (librdkafka's; the writer sends each produce round at once,
so it only batches records queued while no round waits), ``malloc_trim``
(seconds between handing librdkafka's freed buffers back to the OS, default
10, 0: never; see ``malloc.py``), and
``client.<librdkafka key>`` for anything else (TLS, SASL).
``kafka://user:password@host`` sets SASL credentials.  Redpanda speaks the
same protocol: point the URL at it, nothing else changes.

How the contract maps onto Kafka:

* **Topics.**  Hub topic ``creative.narrative`` is Kafka topic
  ``creative.narrative`` (after the prefix): hub names are legal Kafka names
  as they are.  Kafka refuses two topics that differ only in ``.`` vs ``_``;
  creating the second raises ValidationError.  Topics are created on first
  use with ``message.timestamp.type=LogAppendTime`` (``Record.time_ms`` is
  when the broker stored it, which ``since=`` seeks by, via offsets_for_times).
* **Records.**  CloudEvents Kafka binding, structured mode: the value is the
  event's JSON (``Entry.body``), header ``content-type:
  application/cloudevents+json``, key = the partition key, so any Kafka tool
  reads our events.  Headers ``ch-id`` and ``ch-digest`` carry the id and
  content digest for dedup.  A record someone else produced still reads as
  a Record (its id from the JSON if it has one; the body as is), so the hub
  can dead-letter what is not an event.
* **Positions.**  With one partition (the default) a position is the offset,
  ``"41"``, and topics keep one total order like every other engine.  With
  ``partitions=N`` order is per key only, and a position read back is the
  whole cursor vector ``"o0,o1,...,oN-1"`` (per partition the last offset
  read, -1 for none): ``read(after=p)`` resumes every partition right after
  it, so it yields exactly what the reader had not seen yet.  An append
  receipt is the cursor as if the topic were read in append order; a
  delivery's position names only its own partition (others -1).  A
  position whose successor was deleted by retention raises PositionGone.
* **Dedup** by id per topic, across processes, within ``dedup_window`` ids:
  see ``writer``.  The idempotent producer (``acks=all``) covers retries
  inside one producer session.
* **Groups** are Kafka consumer groups with commit-after-ack and an ack
  timeout implemented in the member: see ``group``.
* **Retention**: ``max_age`` and ``max_bytes`` become ``retention.ms`` /
  ``retention.bytes`` (the broker drops whole segments); ``apply_retention``
  deletes exactly with ``delete_records``, which is also how ``max_count``
  (not a Kafka setting) is enforced.  Retention settings are kept in the
  compacted topic ``_creative_hub.meta``.

Errors from librdkafka become creative-hub errors in ``names.translate``; the
readers (``read``) and the writer (``writer``) share ``names``' options and positions.
"""

from .engine import KafkaLog
from .group import KafkaSubscription
from .names import KafkaOptions

__all__ = ["KafkaLog", "KafkaOptions", "KafkaSubscription"]
