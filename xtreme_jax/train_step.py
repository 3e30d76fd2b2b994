"""Train state and the jitted, donated train step (the loop itself lives in `xtreme_jax.train_loop`)."""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xtreme_jax.models.encoder import EncoderConfig
from xtreme_jax.models.heads import TaskModel
from xtreme_jax.sharding import DEFAULT_RULES
from xtreme_jax.tasks.kinds import KINDS


# The word embedding, when its rows are updated lazily (optim.make_row_update), is left out of
# the dense optimizer, and its two AdamW moments live beside it as word_mu / word_nu.
WORD = nnx.PathContains("word")


class TrainState(nnx.Module):
    def __init__(self, model: TaskModel, tx: optax.GradientTransformation, row_embeddings: bool = False):
        self.model = model
        self.opt = nnx.Optimizer(model, tx, wrt=nnx.All(nnx.Param, nnx.Not(WORD)) if row_embeddings else nnx.Param)
        if row_embeddings:
            word = model.encoder.embeddings.word
            self.word_mu = nnx.OptState(jnp.zeros_like(word[...]), **word.get_metadata())
            self.word_nu = nnx.OptState(jnp.zeros_like(word[...]), **word.get_metadata())


def state_shardings(abstract_state, mesh):
    """NamedShardings on `mesh` for every leaf, from the logical annotations (rules in context)."""
    specs = nnx.get_partition_spec(abstract_state)
    return jax.tree.map(lambda s: jax.sharding.NamedSharding(mesh, s), specs)


def _create(build, mesh, rules, abstract_only: bool):
    """(graphdef, state, shardings) of the module `build()` makes, created directly sharded on
    `mesh` (never whole on one device); with abstract_only, state holds ShapeDtypeStructs."""
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        graphdef, abstract = nnx.split(nnx.eval_shape(build))
        shardings = state_shardings(abstract, mesh)
        if abstract_only:
            state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                 abstract, shardings)
        else:
            state = jax.jit(lambda: nnx.state(build()), out_shardings=shardings)()
    return graphdef, state, shardings


def create_state(cfg: EncoderConfig, heads: dict, tx, mesh, rules=DEFAULT_RULES, seed: int = 0,
                 abstract_only: bool = False, row_embeddings: bool = False):
    """TrainState (model + optimizer) on `mesh`: returns (graphdef, state, shardings).
    row_embeddings: the word embedding is updated by make_train_step's row_update instead."""
    return _create(lambda: TrainState(TaskModel(cfg, heads, rngs=nnx.Rngs(seed)), tx, row_embeddings), mesh,
                   rules, abstract_only)


def create_model(cfg: EncoderConfig, heads: dict, mesh, rules=DEFAULT_RULES, seed: int = 0,
                 abstract_only: bool = False):
    """A TaskModel alone (no optimizer state) on `mesh`: for evaluation and weight hand-off.
    Returns the model, or with abstract_only its (graphdef, abstract state)."""
    graphdef, state, _ = _create(lambda: TaskModel(cfg, heads, rngs=nnx.Rngs(seed)), mesh, rules,
                                 abstract_only)
    return (graphdef, state) if abstract_only else nnx.merge(graphdef, state)


def _is_word(path) -> bool:
    """A leaf of the lazily updated word embedding or its moments (the path ends in .../word/value)."""
    names = {str(getattr(k, "key", getattr(k, "name", k))) for k in path[-2:]}
    return bool(names & {"word", "word_mu", "word_nu"})


