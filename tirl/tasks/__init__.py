"""Task sources: generators (arith), packaged sets (champ) and file loaders (JSONL, Parquet).

Every source yields ``tirl.types.Task`` objects; ``load_tasks`` is the single entry point.
"""

from tirl.tasks.files import TaskLoadError
from tirl.tasks.registry import load_tasks

__all__ = ["load_tasks", "TaskLoadError"]
