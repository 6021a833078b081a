"""The local spool: bounded, in order, replayed by its owner or, after a crash, by anyone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instrumentation.spool import Entry, Spool, Unavailable


def entry(n: int) -> Entry:
    return {"records": [{"n": n}], "features": [{"x": n}]}


def test_entries_replay_in_order_and_leave_the_spool_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path, owner="a", max_bytes=1 << 20)
    for n in range(3):
        assert spool.append(entry(n))
    seen: list[int] = []

    outcome = spool.replay(lambda e: seen.append(e["records"][0]["n"]))

    assert seen == [0, 1, 2]
    assert (outcome.applied, outcome.pending, spool.pending) == (3, 0, 0)
    assert spool.replay(lambda e: seen.append(-1)).applied == 0


def test_an_unavailable_store_stops_the_replay_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, owner="a", max_bytes=1 << 20)
    for n in range(4):
        spool.append(entry(n))
    seen: list[int] = []

    def apply(e: Entry) -> None:
        if e["records"][0]["n"] == 2:
            raise Unavailable("still down")
        seen.append(e["records"][0]["n"])

    outcome = spool.replay(apply)

    assert seen == [0, 1] and (outcome.applied, outcome.pending) == (2, 2)
    assert spool.host_pending() == 2
    seen.clear()
    assert spool.replay(lambda e: seen.append(e["records"][0]["n"])).pending == 0
    assert seen == [2, 3]


def test_the_spool_is_bounded(tmp_path: Path) -> None:
    line = len(json.dumps(entry(0), separators=(",", ":"))) + 1
    spool = Spool(tmp_path, owner="a", max_bytes=2 * line)

    assert [spool.append(entry(n)) for n in range(3)] == [True, True, False]
    assert spool.pending == 2


def test_a_dead_processs_spool_is_replayed_by_another(tmp_path: Path) -> None:
    dead = Spool(tmp_path, owner="dead", max_bytes=1 << 20)
    dead.append(entry(7))
    dead.close()  # its process ends with an entry left: the file stays, unlocked
    alive = Spool(tmp_path, owner="alive", max_bytes=1 << 20)
    seen: list[int] = []

    assert alive.host_pending() == 1
    assert alive.replay(lambda e: seen.append(e["records"][0]["n"])).applied == 1

    assert seen == [7]
    assert alive.host_pending() == 0
    assert not (tmp_path / "spool-dead.jsonl").exists()


def test_a_live_processs_spool_is_left_to_it(tmp_path: Path) -> None:
    owner = Spool(tmp_path, owner="owner", max_bytes=1 << 20)
    owner.append(entry(1))
    other = Spool(tmp_path, owner="other", max_bytes=1 << 20)

    assert other.replay(lambda e: pytest.fail("replayed a live process's entry")).applied == 0
    assert owner.pending == 1


def test_an_unwritable_directory_refuses_the_entry(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    spool = Spool(blocker / "spool", owner="a", max_bytes=1 << 20)

    assert spool.append(entry(1)) is False
    assert spool.pending == 0
