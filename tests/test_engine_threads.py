"""The decode-thread tuner: probes every candidate, keeps the faster one, re-probes, restores torch's setting."""

import torch

from tirl.engine.threads import ThreadTuner


def _run(tuner, cost, steps):
    used = []
    for _ in range(steps):
        n = tuner.next_threads()
        used.append(n)
        tuner.record(n, cost[n])
    return used


def test_probes_then_keeps_the_faster_count_and_reprobes():
    t = ThreadTuner([1, 2], every=5, trials=2)
    used = _run(t, {1: 0.1, 2: 0.9}, 4)
    assert used == [1, 2, 1, 2] and t.best == 1
    used = _run(t, {1: 0.1, 2: 0.9}, 5)
    assert used == [1] * 5
    # the load changed: the next probe finds 2 threads faster and switches
    used = _run(t, {1: 0.9, 2: 0.1}, 6)
    assert used[:4] == [1, 2, 1, 2] and used[4:] == [2, 2] and t.best == 2 and t.probes == 2


def test_fixed_count_never_probes():
    t = ThreadTuner.for_config(3)
    assert _run(t, {3: 1.0}, 10) == [3] * 10 and t.probes == 0


def test_use_restores_the_thread_count():
    before = torch.get_num_threads()
    t = ThreadTuner([1, before])
    with t.use(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
