"""Config schema (ml_collections) shared by every configs/*.py, and up-front validation.

A run = `phases` (comma list of mlm / intermediate / target / evaluate). Training phases share one
schema: a list of task entries (each: registry task, language, split, data source, sampling weight,
head name) plus optimisation / validation / checkpoint settings.
"""
import math

import ml_collections as mlc
from ml_collections import config_dict

# pretarget: an optional first stage of a two-stage target recipe, handing its heads on (XTREME-R's
# XCOPA trains on English SIQA, then continues on English COPA: scripts/train_xcopa.sh).
PHASES = ("mlm", "intermediate", "pretarget", "target", "evaluate")
SAMPLERS = ("uniform", "proportional", "capped_proportional", "temperature")


def source(type="official", path="", config="", split="") -> mlc.ConfigDict:
    """type: hub (path = hub id or empty for the task's default), local (hub-schema files),
    official (XTREME download layout), tfds."""
    return mlc.ConfigDict(dict(type=type, path=path, config=config, split=split))


def task_entry(name, *, lang="en", split="train", src=None, weight=1.0, head="", max_examples=0,
               fraction=0.0, max_length=0) -> mlc.ConfigDict:
    return mlc.ConfigDict(dict(
        name=name, lang=lang, split=split, source=src or source(), weight=weight,
        head=head,                # head shared between entries (e.g. translated data); default = name
        max_examples=max_examples,  # training-set subsampling by count (0 = all) ...
        fraction=fraction,          # ... or by fraction (0 = all), seeded by config.seed
        max_length=max_length))     # 0 = the task's default


def train_phase(tasks=(), **kw) -> mlc.ConfigDict:
    p = dict(
        tasks=list(tasks), sampler="proportional", temperature=2.0, cap=2 ** 14,
        num_steps=1000, batch_size=32, lr=1e-5, warmup=0.1, weight_decay=0.01, clip=1.0,
        b1=0.9, b2=0.999, eps=1e-8, accum_steps=1, layer_decay=0.0,
        eval_every=500, eval_examples=500, patience=0,  # patience 0 = no early stopping
        save_every=500, keep=2, log_every=50, nonfinite="stop",  # or "skip"
        keep_heads=False,  # hand the heads on to the next phase too (encoder-only otherwise)
        export_hf=False, packing=False,
        # "rows": lazy AdamW on the word embedding, only the rows a batch uses (optim.make_row_update;
        # a different optimizer from dense AdamW, faster with a big vocabulary and small batches)
        embedding_update="dense")
    p.update(kw)
    return mlc.ConfigDict(p)


