"""An A2A (Agent2Agent protocol) gateway: hub agents as A2A agents.

Each hub agent exposed here gets an agent card and a JSON-RPC endpoint
(``a2a-sdk``, protocol 1.0)::

    GET  {base}/a2a/<agent>/.well-known/agent-card.json
    POST {base}/a2a/<agent>/                       message/send, message/stream, tasks/get ...

An A2A message becomes a ``creative.agents.task`` event on
``agents.a2a-<agent>.tasks`` (task id = the A2A task id, correlation id =
the A2A context id, input = the message's text and data parts); the hub
agent -- a ``worker`` of job ``a2a-<agent>``, made by ``a2a_worker`` --
handles it like any other event, on any engine, and its
``creative.agents.result`` flows back as A2A task updates: *working*, then
an artifact with the output and *completed* (or *failed* with the error).

Trust: every JSON-RPC call needs ``Authorization: Bearer <hub token>`` (401
otherwise, with ``WWW-Authenticate: Bearer``); only the agent card is open,
and it says so (an HTTP bearer security scheme).  The gateway acts as the
caller: the task event is theirs (``creator``), the worker may read for that
task only what the caller may read too (``ctx.get`` checks both), and the
caller sees only their own tasks (``tasks/get`` of another's is "not
found").  Tasks are kept in memory, at most ``MAX_TASKS`` per agent (the
oldest go first).

    gateway = A2AGateway(hub, [A2AAgent("summariser", "Summarises a text")], base_url="http://127.0.0.1:8090")
    await gateway.serve(port=8090)                     # or mount gateway.app() in another ASGI app
    runner = AgentRunner(hub, [a2a_worker("summariser", summarise)], ledger=ledger)

Needs the ``agents`` extra: ``pip install "creative-hub[agents]"``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    from a2a.auth.user import UnauthenticatedUser, User
    from a2a.helpers import get_data_parts, new_data_part, new_task, new_text_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.context import ServerCallContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.routes.common import DefaultServerCallContextBuilder
    from a2a.server.tasks import InMemoryTaskStore, TaskStore, TaskUpdater
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        HTTPAuthSecurityScheme,
        ListTasksRequest,
        ListTasksResponse,
        SecurityRequirement,
        SecurityScheme,
        StringList,
        Task,
        TaskState,
    )
except ImportError as e:  # pragma: no cover -- depends on the installed extras
    raise ImportError('the A2A gateway needs: pip install "creative-hub[agents]"') from e
import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import topics
from ..errors import AccessDenied
from ..hub import Hub
from ..principals import check_principal_id
from .context import AgentContext
from .patterns.orchestrator import Orchestrator, WorkFn, worker
from .payloads import Result
from .payloads import Task as HubTask
from .spec import Agent, AgentSettings

__all__ = ["A2AAgent", "A2AGateway", "a2a_job", "a2a_worker"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0  # seconds an A2A task waits for the hub agent's result
PROTOCOL_VERSION = "1.0"
MAX_TASKS = 10_000  # A2A tasks remembered per agent (in memory); the oldest are forgotten first
SCHEME = "hub-token"  # the card's name for the bearer scheme
PRINCIPAL = "creative_hub.principal"  # scope key: the caller, as the gate authenticated them


def a2a_job(agent_id: str) -> str:
    """The job (and topics ``agents.<job>.tasks|results``) of an agent's A2A tasks."""
    return f"a2a-{check_principal_id(agent_id)}"


def a2a_worker(id: str, fn: WorkFn, *, settings: AgentSettings | None = None) -> Agent:
    """The hub agent that does ``id``'s A2A tasks: ``fn(ctx, task)`` gets
    ``task.input = {"text": ..., "data": [...], "context": ...}`` and returns the output."""

    async def for_the_caller(ctx: AgentContext, task: HubTask) -> Mapping[str, Any]:
        # What the worker reads for this task is bounded by the caller's rights (ctx.get).
        if ctx.event.creator and ctx.event.creator != ctx.agent.id:
            ctx.on_behalf_of = ctx.event.creator
        return await fn(ctx, task)

    return worker(id, a2a_job(id), for_the_caller, group=f"{a2a_job(id)}-workers", settings=settings)


