"""`--nice`: every thread of a service runs at the niceness asked, those already running and
those started later, and the flag refuses values the kernel would not take."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transcriber.config import load_config

SCRIPT = """
import os, sys, threading
from whospoke.common.priority import set_niceness

before = os.getpriority(os.PRIO_PROCESS, 0)
go, seen = threading.Event(), {}

def running():
    go.wait()
    seen["running"] = os.getpriority(os.PRIO_PROCESS, 0)

def later():
    seen["later"] = os.getpriority(os.PRIO_PROCESS, 0)

first = threading.Thread(target=running)
first.start()
seen["main"] = set_niceness(int(sys.argv[1]))
second = threading.Thread(target=later)
second.start()
go.set()
first.join()
second.join()
print(before, seen["main"], seen["running"], seen["later"])
"""


def niceness_seen(asked: int) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(asked)], capture_output=True, text=True, check=True
    )
    return [int(x) for x in out.stdout.split()]


def test_every_thread_takes_the_niceness_asked() -> None:
    before, *threads = niceness_seen(7)
    assert threads == [max(before, 7)] * 3


def test_zero_leaves_the_niceness_alone() -> None:
    before, *threads = niceness_seen(0)
    assert threads == [before] * 3


@pytest.mark.parametrize(("value", "accepted"), [("0", True), ("19", True), ("20", False)])
def test_the_flag_takes_what_the_kernel_takes(value: str, accepted: bool) -> None:
    if accepted:
        assert load_config(["--nice", value]).server.nice == int(value)
    else:
        with pytest.raises(SystemExit):
            load_config(["--nice", value])