def base_config() -> mlc.ConfigDict:
    c = mlc.ConfigDict()
    c.seed = 0
    c.phases = "intermediate,target,evaluate"
    c.model = mlc.ConfigDict(dict(
        size="tiny",          # preset for random init: tiny | small | base | large
        pretrained="",        # HF dir or hub id; overrides `size` (e.g. FacebookAI/xlm-roberta-large)
        tokenizer="",         # default: the pretrained dir / hub id
        # Embedding rows of a random-init preset: 0 = the preset's (1024), grown to fit the
        # tokenizer when it has more tokens; a pretrained checkpoint fixes its own.
        vocab_size=0,
        # Text put before every input the tokenizer sees, in training and evaluation (e5 was
        # trained with "query: "); part of the feature cache key. An evaluate task entry's
        # input_prefix overrides it for that task.
        input_prefix="",
        dtype="float32",      # compute dtype; bfloat16 on TPU / GPU
        dropout=0.1, remat=False,
        # Accelerator levers (each an EncoderConfig field, copied by context.ENCODER_LEVERS):
        attention_dropout=config_dict.placeholder(float),  # None = `dropout` (hidden and attention alike)
        attention_impl="",    # "" = XLA picks; cudnn | cudnn_dropout (GPU; see models/encoder.attention)
        grad_dtype="float32",  # bfloat16: gradients rounded to bf16 before the update (train_step)
        dropout_bits=16))     # random bits per dropout-mask element: 16, or 8 (half the hashing)
    c.mesh = (-1, 1, 1)       # (data, fsdp, tensor); -1 = fill from the device count
    c.data = mlc.ConfigDict(dict(cache_dir="", buckets=(32, 64, 128, 256), num_threads=2,
                                 errors="raise"))
    c.mlm = train_phase(lr=5e-5, mlm_probability=0.15)
    c.intermediate = train_phase()
    c.pretarget = train_phase(keep_heads=True)
    c.target = train_phase()
    c.evaluate = mlc.ConfigDict(dict(
        tasks=[],
        benchmark="xtreme-r",  # aggregate.json: task averages, group and overall scores of this benchmark
        split="test", languages="", batch_size=64,
        # The evaluator's length buckets (training uses data.buckets): the 16-token bucket is for
        # short sentences, Tatoeba 2.49M -> 1.76M tokens processed on the kit (docs/benchmarks.md);
        # a bucket no batch needs costs no compilation.
        buckets=(16, 32, 64, 128, 256),
        # Retrieval tasks embed one layer's hidden states (0 = embeddings output, negative = from
        # the end: -1 is the last layer), pooled mean (over the mask) or cls (first token). None / ""
        # = each task's official setting (evaluation/retrieval.py SCORERS: Tatoeba mean at
        # hidden_states 8 of 12 / 14 of 24, BUCC cls at 8); a task entry's own setting wins.
        retrieval_layer=config_dict.placeholder(int),
        retrieval_pooling="",
        write_submission=True))
    c.new_run = False         # allow a different config in an existing workdir
    # A finished phase directory of another run (RUN/<phase>, local or gs://): the first phase of
    # this run starts from its weights instead of the pretrained checkpoint (e.g. many target runs
    # branching off one shared intermediate model). Empty: start from model.pretrained / size.
    c.init_from = ""
    # A phase to ablate (e.g. "intermediate"): run the phases before it once, then the rest with
    # and without it from that same start, and print the per-language gain (xtreme_jax.ablation).
    c.ablate = ""
    return c


def eval_task(name, src=None, languages="", max_length=0, *, input_prefix=None, retrieval_layer=None,
              retrieval_pooling="") -> mlc.ConfigDict:
    """One evaluated task. max_length 0 = the task's default; input_prefix None = config.model's;
    retrieval_layer None / retrieval_pooling "" = config.evaluate's (retrieval tasks only)."""
    return mlc.ConfigDict(dict(
        name=name, source=src or source(), languages=languages, max_length=max_length,
        input_prefix=config_dict.placeholder(str) if input_prefix is None else input_prefix,
        retrieval_layer=config_dict.placeholder(int) if retrieval_layer is None else retrieval_layer,
        retrieval_pooling=retrieval_pooling))


class ConfigError(ValueError):
    pass


def last_override_wins(argv: list) -> list:
    """config_flags appends every `--config.x=(...)` of a tuple field to the previous ones
    (`--config.mesh='(3,1,1)' --config.mesh='(1,1,1)'` gave (3, 1, 1, 1, 1, 1), and a later `()`
    added nothing). A key given more than once with a tuple literal keeps its last value only;
    the element-wise form `--config.x=1 --config.x=2` (no brackets) still builds (1, 2)."""
    def key(a):
        return a.split("=", 1)[0] if a.startswith("--config.") and "=" in a else None
    literal = {key(a) for a in argv if key(a) and a.split("=", 1)[1].lstrip().startswith(("(", "["))}
    last = {key(a): i for i, a in enumerate(argv) if key(a) in literal}
    return [a for i, a in enumerate(argv) if key(a) not in literal or last[key(a)] == i]


def config_file_problem(argv: list) -> str:
    """Why --config=FILE[:arg] cannot load, before config_flags defers it into a traceback."""
    import os
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    path = spec.split(":", 1)[0] if spec else ""
    if not path or "://" in path:
        return ""
    if not os.path.exists(path):
        return (f"--config={spec}: no such config file {path!r} (relative paths are from the current "
                f"directory, {os.getcwd()}); e.g. --config=configs/demo.py")
    if not os.path.isfile(path):
        return f"--config={spec}: {path!r} is not a file; give a config file such as configs/demo.py"
    return ""


