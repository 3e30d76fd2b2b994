"""The task registry: every task is there with the benchmark's kind, labels, languages, metric."""
import pytest

from xtreme_jax.data.errors import DataError
from xtreme_jax.tasks import get_task, list_tasks
from xtreme_jax.tasks.languages import XTREME, XTREME_R


# The paper's nine English intermediate tasks (X-STILTs, section 3).
INTERMEDIATE = ("anli+", "mnli", "qqp", "squad", "sst2", "hellaswag", "ccg", "cosmosqa", "commonsenseqa")


def test_every_task_is_registered():
    # target tasks = the union of both benchmarks' task lists
    assert list_tasks("target") == sorted(set(XTREME) | set(XTREME_R))
    names = set(list_tasks())
    for t in INTERMEDIATE + ("snli", "siqa", "copa", "mlm", "demo_nli", "squad2"):
        assert t in names, t
    assert set(INTERMEDIATE) <= set(list_tasks("intermediate"))


# (kind, outputs of the head: classes / tags, 1 score per choice, start+end, None = no head)
@pytest.mark.parametrize("name,kind,num_labels", [
    ("xnli", "classification", 3), ("pawsx", "classification", 2), ("udpos", "tagging", 17),
    ("panx", "tagging", 7), ("xquad", "span", 2), ("mlqa", "span", 2), ("tydiqa", "span", 2),
    ("bucc2018", "retrieval", None), ("tatoeba", "retrieval", None), ("xcopa", "multiple_choice", 1),
    ("mewslix", "retrieval", None), ("lareqa", "retrieval", None), ("anli+", "classification", 3),
    ("mnli", "classification", 3), ("qqp", "classification", 2), ("squad", "span", 2),
    ("sst2", "classification", 2), ("hellaswag", "multiple_choice", 1),
    ("cosmosqa", "multiple_choice", 1), ("commonsenseqa", "multiple_choice", 1),
    ("snli", "classification", 3), ("siqa", "multiple_choice", 1), ("copa", "multiple_choice", 1),
    ("mlm", "mlm", 2), ("demo_nli", "classification", 3), ("anli_r1", "classification", 3),
    ("anli_r3", "classification", 3), ("mnli_easy", "classification", 3), ("mnli_hard", "classification", 3),
    ("swag", "multiple_choice", 1)])
def test_kinds_and_label_counts(name, kind, num_labels):
    t = get_task(name)
    assert t.kind == kind and t.has_head == (num_labels is not None)
    if num_labels is not None:
        assert t.num_labels() == num_labels == t.info()["num_labels"]


def test_data_defined_labels_need_the_source():
    ccg = get_task("ccg")
    assert ccg.kind == "tagging" and ccg.info()["num_labels"] is None
    with pytest.raises(DataError, match="builds its label set from the data"):
        ccg.num_labels()
    assert get_task("hellaswag").num_choices == 4  # choices are a data fact, not the head's size


def test_languages_are_the_benchmark_lists():
    for name in ("xnli", "pawsx", "mlqa", "tydiqa", "bucc2018"):
        assert list(get_task(name).languages) == XTREME[name]
    for name in ("udpos", "panx", "xquad", "tatoeba", "xcopa", "mewslix", "lareqa"):
        assert list(get_task(name).languages) == XTREME_R[name]
    assert len(get_task("panx").languages) == 48 and len(get_task("tatoeba").languages) == 41
    for name in INTERMEDIATE:
        assert get_task(name).languages == ("en",)


def test_nli_tasks_share_one_label_order():
    # one 3-way head moves from ANLI+/MNLI to XNLI without remapping
    orders = {get_task(n).labels for n in ("xnli", "mnli", "anli+", "snli", "anli", "demo_nli", "anli_r1",
                                           "anli_r2", "anli_r3", "mnli_easy", "mnli_hard")}
    assert orders == {("entailment", "neutral", "contradiction")}


def test_metrics():
    assert get_task("udpos").metric == "seqeval_f1" and get_task("panx").metric == "seqeval_f1"
    assert get_task("xquad").metric == "squad_em_f1" and get_task("mlqa").metric == "mlqa_em_f1"
    assert get_task("mewslix").metric == "map@20" and get_task("tatoeba").metric == "accuracy"


def test_unknown_task_and_aliases():
    with pytest.raises(DataError, match="unknown task 'xnlii'.*use one of"):
        get_task("xnlii")
    assert get_task("PAWS-X").name == "pawsx" and get_task("anli_plus").name == "anli+"
    assert get_task("bucc").name == "bucc2018"


def test_info_is_jsonable():
    import json
    for n in list_tasks():
        info = get_task(n).info()
        assert json.loads(json.dumps(info)) == info and info["name"] == n
