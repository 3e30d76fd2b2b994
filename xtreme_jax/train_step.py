"""Train state and the jitted, donated train step (the loop itself lives in `xtreme_jax.train_loop`)."""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xtreme_jax.models.encoder import EncoderConfig
from xtreme_jax.models.heads import TaskModel
from xtreme_jax.sharding import DEFAULT_RULES


class TrainState(nnx.Module):
    def __init__(self, model: TaskModel, tx: optax.GradientTransformation):
        self.model = model
        self.opt = nnx.Optimizer(model, tx, wrt=nnx.Param)


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
                 abstract_only: bool = False):
    """TrainState (model + optimizer) on `mesh`: returns (graphdef, state, shardings)."""
    return _create(lambda: TrainState(TaskModel(cfg, heads, rngs=nnx.Rngs(seed)), tx), mesh, rules,
                   abstract_only)


def create_model(cfg: EncoderConfig, heads: dict, mesh, rules=DEFAULT_RULES, seed: int = 0,
                 abstract_only: bool = False):
    """A TaskModel alone (no optimizer state) on `mesh`: for evaluation and weight hand-off.
    Returns the model, or with abstract_only its (graphdef, abstract state)."""
    graphdef, state, _ = _create(lambda: TaskModel(cfg, heads, rngs=nnx.Rngs(seed)), mesh, rules,
                                 abstract_only)
    return (graphdef, state) if abstract_only else nnx.merge(graphdef, state)


def _microbatches(batch, n):
    """[B, ...] -> [n, B/n, ...], microbatch i = rows i, i+n, ... so each spans all devices."""
    def split(x):
        if x.shape[0] % n:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {n} accumulation steps")
        return jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def make_train_step(graphdef, shardings, task: str, schedule=None, accum_steps: int = 1,
                    grad_dtype=None, rules=DEFAULT_RULES, mlm_probability: float | None = None,
                    head_options: dict | None = None, guard: str = "auto"):
    """Returns step(state, batch, rng) -> (state, metrics); state buffers are donated.

    Traced under the state's mesh and `rules`, so the encoder's activation constraints
    (`sharding.constrain`) apply: activations stay split over the batch on any mesh.

    Gradients are of the summed loss, divided by the global item count, so accumulation and
    multi-host batches give the exact mean. Non-finite gradients skip the update (the host
    decides whether that stops the run, see `metrics['finite']`). `mlm_probability` (an MLM
    task): the masking rate of its batches, which sizes the MLM head's gathered positions
    (`heads.max_masked`); None = the default 0.15. `head_options`: more keyword arguments of
    the head's train_loss (e.g. MLM dense=True, the benchmarks' all-positions reference).

    `guard`, how a non-finite step is refused: "select" (the update computed, then kept or
    dropped element-wise: on a GPU a lax.cond copies its predicate to the host every step),
    "cond" (lax.cond: only the taken branch runs; XLA:CPU fuses it better: the select there
    costs two extra copies of the AdamW moments: 0.73x speed, 4-layer base step), "auto" = select
    on GPUs, cond elsewhere. Both refuse the same steps (tests/test_perf.py).
    """
    if guard not in ("auto", "select", "cond"):
        raise ValueError(f"guard={guard!r}; choose 'auto', 'select' or 'cond'")
    options = dict(head_options or {})
    if mlm_probability is not None:
        options["mlm_probability"] = float(mlm_probability)

    def step_fn(state, batch, rng):
        ts = nnx.merge(graphdef, state)
        model_def, params, rest = nnx.split(ts.model, nnx.Param, ...)

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
            if grad_dtype is not None:  # same rounding as the accumulated path
                grads = jax.tree.map(lambda g: g.astype(grad_dtype).astype(jnp.float32), grads)
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
            if grad_dtype is not None:  # e.g. bf16 gradient reduction on accelerators
                grads = jax.tree.map(lambda g: g.astype(grad_dtype), grads)
            grads = jax.tree.map(lambda g: (g / denom).astype(jnp.float32), grads)
            loss = total / denom
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        step_no = ts.opt.step[...]

        # The clipping reuses this norm (optim.clip_by_global_norm): one pass over the gradients.
        extra = {"global_norm": grad_norm} if isinstance(ts.opt.tx, optax.GradientTransformationExtraArgs) else {}

        def apply(s):
            t = nnx.merge(graphdef, s)
            t.opt.update(t.model, grads, **extra)
            return nnx.state(t)
        if use_select:
            old = jax.tree.leaves(state)   # before apply: merged Variables may share its buffers
            updated = apply(state)
            new = jax.tree.unflatten(jax.tree.structure(updated), [
                jnp.where(finite, n, o) for n, o in zip(jax.tree.leaves(updated), old)])
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
