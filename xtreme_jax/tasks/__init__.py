"""Task registry: every XTREME / XTREME-R target task, the X-STILTs intermediate tasks, MLM.

    task = get_task("xnli")
    examples = task.load_examples("dev", "de", source=Source("official", "/data/xnli"))
    features = task.featurize(examples, tokenizer)

Importing this package imports every task family, each of which registers its tasks; lists of
tasks (by group or kind) are read from the registry, never written out again.
"""
from xtreme_jax.tasks import classification, mlm, multiple_choice, qa, retrieval, tagging  # noqa: F401
from xtreme_jax.tasks.base import REGISTRY, HubSpec, Task, register  # noqa: F401
from xtreme_jax.tasks.decode import decode_qa, tags_to_words  # noqa: F401
from xtreme_jax.tasks.kinds import KINDS, Kind  # noqa: F401
from xtreme_jax.data.errors import DataError

ALIASES = {"anli_plus": "anli+", "paws_x": "pawsx", "bucc": "bucc2018", "bucc18": "bucc2018",
           "pan_x": "panx", "mewsli_x": "mewslix", "squad_v2": "squad2", "squadv2": "squad2",
           "cosmos_qa": "cosmosqa", "commonsense_qa": "commonsenseqa", "social_i_qa": "siqa",
           "sst_2": "sst2", "tydiqa_goldp": "tydiqa"}


def get_task(name) -> Task:
    """The registered task of that name (case, '-' / '_' and common aliases forgiven); a Task
    passes through unchanged."""
    if isinstance(name, Task):
        return name
    key = name.lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        raise DataError(f"unknown task {name!r}", field="task", reason="unknown_task",
                        fix=f"use one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def list_tasks(group: str | None = None, kind: str | None = None) -> list[str]:
    """Registered task names, sorted; `group`: target | intermediate | mlm | demo."""
    return sorted(n for n, t in REGISTRY.items()
                  if (group is None or t.group == group) and (kind is None or t.kind == kind))
