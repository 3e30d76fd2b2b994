"""Task registry: every XTREME / XTREME-R target task, the X-STILTs intermediate tasks, MLM.

    task = get_task("xnli")
    examples = task.load_examples("dev", "de", source=Source("official", "/data/xnli"))
    features = task.featurize(examples, tokenizer)
"""
from xtreme_jax.tasks.base import KINDS, HubSpec, Task, get_task, list_tasks, register  # noqa: F401
from xtreme_jax.tasks.decode import collect_rows, decode_qa, tags_to_words  # noqa: F401

TARGET_TASKS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba",
                "xcopa", "mewslix", "lareqa")
INTERMEDIATE_TASKS = ("anli+", "mnli", "qqp", "squad", "sst2", "hellaswag", "ccg", "cosmosqa",
                      "commonsenseqa")
