"""The admin endpoint's probes, with Kubernetes' meanings: `/livez` is this process
(its loops turn), `/readyz` (and `/health`, for Compose) is whether it does its job
(broker, group, topics, plugins); an admin address that cannot be bound stops the
start, naming the setting."""

from __future__ import annotations

import subprocess

from streamhost_kit.stack import HOST_BIN


def test_liveness_and_readiness_probes(stack_up, hosts):
    (host,) = hosts(1)
    status, text = host.answer("/livez")
    assert status == 200 and text.startswith("ok\n") and "validate: its loop turned" in text, text
    ready, health = host.answer("/readyz"), host.answer("/health")
    assert ready[0] == health[0] == 200 and ready[1].startswith("ok\n"), (ready, health)

    # The same admin address again: refused at start, saying which setting.
    second = subprocess.run([str(HOST_BIN), "run"], env={**host.env}, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0, second.stderr[-2000:]
    assert f"admin.listen {host.admin}: cannot listen" in second.stderr, second.stderr[-2000:]