class HubUser(User):
    """The caller of an A2A request: a hub principal, authenticated by token."""

    def __init__(self, principal: str) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.principal


class _CallerContext(DefaultServerCallContextBuilder):
    """The SDK's call context, with the principal the gate authenticated as its user."""

    def build_user(self, request: Request) -> User:
        principal = request.scope.get(PRINCIPAL)
        return HubUser(principal) if isinstance(principal, str) else UnauthenticatedUser()


class BoundedTaskStore(TaskStore):
    """The SDK's in-memory store (tasks kept per caller), holding at most ``limit`` tasks."""

    def __init__(self, limit: int = MAX_TASKS) -> None:
        self.inner = InMemoryTaskStore()
        self.limit = limit
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._order)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await self.inner.save(task, context)
        key = (context.user.user_name, task.id)
        self._order[key] = None
        self._order.move_to_end(key)
        while len(self._order) > self.limit:
            (owner, old), _ = self._order.popitem(last=False)
            await self.inner.delete(old, ServerCallContext(user=HubUser(owner)))

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        return await self.inner.get(task_id, context)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        return await self.inner.list(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        self._order.pop((context.user.user_name, task_id), None)
        await self.inner.delete(task_id, context)


ASGI = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class BearerGate:
    """Every request but the agent cards needs a hub token: 401 otherwise."""

    def __init__(self, app: ASGI, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["method"] in ("GET", "HEAD") and path.endswith("/.well-known/agent-card.json"):
            await self.app(scope, receive, send)  # the card is how a client learns to authenticate
            return
        auth = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"]
        scheme, _, token = auth[0].partition(" ") if len(auth) == 1 else ("", "", "")
        principal = None
        if scheme.lower() == "bearer" and token.strip():
            try:
                principal = await self.hub.registry.authenticate(token.strip())
            except AccessDenied:
                principal = None
        if principal is None:
            detail = "send one 'Authorization: Bearer <hub token>' (creative-hub principal token NAME)"
            if len(auth) == 1:
                detail = "invalid, revoked or expired token"
            resp = JSONResponse(
                {"error": "unauthorized", "detail": detail},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await resp(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True, kw_only=False)
class A2AAgent:
    """How one hub agent shows itself to A2A clients."""

    id: str
    description: str
    skills: Sequence[str] = field(
        default_factory=tuple
    )  #: skill names (one skill named after the agent if empty)
    version: str = "1.0.0"


class HubExecutor(AgentExecutor):
    """Turns an A2A request into a hub task event and its result into task updates."""

    def __init__(self, hub: Hub, agent_id: str, timeout: float) -> None:
        self.hub = hub
        self.job = a2a_job(agent_id)
        self.orchestrator = Orchestrator(hub, self.job, creator="a2a-gateway")  # gathers results
        self.timeout = timeout

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = context.task_id or "", context.context_id or ""
        updater = TaskUpdater(event_queue, task_id, context_id)
        if context.current_task is None:
            history = [context.message] if context.message is not None else []
            await event_queue.enqueue_event(
                new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
            )
        user = context.call_context.user
        if not user.is_authenticated:  # the gate lets nothing through without a token
            await updater.failed(updater.new_agent_message([new_text_part("needs a hub token")]))
            return
        # The task is the caller's: their event, their rights bound what the worker reads for it.
        caller = Orchestrator(self.hub.acting(user.user_name, authenticated=True, via="a2a"), self.job)
        message = context.message
        data = get_data_parts(list(message.parts)) if message is not None else []
        text = context.get_user_input()
        await caller.submit_task(
            task_id,
            {"text": text, "data": data, "context": context_id},
            kind="a2a",
            correlationid=context_id or None,
        )
        await updater.start_work()
        try:
            result = await self._result(user.user_name, task_id)
        except TimeoutError as e:
            await updater.failed(updater.new_agent_message([new_text_part(str(e))]))
            return
        if not result.ok:
            await updater.failed(updater.new_agent_message([new_text_part(result.error or "failed")]))
            return
        output = dict(result.output)
        text_out = output.get("text")
        parts = [new_text_part(text_out if isinstance(text_out, str) else json.dumps(output))]
        parts.append(new_data_part(output))
        await updater.add_artifact(parts, name="result", metadata={"worker": result.worker or ""})
        await updater.complete()

    async def _result(self, caller: str, task_id: str) -> Result:
        """The task's first result: in the job's results, or -- when the worker made it from
        the caller's drafts (through a grant), so the hub kept it private -- in their drafts."""
        drafts = topics.drafts(caller)
        watch = [self.orchestrator.topics.results]
        if drafts in {t.name for t in await self.hub.topics()}:
            watch.append(drafts)  # no drafts yet: none the worker could have read

        async def first(topic: str) -> Result:
            async for stored in self.hub.replay(topic, follow=True):
                e = stored.event
                if e.type == "creative.agents.result" and isinstance(e.data, dict):
                    r = msgspec.convert(e.data, Result)
                    if r.job == self.job and r.task == task_id:
                        return r
            raise TimeoutError(f"{topic} ended")  # pragma: no cover -- follow does not end

        waits = [asyncio.ensure_future(first(t)) for t in watch]
        try:
            done, _ = await asyncio.wait(waits, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        for d in done:
            if not d.cancelled() and d.exception() is None:
                return d.result()
        raise TimeoutError(f"job {self.job}: no result after {self.timeout}s for {task_id!r}")

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The hub task cannot be taken back once published; the A2A task stops waiting.
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


class A2AGateway:
    """An ASGI app serving an agent card and a JSON-RPC endpoint per agent."""

    def __init__(
        self,
        hub: Hub,
        agents: Sequence[A2AAgent],
        *,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_tasks: int = MAX_TASKS,
    ) -> None:
        self.hub = hub
        self.max_tasks = max_tasks
        self.stores: dict[str, BoundedTaskStore] = {}  #: per agent id, once routes() ran
        self.agents = list(agents)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._server: uvicorn.Server | None = None

    def url(self, agent_id: str) -> str:
        """The agent's A2A URL (where its card and endpoint are)."""
        return f"{self.base_url}/a2a/{agent_id}"

    def card(self, agent: A2AAgent) -> AgentCard:
        skills = list(agent.skills) or [agent.id]
        return AgentCard(
            name=agent.id,
            description=agent.description,
            version=agent.version,
            supported_interfaces=[
                AgentInterface(
                    url=self.url(agent.id) + "/",
                    protocol_binding="JSONRPC",
                    protocol_version=PROTOCOL_VERSION,
                )
            ],
            capabilities=AgentCapabilities(streaming=True),
            security_schemes={
                SCHEME: SecurityScheme(
                    http_auth_security_scheme=HTTPAuthSecurityScheme(
                        scheme="Bearer",
                        bearer_format="creative-hub token (chub_...)",
                        description="a hub principal's token; the agent acts for that principal",
                    )
                )
            },
            security_requirements=[SecurityRequirement(schemes={SCHEME: StringList()})],
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain", "application/json"],
            skills=[
                AgentSkill(id=s, name=s, description=agent.description, tags=["creative-hub"]) for s in skills
            ],
        )

    def routes(self) -> list[Route]:
        routes: list[Route] = []
        for agent in self.agents:
            card = self.card(agent)
            store = BoundedTaskStore(self.max_tasks)
            self.stores[agent.id] = store
            handler = DefaultRequestHandler(
                agent_executor=HubExecutor(self.hub, agent.id, self.timeout),
                task_store=store,
                agent_card=card,
            )
            prefix = f"/a2a/{agent.id}"
            routes += create_agent_card_routes(card, card_url=f"{prefix}/.well-known/agent-card.json")
            routes += create_jsonrpc_routes(handler, rpc_url=f"{prefix}/", context_builder=_CallerContext())
        return routes

    def app(self) -> ASGI:
        """The gateway as an ASGI app: the routes behind the bearer gate."""
        return BearerGate(Starlette(routes=self.routes()), self.hub)

    async def serve(self, *, host: str = "127.0.0.1", port: int = 8090) -> None:
        """Serve (uvicorn) until ``stop()``."""
        config = uvicorn.Config(self.app(), host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        await self._server.serve()

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    def stop(self) -> None:
        """Ask ``serve()`` to finish (it closes its sockets and returns)."""
        if self._server is not None:
            self._server.should_exit = True
