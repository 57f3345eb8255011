"""Planning: distinct runs behind targets, runs shared between artifacts, GPU-hours."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError

from ..costs.table import read_costs as _costs


def passes_per_step(cfg: Mapping[str, Any], costs: Mapping[str, Any] | None = None,
                    attacked: float = 1.0) -> float:
    """Forward+backward passes per batch: each attack step is one, plus the update's.

    ``config/costs.yaml`` ``passes`` gives each method's count as attack steps plus extra passes;
    a method that wraps a base method (``base_param``) counts as its base. ``attacked``: the share
    of the batch the attack runs on (Subset AT attacks A only: 1 + steps |A|/|D|, notes §5.2).
    With ``freeze: trunk`` the extra passes cost ``frozen_trunk_pass`` each (the trunk runs forward
    only, no backward through it); attack steps still back-propagate through the trunk to the input.
    """
    c = costs or _costs()
    m = cfg["method"]
    name = m["name"]
    base_param = c.get("method_base_param", {}).get(name)
    if base_param:
        name = m.get(base_param, name)
    per = c.get("passes", {}).get(name, {"steps": 1, "extra": 2})
    extra = float(per.get("extra", 0))
    if cfg.get("freeze") == "trunk":
        extra *= float(c.get("frozen_trunk_pass", 0.34))
    return int(per.get("steps", 1)) * int(cfg["attack"]["steps"]) * float(attacked) + extra


def attacked_fraction(cfg: Mapping[str, Any], graph: Any = None) -> float:
    """The share of each batch the run's method attacks (1 but for subset methods), from the
    method's own params; a ranking analysis's share comes from the analysis class, unrun."""
    from ..analyses import ANALYSES
    from ..methods import METHODS
    from ..costs.memory import num_classes, split_images

    name = cfg["method"]["name"]
    if name not in METHODS:
        return 1.0
    scale = getattr(graph, "scale", None)
    ds = cfg["data"]["primary"]
    classes = num_classes(ds, scale)
    n_train = split_images(ds, "train", scale) or 0

    def ref_fraction(ref: Mapping[str, Any]) -> float | None:
        node = graph.analyses.get(ref.get("analysis")) if graph is not None else None
        if node is None:
            return None
        return ANALYSES.get(node.kind).key_fraction(node.params, ref.get("key"), classes)

    return float(METHODS.get(name).attacked_fraction(cfg["method"], classes, n_train, ref_fraction))


def hours_per_pass_epoch(model: str, gpu: str, costs: Mapping[str, Any]) -> float | None:
    """One pass-epoch of ``model`` on ``gpu`` (config/costs.yaml ``gpus``); None when unknown."""
    v100 = costs["model_hours_per_pass_epoch"].get(model)
    if v100 is None:
        raise ConfigError(f"config/costs.yaml: no cost for model {model!r}")
    if gpu == "v100" and "gpus" not in costs:
        return float(v100)
    g = costs.get("gpus", {}).get(gpu)
    if g is None:
        raise ConfigError(f"config/costs.yaml: gpus has no entry {gpu!r}; known: {', '.join(costs.get('gpus', {}))}")
    measured = (g.get("hours_per_pass_epoch") or {}).get(model)
    if measured is not None:
        return float(measured)
    if g.get("relative"):
        return float(v100) / float(g["relative"])
    return float(v100) / float(g["relative_assumed"]) if g.get("relative_assumed") else None


def assumed(gpu: str, costs: Mapping[str, Any] | None = None) -> bool:
    """Are ``gpu``'s hours an assumed speed-up of the V100 figures rather than timed ones?"""
    g = (costs or _costs()).get("gpus", {}).get(gpu, {})
    return not g.get("hours_per_pass_epoch") and not g.get("relative") and bool(g.get("relative_assumed"))


def train_images(cfg: Mapping[str, Any], graph: Any = None, costs: Mapping[str, Any] | None = None) -> int:
    """Training images per epoch: the split, cut to ``pool`` / ``n_train`` and ``parts``, then to the subset (a
    difficulty subset's ``n`` when ``graph`` can look the analysis up, a class subset's share)."""
    c = costs or _costs()
    d = cfg["data"]
    n = int(d["n_train"] or d.get("pool") or c["train_images"].get(d["primary"], 50000))
    if d.get("parts"):  # the used parts' share of the split (BiaMAT's cifar-A/B/C)
        from ..data.feeding.parts import used_fraction

        n = round(n * used_fraction(d["parts"], c["train_images"].get(d["primary"])))
    if d.get("composite"):  # mixed batches: the epoch is the composite sampler's, both parts counted
        return composite_images(cfg, n, graph)
    sub = d.get("subset") or {}
    if "indices" in sub:
        n = min(n, len(sub["indices"]))
    elif "classes" in sub:
        from ..data.catalog import DATASETS

        n = round(n * len(sub["classes"]) / DATASETS.get(d["primary"]).num_classes)
    elif "analysis" in sub and graph is not None and sub["analysis"] in graph.analyses:
        k = graph.analyses[sub["analysis"]].params.get("n")
        n = min(n, int(k)) if isinstance(k, int) else n
    return n


