"""The rollout lock on both stores: one holder, named to the next, and gone with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from safeship.errors import RolloutLockedError
from safeship.store import open_store
from safeship.store.interface import LockHolder
from safeship.store.locks import this_process


def test_a_second_holder_is_refused_with_the_first_named(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)
    try:
        with first.rollout_lock("checkout", "production", "d1", 100.0) as previous:
            assert previous is None
            with (
                pytest.raises(RolloutLockedError) as refused,
                second.rollout_lock("checkout", "production", "d2", 101.0),
            ):
                pytest.fail("the lock is held")
            message = str(refused.value)
            assert "checkout/production is being rolled out by rollout d1" in message
            assert this_process() in message
            assert "safeship rollout abort d1" in message
            # Another environment of the same service is another lock.
            with second.rollout_lock("checkout", "staging", "d3", 102.0) as other:
                assert other is None
        # Released: the next one gets it, and finds nobody to take over from.
        with second.rollout_lock("checkout", "production", "d2", 103.0) as previous:
            assert previous is None
    finally:
        first.close()
        second.close()


HOLD_AND_WAIT = textwrap.dedent(
    """
    import sys, time
    from safeship.store import open_store
    store = open_store(sys.argv[1])
    with store.rollout_lock("checkout", "production", "dead-1", 50.0):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_a_lock_left_by_a_killed_process_is_taken_over_and_its_holder_named(
    store_url: str,
) -> None:
    open_store(store_url).close()  # migrated before the child starts
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, store_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        store = open_store(store_url)
        try:
            with (
                pytest.raises(RolloutLockedError, match="dead-1"),
                store.rollout_lock("checkout", "production", "d2", 60.0),
            ):
                pytest.fail("the lock is held by a live process")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            # PostgreSQL ends the dead session once it reads the closed socket: soon.
            deadline = time.monotonic() + 10
            while True:
                try:
                    with store.rollout_lock("checkout", "production", "d2", 70.0) as previous:
                        assert previous is not None
                        assert previous == LockHolder("dead-1", previous.holder, 50.0)
                        assert f"pid {child.pid}" in previous.holder
                    break
                except RolloutLockedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            store.close()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
