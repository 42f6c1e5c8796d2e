"""``hai-edge teacher embed --engine ray``: the same embedding run, spread over a Ray cluster.

The driver plans exactly as the local engine does (:func:`teacher_embed.plan_embedding`: open the
store, skip the items already in its shards) before anything is scheduled. The items left become a
Ray Dataset; decode + windows/views (:func:`teacher_embed.item_rows`, so augmentations are keyed by
``(seed, sample_id)`` and identical to the local engine's) run in parallel map tasks; the teacher
runs in an actor pool (``map_batches`` with a callable class, ``concurrency=workers``, the model
loaded once per actor, ``num_gpus`` when asked). Output comes back in corpus order
(``preserve_order``) and the *driver* writes the shards, with the local engine's writer rules (a
shard every ``shard_items`` decoded items, atomic, next free number), so a Ray store equals a local
one and either engine resumes the other's store. The progress line counts the items Ray hands
back.

Ray is imported only here (``pip install 'hai-edge[scale]'``). A Ray started here is local,
bound to loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray pick 127.0.0.1), without the
dashboard or usage statistics (``RAY_USAGE_STATS_ENABLED=0``) and with worker logs kept out of the
terminal; it is shut down at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError, InputError, MissingDependencyError
from hai_edge.runtime.frontends import AudioFrontendSpec
from hai_edge.corpus import CorpusItem
from hai_edge.distill.store import EmbeddingStore
from hai_edge.distill.teacher_embed import (
    SHARD_ITEMS,
    Progress,
    SampleRow,
    check_vectors,
    finish_run,
    item_rows,
    plan_embedding,
    skip_record,
    write_rows,
)
from hai_edge.teachers import TeacherInfo

__all__ = ["RayOptions", "embed_corpus_ray", "ray_session", "remote_teacher_info"]

ACTOR_START_TIMEOUT_S = 600  # existing clusters: how long the autoscaler may take to fit actors
_KEEP = ("sample_id", "item_id", "path", "view", "start_s", "end_s", "aug", "skip")


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run. ``address=None`` starts a local, loopback-only Ray with
    ``workers * cpus_per_worker + 1`` CPUs (the extra one decodes); ``"auto"``,
    ``"ray://HOST:10001"`` or ``"HOST:6379"`` join an existing cluster. ``workers=None``: as many
    teacher actors as the cluster fits (GPUs / gpus_per_worker, else CPUs - 1)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise HaiEdgeError("--workers must be >= 1")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise HaiEdgeError("--gpus-per-worker must be >= 0 and --cpus-per-worker > 0")

    @property
    def actor_device(self) -> str:
        """Torch device inside an actor: the GPU Ray assigned it when GPUs are asked for."""
        return "cuda" if self.gpus_per_worker > 0 and self.device == "cpu" else self.device


# --------------------------------------------------------------------------- Ray session
def _import_ray(local: bool) -> Any:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no telemetry, whoever starts the cluster
    if local and "ray" not in sys.modules:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node IP 127.0.0.1: loopback only
    try:
        import ray
        import ray.data  # noqa: F401  (the engine needs Ray Data, not only Ray core)
    except ImportError:
        raise MissingDependencyError("--engine ray", "scale", "ray[data]") from None
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


@contextlib.contextmanager
def ray_session(options: RayOptions = RayOptions(), *, announce: bool = False) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster: the one already initialised in this
    process, the one at ``options.address``, or a local one started (and shut down) here.
    ``announce`` says so on stderr first (a local start takes seconds)."""
    ray = _import_ray(local=options.address is None)
    if ray.is_initialized():
        yield ray
        return
    workers = options.workers or max(1, (os.cpu_count() or 2) - 1)
    cpus = math.ceil(workers * options.cpus_per_worker) + 1
    if announce:
        where = f"connecting to Ray at {options.address}" if options.address else \
            f"starting a local Ray ({cpus} CPUs, loopback only)"
        print(f"teacher embed: {where} ...", file=sys.stderr, flush=True)
    try:
        if options.address:
            ray.init(address=options.address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR,
                     # workers at the driver's priority (Ray's default is nice 15), as the
                     # local engine runs: a fair comparison on a busy machine
                     _system_config={"worker_niceness": 0})
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError from ray.init
        where = f"at {options.address}" if options.address else "locally"
        raise HaiEdgeError(f"cannot start or reach Ray {where}: {_first_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _probe_info(teacher_spec: str, device: str) -> TeacherInfo:
    from hai_edge.teachers import load_teacher

    teacher = load_teacher(teacher_spec, device=device)
    try:
        return teacher.info
    finally:
        teacher.close()


def remote_teacher_info(teacher_spec: str, options: RayOptions = RayOptions()) -> TeacherInfo:
    """The teacher's :class:`TeacherInfo`, read by loading it once on a worker (like an actor
    will), so the driver needs neither the model nor its framework."""
    with ray_session(options) as ray:
        _workers(ray, options, _loopback_cluster(ray))  # a probe that cannot be placed would hang
        probe = ray.remote(num_cpus=options.cpus_per_worker,
                           num_gpus=options.gpus_per_worker or None)(_probe_info)
        try:
            return ray.get(probe.remote(teacher_spec, options.actor_device))
        except Exception as exc:
            raise _clean_error(exc, "loading the teacher on a Ray worker failed") from None


def _clean_error(exc: BaseException, what: str) -> HaiEdgeError:
    """A Ray failure as one line: the innermost cause (a HaiEdgeError's own message as is)."""
    seen, cause = set(), exc
    while True:
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        cause = inner
    if isinstance(cause, HaiEdgeError):
        return HaiEdgeError(_first_line(cause))
    for err in (exc, cause):
        if isinstance(err, HaiEdgeError):  # Ray's dual-class errors subclass the user's type
            return HaiEdgeError(_first_line(err).split(": ", 1)[-1])
    return HaiEdgeError(f"{what}: {type(cause).__name__}: {_first_line(cause)}")


# ------------------------------------------------------------------------ Ray-side work
def _decode_item(row: dict[str, Any], *, info: TeacherInfo, wspec: AudioFrontendSpec | None,
                 views: int, seed: int) -> list[dict[str, Any]]:
    """Map task: one corpus item -> one row per window x view (teacher input as raw bytes), or
    one ``skip`` row saying why the item cannot be used."""
    item = CorpusItem(item_id=str(row["item_id"]), path=Path(str(row["file"])))
    base = {"item_id": item.item_id, "path": str(row["path"])}
    try:
        rows = item_rows(item, info, wspec, views, seed)
    except InputError as exc:
        return [{**base, "sample_id": "", "view": 0, "start_s": math.nan, "end_s": math.nan,
                 "aug": "", "skip": exc.problem, "data": b"", "shape": "0", "dtype": "<f4"}]
    out = []
    for r in rows:
        data = np.ascontiguousarray(r.data)
        out.append({**base, "sample_id": r.sample_id, "view": r.view, "start_s": r.start_s,
                    "end_s": r.end_s, "aug": r.aug, "skip": "", "data": data.tobytes(),
                    "shape": ",".join(str(n) for n in data.shape), "dtype": data.dtype.str})
    return out


class _TeacherActor:
    """Actor-pool callable: loads the teacher once, then embeds batches of decoded rows."""

    def __init__(self, teacher_spec: str, device: str, dim: int) -> None:
        from hai_edge.teachers import load_teacher

        self.teacher = load_teacher(teacher_spec, device=device)
        self.dim = dim
        got = int(self.teacher.info.embedding_dim)
        if got != dim:
            raise HaiEdgeError(f"{teacher_spec}: a worker's teacher gives {got}-d embeddings, "
                               f"the driver planned {dim}-d")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        skip = batch["skip"]
        vectors = np.zeros((len(skip), self.dim), np.float32)
        ok = [i for i, reason in enumerate(skip) if not reason]
        if ok:
            inputs = [np.frombuffer(batch["data"][i], dtype=str(batch["dtype"][i]))
                      .reshape([int(n) for n in str(batch["shape"][i]).split(",")]).copy()
                      for i in ok]
            ids = [str(batch["sample_id"][i]) for i in ok]
            vectors[ok] = check_vectors(self.teacher.embed(inputs), ids, self.dim)
        return {**{k: batch[k] for k in _KEEP}, "vector": vectors}


# ------------------------------------------------------------------------------- driver
class _ItemShards:
    """Driver side: whole items in, a shard every ``shard_items`` decoded items out (the local
    engine's rule, so both engines cut the same shards)."""

    def __init__(self, store: EmbeddingStore, shard_items: int, bar: Progress) -> None:
        self.store, self.shard_items, self.bar = store, shard_items, bar
        self.rows: list[SampleRow] = []
        self.vectors: list[np.ndarray] = []
        self.items = 0
        self.closed: set[str] = set()
        self.current: str | None = None
        self.current_start = 0  # where the current item's rows begin in self.rows
        self.started = False
        self.skipped: list[dict] = []

    def add(self, batch: dict[str, np.ndarray]) -> None:
        if not self.started:
            self.started = True
            self.bar.restart_clock()  # the first output: start-up is over
        vec = np.asarray(batch["vector"], dtype=np.float32)
        for i, item_id in enumerate(batch["item_id"]):
            item_id = str(item_id)
            if item_id != self.current:
                self._close_item()
                if item_id in self.closed:
                    raise HaiEdgeError(f"Ray returned the rows of {item_id} out of order")
                self.current, self.current_start = item_id, len(self.rows)
            if batch["skip"][i]:
                path = str(batch["path"][i])
                self.skipped.append(skip_record(item_id, path,
                                                InputError(path, str(batch["skip"][i]))))
                self.closed.add(item_id)
                self.current = None
                self.bar.update(skipped=True)
                continue
            self.rows.append(SampleRow(str(batch["sample_id"][i]), item_id, int(batch["view"][i]),
                                       float(batch["start_s"][i]), float(batch["end_s"][i]),
                                       str(batch["aug"][i]), None))
            self.vectors.append(vec[i])

    def _close_item(self) -> None:
        if self.current is None:
            return
        self.closed.add(self.current)
        self.current = None
        self.items += 1
        self.bar.update()
        if self.items >= self.shard_items:
            self.flush()

    def finish(self) -> None:
        self._close_item()
        self.flush()

    def abandon(self) -> None:
        """After a failure: store the whole items received, drop the one still in flight."""
        if self.current is not None:
            del self.rows[self.current_start:], self.vectors[self.current_start:]
            self.current = None
        self.flush()

    def flush(self) -> None:
        if self.rows:
            write_rows(self.store, self.rows, [np.stack(self.vectors)])
        self.rows, self.vectors, self.items = [], [], 0


def _loopback_cluster(ray: Any) -> bool:
    """True when every node is this machine's loopback address (started here or by the caller,
    e.g. tests): nothing can join, so what is there now is all there will be."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return bool(nodes) and all(n.get("NodeManagerAddress") in ("127.0.0.1", "localhost", "::1")
                               for n in nodes)


def _workers(ray: Any, options: RayOptions, local: bool) -> int:
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    g, c = options.gpus_per_worker, options.cpus_per_worker
    workers = options.workers or max(1, int(gpus // g) if g else int((cpus - 1) // c))
    need_cpu, need_gpu = workers * c + 1, workers * g
    if cpus >= need_cpu and gpus >= need_gpu:
        return workers
    message = (f"Ray has {cpus:g} CPUs and {gpus:g} GPUs; teacher actors: {workers}, which "
               f"need {need_cpu:g} CPUs (one more for decoding) and {need_gpu:g} GPUs")
    if local:
        raise HaiEdgeError(f"{message}; use fewer --workers or --gpus-per-worker")
    print(f"teacher embed: {message}; waiting up to {ACTOR_START_TIMEOUT_S} s for the "
          f"autoscaler", file=sys.stderr, flush=True)
    return workers


@contextlib.contextmanager
def _data_context(ray: Any, remote: bool) -> Iterator[None]:
    """Ordered, quiet Ray Data execution; the previous settings come back afterwards."""
    ctx = ray.data.DataContext.get_current()
    wanted = {
        "enable_progress_bars": False,  # one hai-edge progress line instead of Ray's tqdm bars
        "print_on_execution_start": False,
        "raise_original_map_exception": True,  # the teacher's own error, not "UDF failed"
        # one block at a time per actor: Ray lets actors run queued tasks out of order, and with
        # preserve_order a block run early is held back until the blocks before it are done, so
        # results (shards, progress) would come back in bursts instead of as they are made
        "max_tasks_in_flight_per_actor": 1,
    }
    if remote:
        wanted["wait_for_min_actors_s"] = ACTOR_START_TIMEOUT_S
    wanted = {k: v for k, v in wanted.items() if hasattr(ctx, k)}  # older Ray: fewer knobs
    saved = {k: getattr(ctx, k) for k in wanted}
    order = ctx.execution_options.preserve_order
    loggers = [logging.getLogger(n) for n in ("ray.data", "ray")]
    levels = [lg.level for lg in loggers]
    for k, v in wanted.items():
        setattr(ctx, k, v)
    ctx.execution_options.preserve_order = True  # whole items arrive together, in corpus order
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(ctx, k, v)
        ctx.execution_options.preserve_order = order
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def embed_corpus_ray(
    teacher: str,
    items: Sequence[CorpusItem],
    store_dir: Any,
    *,
    info: TeacherInfo | None = None,
    spec: AudioFrontendSpec | None = None,
    views: int = 0,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
    shard_items: int = SHARD_ITEMS,
    options: RayOptions = RayOptions(),
) -> EmbeddingStore:
    """:func:`teacher_embed.embed_corpus` on Ray. ``teacher`` is a spec (``load_teacher``
    syntax) each actor loads itself; ``info`` saves the remote probe when already known."""
    if teacher.startswith("embeddings:"):
        raise HaiEdgeError("embeddings: teachers are a file import, not a teacher run; use the "
                           "local engine")
    if views < 0 or batch_size < 1 or shard_items < 1:
        raise HaiEdgeError("views must be >= 0, batch_size and shard_items >= 1")
    started_here = False
    with contextlib.ExitStack() as stack:
        ray = _import_ray(local=options.address is None)
        if not ray.is_initialized():
            stack.enter_context(ray_session(options, announce=progress))
            started_here = True
        local = started_here or _loopback_cluster(ray)
        workers = _workers(ray, options, local)
        info = info or remote_teacher_info(teacher, options)
        plan = plan_embedding(info, items, store_dir, spec=spec, views=views, seed=seed,
                              batch_size=batch_size, shard_items=shard_items, engine="ray")
        bar = Progress(len(plan.todo), progress)
        shards = _ItemShards(plan.store, shard_items, bar)
        try:
            if plan.todo:
                stack.enter_context(_data_context(ray, remote=not local))
                _run(ray, teacher, info, plan, shards, views=views, seed=seed,
                     batch_size=batch_size, workers=workers, options=options, local=local)
            shards.finish()
        finally:
            finish_run(plan.store, (it.item_id for it in plan.todo), shards.skipped)
    return plan.store


def _actor_restarts(ds: Any, local: bool) -> dict[str, Any]:
    """On a Ray started here, no actor restarts (a lost actor stops the run, which resumes from
    its shards): Ray Data passes constructor args by reference, and with restarts on, Ray's core
    logs an error line per actor saying such restarts may fail (ray-project/ray#53727). On a
    cluster, Ray Data's default (restart lost actors, e.g. on preempted nodes) is kept."""
    params = inspect.signature(ds.map_batches).parameters.values()
    if not local or not any(p.kind is p.VAR_KEYWORD for p in params):
        return {}
    return {"max_restarts": 0}


def _run(ray: Any, teacher: str, info: TeacherInfo, plan: Any, shards: _ItemShards, *,
         views: int, seed: int, batch_size: int, workers: int, options: RayOptions,
         local: bool) -> None:
    todo = plan.todo
    # about 4 blocks per actor (output streams back block by block: progress, shards), each with
    # at least one teacher batch of rows (else Ray Data bundles blocks into fewer, bigger tasks)
    per_block = max(math.ceil(batch_size / (views + 1)),
                    min(shards.shard_items, math.ceil(len(todo) / (4 * workers))))
    # workers open "file" (absolute: their working directory is not the driver's); "path" is the
    # path as listed, for the skipped records
    ds = ray.data.from_items([{"item_id": it.item_id, "path": str(it.path),
                               "file": os.path.abspath(it.path)} for it in todo],
                             override_num_blocks=math.ceil(len(todo) / per_block))
    ds = ds.flat_map(_decode_item, fn_kwargs={"info": info, "wspec": plan.wspec,
                                              "views": views, "seed": seed}, num_cpus=1)
    with warnings.catch_warnings():  # max_restarts goes through Ray's deprecated **remote_args
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        ds = ds.map_batches(
            _TeacherActor, batch_size=batch_size, batch_format="numpy", concurrency=workers,
            fn_constructor_kwargs={"teacher_spec": teacher, "device": options.actor_device,
                                   "dim": int(info.embedding_dim)},
            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker or None,
            **_actor_restarts(ds, local))
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            shards.add(batch)
    except Exception as exc:  # a task/actor failure surfaces as Ray's own exception types
        shards.abandon()
        stored = len(plan.store.shard_paths())
        raise HaiEdgeError(f"{_clean_error(exc, 'a Ray task failed')} ({stored} shards stored; "
                           f"re-run the same command to resume)") from None