def composite_images(cfg: Mapping[str, Any], n_primary: int, graph: Any = None) -> int:
    """Images per epoch of a ``data.composite`` run, both parts: the sampler's batches times the batch size
    (``epoch_images`` images, one pass over the primary's share of each batch with ``primary_pass``, or
    one pass over the extra split with ``order: pass``; a 50/50 batch of 256 over a 50k primary is
    about 100k images)."""
    from ..costs.memory import split_images
    from ..data.feeding.composite import steps_per_epoch

    comp, bs = cfg["data"]["composite"], int(cfg["batch_size"])
    n_extra = None
    if comp.get("order") == "pass":
        n_extra = split_images(comp["dataset"], comp.get("split", "train"), getattr(graph, "scale", None))
        if n_extra is None:
            raise ConfigError(f"run {cfg.get('name')}: no size known for {comp['dataset']}:{comp.get('split', 'train')}")
    return steps_per_epoch(comp, n_primary, bs, n_extra, bool(cfg["data"]["drop_last"])) * bs


def gpu_hours(cfg: Mapping[str, Any], costs: Mapping[str, Any] | None = None, gpu: str = "v100",
              graph: Any = None) -> float | None:
    """Training passes only: per-epoch evaluations (``selection``, ``eval_logs``) are not counted (README)."""
    from ..config.imports import imported

    c = costs or _costs()
    if imported(cfg):  # an external checkpoint: verified and converted, no training
        return 0.0
    model = cfg["model"]["name"]
    per = hours_per_pass_epoch(model, gpu, c)
    if per is None:
        return None
    n = train_images(cfg, graph, c)
    factor = c.get("method_factor", {}).get(cfg["method"]["name"], 1.0)
    factor *= c.get("dataset_factor", {}).get(cfg["data"]["primary"], 1.0)
    return float(cfg["epochs"]) * (n / 50000) * per * passes_per_step(cfg, c, attacked_fraction(cfg, graph)) * factor


def _forward_hours(node: Any, configs: Mapping[str, Mapping[str, Any]], costs: Mapping[str, Any] | None = None,
                       gpu: str = "v100") -> float | None:
    """GPU-hours of an analysis node's forward passes (``Analysis.forward_images``): each run model's
    images x ``eval_passes.forward`` pass-epochs per 50,000; None where a model has no figure for ``gpu``."""
    from ..analyses import ANALYSES

    c = costs or _costs()
    fwd = float(c["eval_passes"]["forward"])
    total = 0.0
    for param, n in ANALYSES.get(node.kind).forward_images(node.params).items():
        ref = node.params.get(param)
        cfg = configs.get(ref.get("run") if isinstance(ref, Mapping) else ref)
        if cfg is None:
            continue
        per = hours_per_pass_epoch(cfg["model"]["name"], gpu, c)
        if per is None:
            return None
        total += int(n) / 50000 * fwd * per
    return total


def default_gpu_mem_gib(costs: Mapping[str, Any] | None = None) -> float:
    """The reference GPU's memory (config/costs.yaml ``gpus.v100.memory_gib``), else 32 GiB."""
    from ..costs.memory import DEFAULT_GPU_MEM_GIB

    try:
        c = costs if costs is not None else _costs()
    except ConfigError:
        return DEFAULT_GPU_MEM_GIB
    mem = (c.get("gpus", {}).get("v100") or {}).get("memory_gib")
    return float(mem) if mem else DEFAULT_GPU_MEM_GIB


