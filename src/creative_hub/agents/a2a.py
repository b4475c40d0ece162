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

    gateway = A2AGateway(hub, [A2AAgent("summariser", "Summarises a text")], base_url="http://127.0.0.1:8090")
    await gateway.serve(port=8090)                     # or mount gateway.app() in another ASGI app
    runner = AgentRunner(hub, [a2a_worker("summariser", summarise)], ledger=ledger)

Needs the ``agents`` extra: ``pip install "creative-hub[agents]"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

try:
    from a2a.helpers import get_data_parts, new_data_part, new_task, new_text_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
except ImportError as e:  # pragma: no cover -- depends on the installed extras
    raise ImportError('the A2A gateway needs: pip install "creative-hub[agents]"') from e
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from ..hub import Hub
from ..principals import check_principal_id
from .patterns.orchestrator import Orchestrator, WorkFn, worker
from .runtime import Agent, AgentSettings

__all__ = ["A2AAgent", "A2AGateway", "a2a_job", "a2a_worker"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0  # seconds an A2A task waits for the hub agent's result
PROTOCOL_VERSION = "1.0"


def a2a_job(agent_id: str) -> str:
    """The job (and topics ``agents.<job>.tasks|results``) of an agent's A2A tasks."""
    return f"a2a-{check_principal_id(agent_id)}"


def a2a_worker(id: str, fn: WorkFn, *, settings: AgentSettings | None = None) -> Agent:
    """The hub agent that does ``id``'s A2A tasks: ``fn(ctx, task)`` gets
    ``task.input = {"text": ..., "data": [...], "context": ...}`` and returns the output."""
    return worker(id, a2a_job(id), fn, group=f"{a2a_job(id)}-workers", settings=settings)


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
        self.orchestrator = Orchestrator(hub, a2a_job(agent_id), creator="a2a-gateway")
        self.timeout = timeout

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = context.task_id or "", context.context_id or ""
        updater = TaskUpdater(event_queue, task_id, context_id)
        if context.current_task is None:
            history = [context.message] if context.message is not None else []
            await event_queue.enqueue_event(
                new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
            )
        message = context.message
        data = get_data_parts(list(message.parts)) if message is not None else []
        text = context.get_user_input()
        await self.orchestrator.submit_task(
            task_id,
            {"text": text, "data": data, "context": context_id},
            kind="a2a",
            correlationid=context_id or None,
        )
        await updater.start_work()
        try:
            results = await self.orchestrator.gather([task_id], timeout=self.timeout)
        except TimeoutError as e:
            await updater.failed(updater.new_agent_message([new_text_part(str(e))]))
            return
        result = results[task_id]
        if not result.ok:
            await updater.failed(updater.new_agent_message([new_text_part(result.error or "failed")]))
            return
        output = dict(result.output)
        text_out = output.get("text")
        parts = [new_text_part(text_out if isinstance(text_out, str) else json.dumps(output))]
        parts.append(new_data_part(output))
        await updater.add_artifact(parts, name="result", metadata={"worker": result.worker or ""})
        await updater.complete()

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
    ) -> None:
        self.hub = hub
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
            handler = DefaultRequestHandler(
                agent_executor=HubExecutor(self.hub, agent.id, self.timeout),
                task_store=InMemoryTaskStore(),
                agent_card=card,
            )
            prefix = f"/a2a/{agent.id}"
            routes += create_agent_card_routes(card, card_url=f"{prefix}/.well-known/agent-card.json")
            routes += create_jsonrpc_routes(handler, rpc_url=f"{prefix}/")
        return routes

    def app(self) -> Starlette:
        return Starlette(routes=self.routes())

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
