from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.client import AgentClient
from agent.config import AgentConfig
from agent.daemon import RunningAgent, start_agent


def agent_config(tmp: Path) -> AgentConfig:
    cfg = AgentConfig()
    return dataclasses.replace(
        cfg,
        agent=dataclasses.replace(cfg.agent, socket=str(tmp / "agent.sock"), state_dir=str(tmp / "state"),
                                  debounce_seconds=0.2, shutdown_grace_seconds=0.5),
        metrics=dataclasses.replace(cfg.metrics, listen="127.0.0.1:0"))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningAgent]:
    agent = await start_agent(agent_config(tmp_path), simulate=True)
    try:
        yield agent
    finally:
        await agent.stop()


@pytest.fixture
async def client(running: RunningAgent) -> AsyncIterator[AgentClient]:
    async with AgentClient.connect(running.listen["socket"], client_id="portal-a") as c:
        yield c


@pytest.fixture
async def other_client(running: RunningAgent) -> AsyncIterator[AgentClient]:
    async with AgentClient.connect(running.listen["socket"], client_id="portal-b") as c:
        yield c