def plan(dag, targets: list[str], gpu_mem_gib: float | None = None) -> dict[str, Any]:
    """Which artifacts the targets name, the distinct runs they need, what they cost in time and
    device memory, and where ``perf.data_placement: auto`` would put their data on a
    ``gpu_mem_gib`` card (default: ``default_gpu_mem_gib``)."""
    from ..config.imports import imported
    from ..costs.memory import run_memory

    mem_gib = float(gpu_mem_gib) if gpu_mem_gib is not None else default_gpu_mem_gib()
    arts = []
    for t in targets:
        hit = [a for a in dag.artifacts() if t in dag.artifact_outputs(a) or t in (f"{a.paper}/{a.name}", a.name)
               or t in a.aliases or t in (a.paper, f"results/{a.paper}") or f"results/{t}" in dag.artifact_outputs(a)]
        if not hit:
            raise ConfigError(f"target {t!r} is no artifact output; see `reproduce list`")
        arts += [a for a in hit if a not in arts]
    users: dict[str, list[str]] = {}
    for a in arts:
        for rid in dag.train_jobs([a]):
            users.setdefault(rid, []).append(f"{a.paper}/{a.name}")
    runs = []
    for rid, used_by in users.items():
        cfg = dag.configs[rid]
        method = "import" if imported(cfg) else cfg["method"]["name"]
        runs.append({"run_id": rid, "model": cfg["model"]["name"], "method": method,
                     "epochs": cfg["epochs"], "gpu_hours": round(gpu_hours(cfg, graph=dag.graph) or 0.0, 2),
                     "h100_hours": _round(gpu_hours(cfg, gpu="h100", graph=dag.graph)), "artifacts": used_by,
                     "memory": run_memory(cfg, gpu_mem_gib=mem_gib, scale=dag.scale)})
    analyses = analysis_costs(dag, arts)
    h100 = [r["h100_hours"] for r in runs] + [x["h100_hours"] for x in analyses]
    per_artifact = {}
    for name in [f"{a.paper}/{a.name}" for a in arts]:  # a shared run counts in every artifact that reads it
        mine = [r for r in runs if name in r["artifacts"]]
        mine_a = [x for x in analyses if name in x["artifacts"]]
        hs = [r["h100_hours"] for r in [*mine, *mine_a]]
        per_artifact[name] = {"runs": len(mine), "analyses": len(mine_a),
                              "gpu_hours": round(sum(r["gpu_hours"] for r in [*mine, *mine_a]), 1),
                              "h100_hours": None if None in hs else round(sum(hs), 1)}
    return {"per_artifact": per_artifact, "scale": dag.scale.name, "gpu_mem_gib": mem_gib, "artifacts": [f"{a.paper}/{a.name}" for a in arts],
            "runs": runs, "analyses": analyses,
            "shared": [r for r in runs if len(r["artifacts"]) > 1],
            "total_gpu_hours": round(sum(r["gpu_hours"] for r in [*runs, *analyses]), 1),
            # unknown as soon as one run's model has no H100 figure: a partial sum would mislead
            "total_h100_hours": None if None in h100 else round(sum(h100), 1),
            "h100_assumed": assumed("h100")}


def _pass_hours(dag: Any, node: Any, passes: float, gpu: str) -> float | None:
    """Forward+backward ``passes`` over the training images of the run the analysis reads, at that
    run's model cost (``Analysis.pass_epochs``)."""
    src = [i for k, i in node.deps if k == "run"]
    if not src:
        return 0.0
    cfg, c = dag.configs[src[0]], _costs()
    per = hours_per_pass_epoch(cfg["model"]["name"], gpu, c)
    if per is None:
        return None
    factor = c.get("dataset_factor", {}).get(cfg["data"]["primary"], 1.0)
    return float(passes) * (train_images(cfg, dag.graph, c) / 50000) * per * factor


def analysis_hours(dag: Any, aid: str, gpu: str = "v100") -> float | None:
    """GPU-hours of an analysis node: its declared forward+backward passes (``Analysis.pass_epochs``)
    plus its forward-only images (``Analysis.forward_images``); None where a model has no figure for
    ``gpu``, 0 where it declares neither (negligible beside training)."""
    from ..analyses import ANALYSES

    node = dag.graph.analyses[aid]
    passes = ANALYSES.get(node.kind).pass_epochs(node.params)
    back = 0.0 if passes is None else _pass_hours(dag, node, passes, gpu)
    fwd = _forward_hours(node, dag.configs, gpu=gpu)
    return None if back is None or fwd is None else back + fwd


def analysis_costs(dag: Any, arts: list[Any]) -> list[dict[str, Any]]:
    """The analyses behind the artifacts that cost GPU time (the others are negligible), each once."""
    users: dict[str, list[str]] = {}
    for a in arts:
        for kind, nid in dag.upstream([a]):
            if kind == "analysis":
                users.setdefault(nid, []).append(f"{a.paper}/{a.name}")
    out = []
    for aid, used_by in users.items():
        hours = analysis_hours(dag, aid)
        if hours:
            out.append({"analysis_id": aid, "kind": dag.graph.analyses[aid].kind, "gpu_hours": round(hours, 3),
                        "h100_hours": _round(analysis_hours(dag, aid, "h100")), "artifacts": used_by})
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / (1 << 30):.1f}"