def flag_error_line(e) -> str:
    """One line: a config file that raised (its `:arg` rejected) reports its own message, not the
    traceback config_flags folds into the flag error."""
    msg = str(e)
    if "Traceback" not in msg:
        return msg
    last = [line for line in msg.splitlines() if line.strip()][-1]
    flag = msg.split(": Error whilst", 1)[0].replace("flag ", "", 1)
    return f"{flag}: {last.split(': ', 1)[-1]}"


def check_runnable(config):
    """A run whose only phase is `evaluate` trains nothing: without a start (init_from, or a
    pretrained encoder for tasks scored without a head) it would score a random model."""
    from xtreme_jax.tasks import get_task
    names = phases(config)
    if names != ["evaluate"] or config.init_from:
        return
    headed = [t.name for t in config.evaluate.tasks if _has_head(get_task, t.name)]
    if not config.model.pretrained or headed:
        what = (f"the heads of {', '.join(sorted(set(headed)))}" if config.model.pretrained
                else "a randomly initialised encoder and heads")
        raise ConfigError(
            f"config.phases='evaluate' trains nothing, so it would score {what}. To score a trained "
            "run: python -m xtreme_jax.evaluate --config=... --checkpoint=RUN/target --workdir=OUT, or "
            "--config.init_from=RUN/target; else add the training phases to config.phases")


def _has_head(get_task, name) -> bool:
    try:
        return get_task(name).has_head
    except (KeyError, ValueError):
        return False  # validate() names the unknown task


def phases(config) -> list:
    names = [p.strip() for p in config.phases.split(",") if p.strip()]
    for p in names:
        if p not in PHASES:
            raise ConfigError(f"config.phases: unknown phase {p!r}; choose from {PHASES}")
    # Each phase hands its model to the next in this fixed order; a repeated or reordered phase
    # would otherwise fail (or silently re-train) only after the earlier phases trained.
    if len(set(names)) != len(names) or names != sorted(names, key=PHASES.index):
        raise ConfigError(f"config.phases={config.phases!r}: list each phase once, in the order "
                          f"{','.join(PHASES)}, e.g. --config.phases={','.join(sorted(set(names), key=PHASES.index))}")
    return names


def validate(config, num_devices: int, num_processes: int = 1):
    """Every check that can fail before compute starts; raises ConfigError naming the field."""
    from xtreme_jax.sharding import mesh_shape
    from xtreme_jax.tasks import get_task
    try:
        mesh = mesh_shape(config.mesh, num_devices)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    dp = mesh[0] * mesh[1]
    names = phases(config)
    if not names:
        raise ConfigError(f"config.phases={config.phases!r} names no phase; list some of {', '.join(PHASES)}, "
                          "e.g. --config.phases=intermediate,target,evaluate")
    _check_model_and_data(config)
    if not (isinstance(config.seed, int) and 0 <= config.seed < 2 ** 31):
        raise ConfigError(f"config.seed={config.seed} must be a whole number in [0, 2^31), e.g. --config.seed=0")
    for name in names:
        if name == "evaluate":
            from xtreme_jax.tasks.languages import BENCHMARKS
            if config.evaluate.benchmark not in BENCHMARKS:
                raise ConfigError(f"config.evaluate.benchmark={config.evaluate.benchmark!r}; choose from "
                                  f"{', '.join(BENCHMARKS)} (it sets the languages and the averages)")
            _check_pooling("config.evaluate", config.evaluate)
            for i, t in enumerate(config.evaluate.tasks):
                task = _check_task(get_task, f"evaluate.tasks[{i}].name", t.name)
                _check_retrieval_entry(task, f"config.evaluate.tasks[{i}]", t)
            if config.evaluate.batch_size % dp:
                raise ConfigError(f"config.evaluate.batch_size={config.evaluate.batch_size} is not "
                                  f"divisible by the data-parallel size {dp} (mesh {mesh})")
            continue
        p = config[name]
        if not p.tasks:
            raise ConfigError(f"config.{name}.tasks is empty: add at least one task entry")
        _check_numbers(name, p)
        if p.batch_size % (dp * p.accum_steps) or p.batch_size % num_processes:
            raise ConfigError(
                f"config.{name}.batch_size={p.batch_size} is not divisible by the data-parallel size "
                f"{dp} (mesh {mesh}) x accum_steps {p.accum_steps} and by {num_processes} processes; "
                f"use a multiple of {math.lcm(dp * p.accum_steps, num_processes)}")
        if p.sampler not in SAMPLERS:
            raise ConfigError(f"config.{name}.sampler={p.sampler!r}; choose from {SAMPLERS}")
        if p.nonfinite not in ("stop", "skip"):
            raise ConfigError(f"config.{name}.nonfinite={p.nonfinite!r}; choose 'stop' or 'skip'")
        if p.embedding_update not in ("dense", "rows"):
            raise ConfigError(f"config.{name}.embedding_update={p.embedding_update!r}; choose 'dense' or 'rows'")
        for i, t in enumerate(p.tasks):
            task = _check_task(get_task, f"{name}.tasks[{i}].name", t.name)
            _check_split_language(task, f"config.{name}.tasks[{i}]", t)
            if p.embedding_update == "rows" and task.family.ties_word_embedding:
                raise ConfigError(
                    f"config.{name}.embedding_update='rows' with {name}.tasks[{i}].name={t.name!r}: its "
                    f"{task.kind} head's decoder is tied to every word-embedding row; use "
                    f"--config.{name}.embedding_update=dense for this phase")