def _microbatches(batch, n):
    """[B, ...] -> [n, B/n, ...], microbatch i = rows i, i+n, ... so each spans all devices."""
    def split(x):
        if x.shape[0] % n:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {n} accumulation steps")
        return jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def make_train_step(graphdef, shardings, task: str, schedule=None, accum_steps: int = 1,
                    grad_dtype=None, rules=DEFAULT_RULES, mlm_probability: float | None = None,
                    head_options: dict | None = None, guard: str = "auto", row_update=None):
    """Returns step(state, batch, rng) -> (state, metrics); state buffers are donated.

    Traced under the state's mesh and `rules`, so the encoder's activation constraints
    (`sharding.constrain`) apply: activations stay split over the batch on any mesh.

    Gradients are of the summed loss, divided by the global item count, so accumulation and
    multi-host batches give the exact mean. Non-finite gradients skip the update (the host
    decides whether that stops the run, see `metrics['finite']`). `grad_dtype`: the dtype the
    gradients are rounded to (None: the model's EncoderConfig.grad_dtype). `mlm_probability` (an MLM
    task): the masking rate of its batches, which sizes the MLM head's gathered positions
    (`heads.max_masked`); None = the default 0.15. `head_options`: more keyword arguments of
    the head's train_loss (e.g. MLM dense=True, the benchmarks' all-positions reference).

    `guard`, how a non-finite step is refused: "select" (the update computed, then kept or
    dropped element-wise: on a GPU a lax.cond copies its predicate to the host every step),
    "cond" (lax.cond: only the taken branch runs; XLA:CPU fuses it better: the select there
    costs two extra copies of the AdamW moments: 0.73x speed, 4-layer base step), "auto" = select
    on GPUs, cond elsewhere. Both refuse the same steps (tests/test_perf.py).

    `row_update` (optim.make_row_update; the state made with row_embeddings=True): the word
    embedding's gradient is taken only for the rows the batch looks up, never as a V x d array,
    and those rows alone are updated. The forward pass is unchanged: the model runs on the
    table of used rows with the input ids renumbered into it (the encoder reads the word
    embedding only through that lookup; the MLM head's tied decoder needs every row, so MLM
    tasks are refused).
    """
    if guard not in ("auto", "select", "cond"):
        raise ValueError(f"guard={guard!r}; choose 'auto', 'select' or 'cond'")
    options = dict(head_options or {})
    if mlm_probability is not None:
        options["mlm_probability"] = float(mlm_probability)

    def step_fn(state, batch, rng):
        ts = nnx.merge(graphdef, state)
        gdtype = ts.model.encoder.cfg.grad_dtype if grad_dtype is None else grad_dtype
        model_def, params, rest = nnx.split(ts.model, nnx.Param, ...)
        if row_update is not None:
            if KINDS[ts.model.heads[task].kind].ties_word_embedding:
                raise ValueError(f"row_update with the {task!r} head: its decoder reads every word-embedding row")
            if "attention_mask" not in batch:  # the encoder's default reads the pad id off the ids
                raise ValueError("row_update needs batches with an attention_mask")
            ids, vocab = batch["input_ids"], ts.model.encoder.embeddings.word.shape[0]
            # Every distinct id once (static size: the batch's token count; padded with V, which
            # the gather fills with zeros and the scatter drops), and the ids renumbered into it.
            rows, renumbered = jnp.unique(ids.ravel(), return_inverse=True, size=ids.size, fill_value=vocab)
            emb = params["encoder"]["embeddings"]   # a new Variable: the state's own stays whole
            emb["word"] = emb["word"].replace(jnp.take(emb["word"][...], rows, axis=0, mode="fill", fill_value=0))
            batch = dict(batch, input_ids=renumbered.reshape(ids.shape).astype(ids.dtype))

        def summed_loss(p, mb, r):
            _, (total, count) = nnx.merge(model_def, p, rest).loss(task, mb, r, **options)
            return total, count

        if accum_steps == 1:
            # The divide by the item count is folded into the loss (the count carries no
            # gradient): the backward pass yields the mean's gradients, no extra pass over them.
            def mean_loss(p, mb, r):
                total, count = summed_loss(p, mb, r)
                return total / jnp.maximum(count, 1).astype(jnp.float32), (total, count)
            (loss, (total, count)), grads = jax.value_and_grad(mean_loss, has_aux=True)(params, batch, rng)
            if gdtype is not None:  # same rounding as the accumulated path
                grads = jax.tree.map(lambda g: g.astype(gdtype).astype(jnp.float32), grads)
        else:
            grad_fn = jax.value_and_grad(summed_loss, has_aux=True)

            def body(carry, i_mb):
                i, mb = i_mb
                (t, c), g = grad_fn(params, mb, jax.random.fold_in(rng, i))
                acc_t, acc_c, acc_g = carry
                return (acc_t + t, acc_c + c, jax.tree.map(jnp.add, acc_g, g)), None
            zeros = jax.tree.map(jnp.zeros_like, params)
            mbs = _microbatches(batch, accum_steps)
            (total, count, grads), _ = jax.lax.scan(
                body, (0.0, 0, zeros), (jnp.arange(accum_steps), mbs))
            denom = jnp.maximum(count, 1).astype(jnp.float32)
            if gdtype is not None:  # e.g. bf16 gradient reduction on accelerators
                grads = jax.tree.map(lambda g: g.astype(gdtype), grads)
            grads = jax.tree.map(lambda g: (g / denom).astype(jnp.float32), grads)
            loss = total / denom
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        step_no = ts.opt.step[...]

        # The clipping reuses this norm (optim.clip_by_global_norm): one pass over the gradients.
        extra = {"global_norm": grad_norm} if isinstance(ts.opt.tx, optax.GradientTransformationExtraArgs) else {}

        def apply(s):
            t = nnx.merge(graphdef, s)
            t.opt.update(t.model, grads, **extra)   # the optimizer takes its `wrt` part of grads
            if row_update is not None:
                word = t.model.encoder.embeddings.word
                table, mu, nu = row_update(word[...], t.word_mu[...], t.word_nu[...], rows,
                                           grads["encoder"]["embeddings"]["word"][...], step_no, grad_norm, finite)
                word.set_value(table)
                t.word_mu.set_value(mu)
                t.word_nu.set_value(nu)
            return nnx.state(t)
        if use_select:
            old = jax.tree.leaves(state)   # before apply: merged Variables may share its buffers
            updated = apply(state)
            # the row update keeps its rows when not finite; a select over its V x d arrays
            # would be three full passes that the lazy update exists to avoid
            lazy = [row_update is not None and _is_word(p) for p, _ in jax.tree.leaves_with_path(updated)]
            new = jax.tree.unflatten(jax.tree.structure(updated), [
                n if z else jnp.where(finite, n, o) for n, o, z in zip(jax.tree.leaves(updated), old, lazy)])
        else:
            new = jax.lax.cond(finite, apply, lambda s: s, state)
        new = jax.lax.with_sharding_constraint(new, shardings)
        metrics = dict(loss=loss, grad_norm=grad_norm, count=count, finite=finite, step=step_no,
                       tokens=jnp.sum(batch["attention_mask"]).astype(jnp.int32))
        if schedule is not None:
            metrics["lr"] = schedule(step_no)
        return new, metrics

    mesh = jax.tree.leaves(shardings)[0].mesh
    use_select = guard == "select" or (guard == "auto" and mesh.devices.flat[0].platform == "gpu")

    def step(state, batch, rng):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nnx.logical_axis_rules(rules):
            return step_fn(state, batch, rng)

    return jax.jit(step, donate_argnums=(0,), out_shardings=(shardings, None))
