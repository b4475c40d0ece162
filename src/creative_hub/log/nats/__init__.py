"""NATS JetStream engine: a stream per topic, partitioned durable pull consumers, ``Nats-Msg-Id`` dedup.

    log = open_log("nats://127.0.0.1:4222")
    log = open_log("nats://hub:s3cret@n1:4222,n2:4222,n3:4222?replicas=3&partitions=16")
    log = open_log("nats://s3cret-token@127.0.0.1:4222")

URL options: ``replicas`` (streams and the lease bucket; default 1),
``partitions`` (for topics this log creates; default 8), ``dedup_window``
(seconds, default 120), ``max_deliver`` (per record per group, default -1 =
unlimited), ``timeout`` (seconds per JetStream request, default 10),
``name`` (connection name).  Needs nats-server >= 2.14 with JetStream (``-js``).

Layout
------
* **Stream** per topic, file storage, limits retention:
  ``hub_<topic with "_" doubled and "." -> "_">`` (``creative.narrative`` ->
  ``hub_creative_narrative``); the topic and its partition count are in the
  stream's metadata (``creative_hub.topic``, ``creative_hub.partitions``).
* **Subjects** ``<topic>.<creator>.<partition>``: ``creator`` is
  ``Entry.creator`` as one subject token (``[A-Za-z0-9-]`` kept, ``_`` doubled,
  any other byte ``_xx`` in hex; empty -> ``_``), so a plain NATS subscriber
  filters by creator with ``creative.narrative.alice.*`` or takes all with
  ``creative.narrative.>``.  ``partition`` is ``crc32(key) % partitions``
  (the sqlite engine's rule).
* **Headers** on every message: ``Nats-Msg-Id`` (the event id),
  ``Hub-Key`` (partition key), ``Hub-Digest`` (content hash), and
  ``Content-Type: application/cloudevents+json`` -- the CloudEvents NATS
  protocol binding in structured mode: the payload is the whole event as
  JSON, readable by any NATS client.  Header values outside printable ASCII
  are percent-encoded (plain UUID ids are unchanged).  Appended batches also
  carry JetStream's ``Nats-Batch-*`` headers (see below).
* A message published by hand (any subject ``<topic>.<token>.<n>``, any
  payload, with or without headers) still reads back as a Record: its id is
  ``Nats-Msg-Id`` or else the stream sequence, its key ``Hub-Key`` or "", its
  body the raw payload -- so the hub can dead-letter what it cannot decode.

Positions
---------
A position is the stream sequence as a decimal string.  ``read`` uses
batched DIRECT.GET (by sequence, or by ``start_time`` for ``since``), with no
consumer to create or clean up; a read without ``follow`` stops at the last
sequence that existed when it began, and with ``follow`` it waits on a core
subscription to the topic's subjects.  Retention removes from the front only,
so a position below ``first_seq - 1`` is gone: ``PositionGone`` names the
earliest retained position (checked when the read starts and whenever a batch
begins past where it asked).

Appends: dedup, conflicts, atomicity
------------------------------------
* One entry: a JetStream publish with ``Nats-Msg-Id``.  A duplicate ack
  carries the original sequence; the original's ``Hub-Digest`` is fetched and
  compared: another digest raises IdConflict.
* A batch (up to 1000 entries, JetStream's limit) goes out as one **atomic
  batch** (``allow_atomic``, nats-server >= 2.12): all stored at consecutive
  positions, or none.  If an id in it is already stored, JetStream refuses the
  whole batch; then every entry is **probed** -- published with its id and a
  ``Nats-Expected-Last-Msg-Id`` no message has, which JetStream checks after
  dedup, so a stored id answers with its sequence and a new one is refused
  without being stored.  Stored ids with another digest raise IdConflict
  (nothing of the batch stored); the rest is committed as an atomic batch.
* Larger batches are probed first, then committed in atomic chunks of 1000:
  a conflict found by the probe stores nothing; only a writer racing with the
  same ids between probe and commit can leave earlier chunks stored.
* Dedup holds within ``dedup_window`` (JetStream keeps ids that long; capped
  at ``max_age`` when retention is shorter).  After the window an old id is
  stored again.
* Transient failures (no stream leader yet, reconnecting) are retried for
  about 3 s -- safe, since ids deduplicate; a timeout is reported as
  EngineUnavailable saying the append may or may not be stored.

Consumer groups and per-key order
---------------------------------
JetStream's shared pull consumer hands any message to any puller, so two
members could hold two records of one key at once.  Instead each topic has
N partitions (a subject token), and a group is N durable pull consumers
(``<group>-p<n>``, filter ``<topic>.*.<n>``, explicit ack, ``ack_wait`` = the
ack timeout, ``max_deliver``, nak with delay).  Members share the partitions
out Kafka-style through leases in the KV bucket ``creative_hub_groups``
(compare-and-set on revisions, server-side TTLs); a member pulls only from
partitions it holds.  Handover and crash recovery reset the consumer to its
ack floor, so no newer record of a key overtakes an older un-acked one.  The
details, with the timings, are in ``group.py``.

Modules: ``client.py`` (the connection, requests on an own reply inbox,
error translation, topics, the lease bucket; ``GroupHost`` is all a group
member sees of it), ``engine.py`` (append, groups, retention, health),
``read.py``, ``group.py``, ``names.py`` (URLs, subjects, headers).

Errors
------
nats-py errors are translated in one place (``NatsClient._translate``): no
server, connection refused, timeouts, missing JetStream and authorization
violations become EngineUnavailable naming the URL with its password or
token removed ("wrong user or password (or token)" for the last).

Durability: JetStream's file store acks after writing to the OS (a process
kill loses nothing; ``sync_interval``, 2 min by default, bounds what an OS
crash can lose).  With ``replicas=3`` an ack means a quorum has the record.
"""

from __future__ import annotations

try:
    import nats as _nats  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('The NATS engine needs nats-py: pip install "creative-hub[nats]"') from e

from .engine import NatsLog
from .group import NatsSubscription

__all__ = ["NatsLog", "NatsSubscription"]