# (field, lowest allowed value, what it means): checked before compute, since a zero or negative
# value here otherwise fails only after compilation (ZeroDivisionError, a bare StopIteration).
_POSITIVE = (("num_steps", 1), ("batch_size", 1), ("accum_steps", 1), ("save_every", 1), ("log_every", 1),
             ("keep", 1), ("eval_every", 0), ("eval_examples", 1), ("patience", 0), ("max_length", 0),
             ("max_examples", 0))


def _check_numbers(name, p):
    for field, low in _POSITIVE:
        if field in p and p[field] < low:
            what = "positive" if low == 1 else "zero (off) or positive"
            raise ConfigError(f"config.{name}.{field}={p[field]} must be {what}, e.g. "
                              f"--config.{name}.{field}={max(low, 1) if field != 'eval_every' else 0}")
    if p.sampler == "temperature" and not 0 < p.temperature < math.inf:
        raise ConfigError(f"config.{name}.temperature={p.temperature} must be positive (sampling "
                          f"p ~ n^(1/T)), e.g. --config.{name}.temperature=2.0")
    for field, ok, what, example in _RANGES:
        if field in p and not _finite(p[field]) or field in p and not ok(p[field]):
            raise ConfigError(f"config.{name}.{field}={p[field]} must be {what}, e.g. "
                              f"--config.{name}.{field}={example}")
    if p.warmup >= 1 and p.warmup != int(p.warmup):
        raise ConfigError(f"config.{name}.warmup={p.warmup}: use a fraction of num_steps below 1 "
                          "(e.g. 0.1) or a whole number of steps")
    for i, t in enumerate(p.tasks):
        for field in ("max_examples", "max_length"):
            if t[field] < 0:
                raise ConfigError(f"config.{name}.tasks[{i}].{field}={t[field]} must be 0 (all / "
                                  "the task's default) or positive")
        if not 0 <= t.fraction <= 1:
            raise ConfigError(f"config.{name}.tasks[{i}].fraction={t.fraction} must lie in [0, 1] (0 = all)")
        if not 0 < t.weight < math.inf:
            raise ConfigError(f"config.{name}.tasks[{i}].weight={t.weight} must be positive and finite "
                              "(a relative sampling weight, e.g. 1.0)")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# (field, allowed, what, example) of the float fields of a training phase: a NaN / inf / out-of-range
# value is otherwise accepted and trains silently wrong (negative layer scales = gradient ascent on
# odd layers, b1 >= 1 never forgets, an MLM probability of 0 masks nothing) or fails after compute.
_RANGES = (
    ("lr", lambda v: v > 0, "positive and finite", "1e-5"),
    ("warmup", lambda v: v >= 0, "a non-negative fraction of num_steps below 1 or a whole number of steps", "0.1"),
    ("weight_decay", lambda v: v >= 0, "zero or positive (finite)", "0.01"),
    ("clip", lambda v: v >= 0, "zero (off) or a positive global norm", "1.0"),
    ("b1", lambda v: 0 <= v < 1, "in [0, 1) (Adam's first-moment decay)", "0.9"),
    ("b2", lambda v: 0 <= v < 1, "in [0, 1) (Adam's second-moment decay)", "0.999"),
    ("eps", lambda v: v > 0, "positive and finite (Adam's epsilon)", "1e-8"),
    ("layer_decay", lambda v: v == 0 or 0 < v <= 1, "0 (off) or in (0, 1] (lr scale per layer down from the top)",
     "0.9"),
    ("mlm_probability", lambda v: 0 < v < 1, "strictly between 0 and 1 (the fraction of tokens masked)", "0.15"),
)


