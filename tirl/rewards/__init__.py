"""Rewards: verifiers (math, QA F1, exact), outcome rewards, and how specs combine.

Modules: ``base`` (the RewardFn signature and RewardSpec), ``math``/``math_backend``/``isolate``
(math-verify equivalence under a hard deadline), ``qa`` (token F1), ``verify`` (``score_answer``
by verifier kind), ``outcome`` (``correctness`` and the gold self-test), ``compose``
(``apply_rewards``). The answer extraction (the last ``\\boxed{}``) is
``tirl.protocol.answer``; ``boxed`` re-exports it for older imports.

This package imports nothing at import time, so a verifier worker process
(``python -m tirl.rewards.isolate``) starts without loading the rest of tirl.
"""
