"""Evaluation: unbiased pass@k, maj@k and tool-use metrics of a policy run through the training tool loop."""

from tirl.eval.equivalence import EQUIVALENCE, same_fn
from tirl.eval.metrics import (
    efficiency,
    maj_at_k,
    majority_answer,
    mean_pass_at_k,
    pass_at_k,
    reasoning_length,
    successful_execution,
)
from tirl.eval.runner import EvalReport, TaskEval, evaluate, evaluate_async, summarize_eval

__all__ = [
    "EQUIVALENCE",
    "EvalReport",
    "TaskEval",
    "efficiency",
    "evaluate",
    "evaluate_async",
    "maj_at_k",
    "majority_answer",
    "mean_pass_at_k",
    "pass_at_k",
    "reasoning_length",
    "same_fn",
    "successful_execution",
    "summarize_eval",
]