def _check_split_language(task, field, t):
    """The split exists for the task, and the language for that split: XTREME ships translate-train
    data for some tasks and languages only (none for PAN-X or UD-POS, and QA's languages differ
    from XNLI's); a local or official copy that lists its languages (languages.txt) is taken at
    its word."""
    from xtreme_jax.data.errors import DataError
    splits = list(task.splits) + list(task.translate_splits)
    split = {"validation": "dev", "val": "dev"}.get(t.split, t.split)
    if split not in splits:
        raise ConfigError(f"{field}.split={t.split!r}: task {t.name!r} has no such split; choose from {splits}"
                          + ("" if task.translate_splits else " (it has no translate-train data)"))
    try:  # a source without a directory (hub, tfds, or data.dir filled in later) has the registry's
        langs = list(task.language_list(t.source if t.source.get("path") else None))
    except (DataError, OSError) as e:
        raise ConfigError(f"{field}.source: {(str(e).splitlines() or [''])[0]}") from None
    if split in task.translate_splits:
        langs = list(task.translate_languages) or langs
        if t.lang not in langs:
            raise ConfigError(f"{field}.lang={t.lang!r}: task {t.name!r} has no {split} data in {t.lang!r}; "
                              f"its {split} languages are {' '.join(langs)}")
    elif t.lang not in langs:
        raise ConfigError(f"{field}.lang={t.lang!r}: task {t.name!r} has no such language; "
                          f"choose from {sorted(set(langs))}")


RETRIEVAL_POOLINGS = ("mean", "cls")


def _check_pooling(field, c):
    pooling = c.get("retrieval_pooling") or ""
    if pooling and pooling not in RETRIEVAL_POOLINGS:
        raise ConfigError(f"{field}.retrieval_pooling={pooling!r}; choose mean (average over the tokens), "
                          "cls (first token) or '' (the task's official pooling)")


def _check_retrieval_entry(task, field, t):
    """Layer and pooling belong to retrieval tasks (a task with a head reads its head's output)."""
    _check_pooling(field, t)
    if task.has_head and (t.get("retrieval_layer") is not None or t.get("retrieval_pooling")):
        raise ConfigError(f"{field}: retrieval_layer / retrieval_pooling apply to retrieval tasks only; "
                          f"{t.name!r} is scored through its trained {task.kind} head: remove them")


def validate_retrieval_layers(config, model_cfg):
    """Every explicit retrieval layer names a hidden state of the model (0 = embeddings output ..
    num_layers; negative counts from the end), before compute."""
    n = model_cfg.num_layers
    entries = [("config.evaluate", config.evaluate)] + [
        (f"config.evaluate.tasks[{i}]", t) for i, t in enumerate(config.evaluate.tasks)]
    for field, c in entries:
        layer = c.get("retrieval_layer")
        if layer is not None and not -(n + 1) <= layer <= n:
            raise ConfigError(f"{field}.retrieval_layer={layer}: the model has {n} layers, so hidden "
                              f"states 0 (embeddings output) .. {n} (last), or -1 (last) .. -{n + 1} from "
                              f"the end; leave it unset for the task's official layer")


GRAD_DTYPES = ("float32", "bfloat16")


