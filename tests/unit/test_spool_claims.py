"""Orchestrators sharing an uploads directory keep their spool files apart.

Each process spools into its own directory, locked for its life; a starting process
removes only what dead processes left (a directory whose lock it can take) and the flat
files of the older layout, never a live process's files.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator import spool


def test_a_starting_process_leaves_a_live_ones_files_alone(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    live = spool.own_directory(root)
    spool.claim(live)
    running = live / "0123abcd.pcm"
    running.write_bytes(b"\0" * 64)
    starting = spool.own_directory(root)
    assert starting != live, "one directory per process start"
    spool.claim(starting)
    assert running.read_bytes() == b"\0" * 64
    assert {p.name for p in root.iterdir()} == {live.name, starting.name}


def test_what_dead_processes_left_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    dead = root / "host-1-deadbeef"
    dead.mkdir(parents=True)
    (dead / spool.LOCK).touch()  # its owner exited: nobody holds the lock
    (dead / "job-7-1.src").write_bytes(b"audio")
    unlocked = root / "host-2-cafe0000"  # died before it could take its lock
    unlocked.mkdir()
    legacy = [root / "feedface.pcm", root / "job-3-2.src"]
    for path in legacy:
        path.write_bytes(b"old layout")
    mine = spool.own_directory(root)
    spool.claim(mine)
    assert [p.name for p in root.iterdir()] == [mine.name]
    assert [p.name for p in mine.iterdir()] == [spool.LOCK]
