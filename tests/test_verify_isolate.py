"""IsolatedCaller: results, exceptions, crashes, deadlines, reuse, bounded workers, clean exit."""

from __future__ import annotations

import resource
import threading
import time

import pytest

from tirl.rewards.isolate import CallStatus, IsolatedCaller, WorkerStartError


@pytest.fixture
def caller_factory():
    made: list[IsolatedCaller] = []

    def make(target: str, **kw) -> IsolatedCaller:
        c = IsolatedCaller(target, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_ok_error_and_reuse(caller_factory):
    c = caller_factory("builtins:divmod", max_workers=1)
    r = c.call((17, 5), timeout_s=5.0)
    assert r.status is CallStatus.OK and r.value == (3, 2)
    r = c.call((1, 0), timeout_s=5.0)  # the function raises: reported, the worker survives
    assert r.status is CallStatus.ERROR and "ZeroDivisionError" in r.value
    pid = c._idle[0].proc.pid
    assert c.call((9, 2), timeout_s=5.0).value == (4, 1) and c._idle[0].proc.pid == pid


def test_timeout_kills_and_reaps_the_worker(caller_factory):
    c = caller_factory("time:sleep", max_workers=1)
    c.call((0,), timeout_s=5.0)  # start the worker outside the measured call
    proc = c._idle[0].proc
    t0 = time.monotonic()
    r = c.call((30,), timeout_s=0.3)
    assert r.status is CallStatus.TIMEOUT and time.monotonic() - t0 < 3.0
    assert proc.returncode is not None  # killed and reaped: no zombie
    assert c.n_workers == 0
    assert c.call((0,), timeout_s=5.0).status is CallStatus.OK  # a new worker takes over


def test_crash_is_reported(caller_factory):
    c = caller_factory("os:_exit", max_workers=1)
    assert c.call((3,), timeout_s=5.0).status is CallStatus.CRASH
    assert c.n_workers == 0


def test_unknown_target_fails_loudly():
    c = IsolatedCaller("tirl.no_such_module:fn", max_workers=1)
    with pytest.raises(WorkerStartError, match="cannot load"):
        c.call((), timeout_s=1.0)
    assert c.n_workers == 0
    with pytest.raises(ValueError, match="module:function"):
        IsolatedCaller("no_colon")


def test_worker_limits_its_own_cpu_time(caller_factory):
    c = caller_factory("resource:getrlimit", max_workers=1)
    r = c.call((resource.RLIMIT_CPU,), timeout_s=2.0)
    soft, _ = r.value
    assert soft != resource.RLIM_INFINITY and soft <= 2 * 2.0 + 10 + 60  # deadline-based, not unlimited


def test_concurrent_callers_share_a_bounded_pool(caller_factory):
    c = caller_factory("time:sleep", max_workers=2)
    statuses: list[CallStatus] = []
    lock = threading.Lock()

    def work() -> None:
        r = c.call((0.05,), timeout_s=30.0)
        with lock:
            statuses.append(r.status)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [CallStatus.OK] * 6
    assert c.n_workers <= 2
    c.close()
    assert c.n_workers == 0
