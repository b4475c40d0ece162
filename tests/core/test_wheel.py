"""The built wheel works without the source checkout: creative_hub.testing from a clean venv.

Builds the wheel (``pip wheel --no-deps .``), installs it with the
``testing,redis`` extras into a new venv, and from a directory outside the
checkout imports the contract suite, starts the Redis harness and pings the
broker, and checks that the Kafka harness finds its jars only where it is told
(``CREATIVE_HUB_KAFKA_LIBS``) and otherwise says how to get them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KAFKA_LIBS = REPO / ".tools" / "kafka" / "libs"

PROBE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import creative_hub
    from creative_hub.testing import contract  # pytest comes with the testing extra
    from creative_hub.testing.servers import ServerError, start_server
    from creative_hub.testing.servers.kafka import kafka_libs
    import redis

    out = {"module": creative_hub.__file__, "contract": hasattr(contract, "LogContract")}
    server = start_server("redis", Path("redis-data"))
    try:
        out["ping"] = redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()
    os.environ.pop("CREATIVE_HUB_KAFKA_LIBS", None)
    try:
        kafka_libs()
        out["kafka_without_env"] = "found"
    except ServerError as e:
        out["kafka_without_env"] = str(e)
    if len(sys.argv) > 1:
        os.environ["CREATIVE_HUB_KAFKA_LIBS"] = sys.argv[1]
        try:
            out["kafka_with_env"] = str(kafka_libs())
        except ServerError as e:  # no java on this machine: the jars were still found
            out["kafka_with_env"] = str(e)
    print(json.dumps(out))
    """
)


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{tail}"
    return proc.stdout


def test_wheel_in_a_clean_venv_runs_the_contract_import_and_the_redis_harness(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(REPO)], tmp_path)
    (wheel,) = dist.glob("creative_hub-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[testing,redis]"], tmp_path, timeout=600)

    work = tmp_path / "elsewhere"  # not the checkout: nothing may come from src/ or .tools/
    work.mkdir()
    env_args = [str(KAFKA_LIBS)] if any(KAFKA_LIBS.glob("kafka_2.13-*.jar")) else []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CREATIVE_HUB_KAFKA_LIBS")}
    proc = subprocess.run(
        [str(python), "-c", PROBE, *env_args], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(out["module"]).is_relative_to(venv), out["module"]
    assert out["contract"] is True
    assert out["ping"] is True
    # Installed, run from elsewhere: no jars, and the error says how to get them.
    assert "scripts/install-kafka.sh" in out["kafka_without_env"]
    assert "CREATIVE_HUB_KAFKA_LIBS" in out["kafka_without_env"]
    if env_args:
        assert out["kafka_with_env"] == str(KAFKA_LIBS) or "java" in out["kafka_with_env"]