def _check_levers(m):
    """The accelerator levers of config.model (see base_config)."""
    from xtreme_jax.models.encoder import ATTENTION_IMPLS, DROPOUT_BIT_CHOICES
    impls = [i for i in ATTENTION_IMPLS if i]
    if m.get("attention_impl", "") and m.attention_impl not in impls:
        raise ConfigError(f"config.model.attention_impl={m.attention_impl!r}; choose '' (XLA picks) or one "
                          f"of {', '.join(impls)}")
    rate = m.get("attention_dropout")
    if rate is not None and not 0 <= rate < 1:
        raise ConfigError(f"config.model.attention_dropout={rate} must lie in [0, 1) (unset: model.dropout), "
                          "e.g. --config.model.attention_dropout=0.0")
    if m.get("grad_dtype", "float32") not in GRAD_DTYPES:
        raise ConfigError(f"config.model.grad_dtype={m.grad_dtype!r}; choose from {', '.join(GRAD_DTYPES)}")
    if m.get("dropout_bits", 16) not in DROPOUT_BIT_CHOICES:
        raise ConfigError(f"config.model.dropout_bits={m.dropout_bits!r}; choose 16 or 8 (half the hashing, "
                          "keep probability rounded to 1/256)")


def _check_model_and_data(config):
    from xtreme_jax.models.encoder import PRESETS
    if not config.model.pretrained and config.model.size not in PRESETS:
        raise ConfigError(f"config.model.size={config.model.size!r}; choose from {sorted(PRESETS)} "
                          "or set config.model.pretrained to an HF checkpoint")
    _check_levers(config.model)
    if config.data.errors not in ("raise", "skip"):
        raise ConfigError(f"config.data.errors={config.data.errors!r}; choose 'raise' (stop at the first "
                          "bad record) or 'skip' (skip and count bad records)")
    _check_cache_dir(config.data.cache_dir)
    dropout = config.model.dropout
    if not (_finite(dropout) and 0 <= dropout < 1):
        raise ConfigError(f"config.model.dropout={dropout} must lie in [0, 1) (the fraction of activations "
                          "dropped), e.g. --config.model.dropout=0.1")
    if config.evaluate.batch_size <= 0:
        raise ConfigError(f"config.evaluate.batch_size={config.evaluate.batch_size} must be positive")
    for field, b in (("data.buckets", config.data.buckets), ("evaluate.buckets", config.evaluate.get("buckets", ()))):
        if b and not (all(isinstance(x, int) and x > 0 for x in b) and list(b) == sorted(set(b))):
            raise ConfigError(f"config.{field}={tuple(b)} must be increasing positive lengths, "
                              f"e.g. --config.{field}='(16, 32, 64, 128, 256)'")


def _check_cache_dir(cache_dir: str):
    """A local cache_dir that cannot be created or written is refused before any phase runs."""
    import os
    if not cache_dir or "://" in cache_dir:
        return
    there = os.path.abspath(cache_dir)
    while not os.path.exists(there):
        there = os.path.dirname(there)
    why = ("is a file" if not os.path.isdir(there) else
           "is not writable" if not os.access(there, os.W_OK | os.X_OK) else "")
    if why:
        raise ConfigError(f"config.data.cache_dir={cache_dir!r}: {there} {why}; set --config.data.cache_dir "
                          "to a writable directory (or '' for the run's own cache)")


def usable_positions(model_cfg) -> int:
    """Longest sequence the position table can embed: RoBERTa / XLM-R position ids start at
    pad_token_id + 1 (so 514 rows hold 512 tokens), BERT's at 0."""
    offset = model_cfg.pad_token_id + 1 if model_cfg.position_style == "roberta" else 0
    return model_cfg.max_position_embeddings - offset


def validate_lengths(config, model_cfg):
    """Every task's max length against the model's positions, before compute: past the table,
    the embedding lookup returns NaN and the run dies later with a misleading message."""
    from xtreme_jax.tasks import get_task
    usable = usable_positions(model_cfg)
    where = (f"the model's {usable} usable positions (max_position_embeddings="
             f"{model_cfg.max_position_embeddings}, {model_cfg.position_style}-style position ids)")
    for name in phases(config):
        entries = config.evaluate.tasks if name == "evaluate" else config[name].tasks
        for i, t in enumerate(entries):
            length = t.get("max_length", 0) or get_task(t.name).max_length
            if length > usable:
                field = f"config.{name}.tasks[{i}].max_length"
                default = "" if t.get("max_length", 0) else f" (task {t.name!r}'s default, as the field is 0)"
                raise ConfigError(f"{field}={length}{default} exceeds {where}; set "
                                  f"--{field}={usable} or use a model with more positions")


def _check_task(get_task, field, name):
    try:
        return get_task(name)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"config.{field}={name!r}: {e}") from None