def _memory_cell(m: Mapping[str, Any] | None) -> str:
    """'data + model+activations GiB, placement' ('!' when even streamed data leaves too little room)."""
    if not m:
        return "n/a"
    rest = m["model_bytes"] + m["activation_bytes"]
    where = m["placement"] or "n/a"
    return f"{_gib(m['data_bytes'])}+{_gib(rest)} {where}{'' if m.get('fits') in (True, None) else '!'}"


RUN_WARN_HOURS = 10_000  # the papers' largest single run (ImageNet-200 ESAT) plans about 212 V100-hours
TOTAL_WARN_HOURS = 100_000  # every target of all four papers together plans about 28,000


def size_warnings(p: Mapping[str, Any]) -> list[str]:
    """Lines for a run or a plan far above anything the papers need: usually a typo in epochs or data."""
    out = [f"warning: run {r['run_id']} plans {r['gpu_hours']:,.0f} V100-hours, above {RUN_WARN_HOURS:,}; "
           "check its epochs, data and model" for r in p["runs"] if r["gpu_hours"] > RUN_WARN_HOURS]
    if p["total_gpu_hours"] > TOTAL_WARN_HOURS:
        out.append(f"warning: these targets plan {p['total_gpu_hours']:,.0f} V100-hours in all, above "
                   f"{TOTAL_WARN_HOURS:,}")
    return out


def format_plan(p: Mapping[str, Any]) -> str:
    lines = [f"scale: {p['scale']}", f"artifacts: {', '.join(p['artifacts'])}",
             f"distinct training runs: {len(p['runs'])} ({len(p['shared'])} shared between artifacts)", ""]
    w = max((len(r["run_id"]) for r in p["runs"]), default=10)
    cells = [_memory_cell(r.get("memory")) for r in p["runs"]]
    mw = max([len("device GiB"), *map(len, cells)])
    lines.append(f"{'run':<{w}}  {'model':<10} {'method':<8} {'epochs':>6} {'V100-h':>8} {'H100-h':>8}  "
                 f"{'device GiB':<{mw}}  used by")
    for r, cell in zip(p["runs"], cells):
        lines.append(f"{r['run_id']:<{w}}  {r['model']:<10} {r['method']:<8} {r['epochs']:>6} "
                     f"{r['gpu_hours']:>8.1f} {_fmt(r.get('h100_hours')):>8}  {cell:<{mw}}  "
                     f"{', '.join(r['artifacts'])}")
    if p.get("analyses"):
        aw = max(len("analysis"), *(len(x["analysis_id"]) for x in p["analyses"]))
        lines += ["", f"{'analysis':<{aw}}  {'kind':<14} {'V100-h':>8} {'H100-h':>8}  used by"]
        lines += [f"{x['analysis_id']:<{aw}}  {x['kind']:<14} {x['gpu_hours']:>8.2f} {_fmt(x.get('h100_hours')):>8}  "
                  f"{', '.join(x['artifacts'])}" for x in p["analyses"]]
    if len(p.get("per_artifact", {})) > 1:
        aw = max(len(a) for a in p["per_artifact"])
        lines += ["", f"{'artifact':<{aw}}  {'runs':>5} {'V100-h':>9} {'H100-h':>9}  (a shared run counts in each)"]
        lines += [f"{a:<{aw}}  {v['runs']:>5} {v['gpu_hours']:>9.1f} {_fmt(v['h100_hours']):>9}"
                  for a, v in p["per_artifact"].items()]
    h100_note = ("H100 assumed at config/costs.yaml's relative_assumed speed-up until timed with "
                 "benchmarks/gpu_step.py --epoch-timing" if p.get("h100_assumed")
                 else "H100 n/a until measured with benchmarks/gpu_step.py --epoch-timing")
    lines.append(f"\ntotal: {p['total_gpu_hours']} V100 GPU-hours, {_fmt(p.get('total_h100_hours'))} H100 GPU-hours "
                 f"(from config/costs.yaml; {h100_note})")
    lines += size_warnings(p)
    if "gpu_mem_gib" in p:
        lines.append(f"device GiB: training data + (weights, gradients, optimizer state, activations), estimated; "
                     f"then where perf.data_placement: auto puts the data on a {p['gpu_mem_gib']:g} GiB card "
                     "(--gpu-mem-gib): device, or host (streamed from pinned memory); '!' = the model alone "
                     "may not fit")
    return "\n".join(lines)
