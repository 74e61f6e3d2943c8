"""Front-door causal module of CleanPose: a mediator self-attention branch and a cross-attention branch
over a per-category confounder dictionary, fused by a sigmoid gate.

Lin et al., "CleanPose: Category-Level Object Pose Estimation via Causal Learning and Knowledge
Distillation", ICCV 2025 (chrislin0621/CleanPose ``model/Net_modules.py`` ``FrontDoorEncoder``;
notes/cleanpose.md §2). Front-door adjustment ``P(Y|do(X)) = sum_m P(m|X) sum_x' P(x') P(Y|x', m)``
approximated as in Causal Attention (Yang et al., CVPR 2021) / GOAT (Wang et al., CVPR 2024)::

    A   = SelfAttn^{n_self}(Linear_l(L))             # E_{m|x}[m], mediator = the input tokens
    Bx  = CrossAttn^{n_cross}(Linear_g(L), dict)      # E_{x'}[x'], keys/values = dictionary entries
    S   = LayerNorm(A + Bx)
    w   = sigmoid(W_a S + W_o L)                      # one gate per token
    out = w * S + (1 - w) * L

Interface (generic, any model can use it behind a config flag): ``FrontDoorModule(x, class_idx)``
with ``x`` a per-instance feature ``(B, C)`` or tokens ``(B, T, C)`` and ``class_idx (B,)`` 0-based
category indices; returns the refined feature of the same shape. In training mode it also enqueues
the detached mean token (of the output, as released, or of the input) into the dictionary.

Defects of the release fixed here (notes §5): the dictionary is a registered buffer (checkpointed,
moves with ``.to()``, synchronised by DDP's buffer broadcast); the update rule is ``fifo`` (released) or
``momentum`` (each feature pulls its most similar same-class entry, an online K-means); inference is
deterministic (attention over *all* valid entries, no random draw; training draws ``select_num``
entries per instance); :func:`build_dictionary` fills it from training features ("first" as
released, or K-means prototypes).

Initial dictionaries on disk (``demopose build-dictionary``): :func:`collect_dictionary_features` runs a
model in eval mode and records, for every :class:`FrontDoorModule` in it, the feature it would enqueue;
:func:`save_dictionary_file` writes the banks (one per module, by module name) atomically and
:func:`load_dictionary_file` / :func:`init_dictionary` read them back (shape-checked) into a module, which
is what the models' ``causal.dict_init`` option does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from demopose._checks import check_shape

__all__ = [
    "DICTIONARY_FORMAT",
    "ConfounderDictionary",
    "CrossAttentionBlock",
    "FrontDoorModule",
    "FrontDoorOptions",
    "SelfAttentionBlock",
    "build_dictionary",
    "collect_dictionary_features",
    "front_door_modules",
    "init_dictionary",
    "kmeans",
    "load_dictionary_file",
    "save_dictionary_file",
]

DICTIONARY_FORMAT = "demopose-confounder-dictionary"
"""``format`` field of the files written by :func:`save_dictionary_file`."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontDoorOptions:
    """Options of a :class:`FrontDoorModule` inside a model (``model.args.causal``: CleanPose's keypoint
    tokens; DeMo-Pose's fused features use the subclass
    :class:`~demopose.models.feature_adjust.CausalOptions`).

    Attributes:
        enabled: build and apply the module.
        dict_size: entries per class ``Q`` (CleanPose: 80 NOCS, 100 HouseCat6D); select_num: entries drawn
            per instance in training (12).
        heads, ffn: attention heads and FFN width; None: those of the network the module sits in.
        self_blocks, cross_blocks: mediator self-attention (2) and dictionary cross-attention (4) blocks.
        update: ``fifo`` (released) | ``momentum`` (online K-means); momentum: its ``m`` (0.99).
        enqueue: ``output`` (released) | ``input`` (the queries' space).
        dict_init: a file of ``demopose build-dictionary`` filling the dictionary at construction (a
            checkpoint loaded afterwards overrides it).
    """

    enabled: bool = False
    dict_size: int = 80
    select_num: int = 12
    heads: int | None = None
    ffn: int | None = None
    self_blocks: int = 2
    cross_blocks: int = 4
    update: str = "fifo"
    momentum: float = 0.99
    enqueue: str = "output"
    dict_init: str | None = None


class SelfAttentionBlock(nn.Module):
    """Pre-LN transformer block: ``x + MHSA(LN x)``, then ``x + FFN(LN x)``. ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, dim: int, heads: int = 4, ffn: int = 256) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """Pre-LN decoder block: cross-attention to ``memory``, self-attention, FFN, each residual.

    ``x (B, T, D), memory (B, S, D), memory_mask (B, S) bool (True = ignore) | None -> (B, T, D)``.
    """

    def __init__(self, dim: int, heads: int = 4, ffn: int = 256) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.cross(self.norm1(x), memory, memory, key_padding_mask=memory_mask, need_weights=False)[0]
        h = self.norm2(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.norm3(x))


class ConfounderDictionary(nn.Module):
    """Per-category feature dictionary held in buffers (saved in the state dict).

    Buffers: ``bank (C, Q, D)``, ``ptr (C,)`` next FIFO slot, ``count (C,)`` valid entries.

    Args:
        num_classes: ``C``; size: ``Q`` entries per class; dim: ``D``.
        update: ``"fifo"`` (released: the oldest entry is replaced) or ``"momentum"`` (each new
            feature moves its most cosine-similar entry: ``e <- m e + (1 - m) f``; while a class is not
            full, new features are appended).
        momentum: ``m`` of the momentum rule.
    """

    def __init__(self, num_classes: int, size: int, dim: int,
                 update: Literal["fifo", "momentum"] = "fifo", momentum: float = 0.99) -> None:
        super().__init__()
        if update not in ("fifo", "momentum"):
            raise ValueError(f"ConfounderDictionary.update: expected 'fifo' or 'momentum', got {update!r}")
        if num_classes < 1 or size < 1 or dim < 1:
            raise ValueError(f"ConfounderDictionary: expected positive sizes, got C={num_classes} Q={size} D={dim}")
        self.update_rule, self.momentum = update, float(momentum)
        self.register_buffer("bank", torch.zeros(num_classes, size, dim))
        self.register_buffer("ptr", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.long))

    @property
    def num_classes(self) -> int:
        return self.bank.shape[0]

    @property
    def size(self) -> int:
        return self.bank.shape[1]

    def fill(self, bank: torch.Tensor, count: torch.Tensor | None = None) -> None:
        """Replace the contents: ``bank (C, Q, D)``, ``count (C,)`` (default: all entries valid)."""
        check_shape(bank, f"{self.num_classes} {self.size} {self.bank.shape[2]}", "bank")
        self.bank.copy_(bank)
        c = torch.full_like(self.count, self.size) if count is None else torch.as_tensor(count).to(self.count)
        self.count.copy_(c.clamp(0, self.size))
        self.ptr.copy_(self.count % self.size)

    def lookup(self, class_idx: torch.Tensor, select: int | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Entries of each instance's class.

        Args:
            class_idx: ``(B,)`` 0-based class indices.
            select: draw this many valid entries per instance at random (training); None: all entries.

        Returns:
            ``entries (B, S, D)`` and ``ignore (B, S)`` bool (True for invalid slots; a class with no
            valid entry exposes its zero slots, so attention stays finite).
        """
        entries = self.bank[class_idx]  # (B, Q, D), a copy
        valid = torch.arange(self.size, device=class_idx.device) < self.count[class_idx, None]
        valid = valid | ~valid.any(dim=1, keepdim=True)
        if select is None or select >= self.size:
            return entries, ~valid
        score = torch.rand(valid.shape, device=valid.device, generator=generator)
        score = torch.where(valid, score, torch.full_like(score, -1.0))
        idx = torch.topk(score, select, dim=1).indices  # valid entries first, random order
        keep = torch.gather(valid, 1, idx)
        return torch.gather(entries, 1, idx[..., None].expand(-1, -1, entries.shape[2])), ~keep

    @torch.no_grad()
    def enqueue(self, feats: torch.Tensor, class_idx: torch.Tensor) -> None:
        """Add ``feats (B, D)`` of classes ``class_idx (B,)`` by the update rule (vectorised)."""
        feats = feats.detach().to(self.bank.dtype)
        C, Q = self.num_classes, self.size
        one_hot = F.one_hot(class_idx, C)  # (B, C)
        rank = ((one_hot.cumsum(0) - 1) * one_hot).sum(1)  # order of each sample within its class
        n_new = one_hot.sum(0)  # (C,)
        if self.update_rule == "momentum":
            full = self.count[class_idx] >= Q
            sim = torch.einsum("bd,bqd->bq", F.normalize(feats, dim=-1), F.normalize(self.bank[class_idx], dim=-1))
            nearest = sim.argmax(1)
            if full.any():
                c, j, f = class_idx[full], nearest[full], feats[full]
                flat = c * Q + j
                s = torch.zeros(C * Q, feats.shape[1], device=feats.device).index_add_(0, flat, f)
                n = torch.zeros(C * Q, device=feats.device).index_add_(0, flat, torch.ones_like(flat, dtype=s.dtype))
                hit = n > 0
                bank = self.bank.view(C * Q, -1)
                bank[hit] = self.momentum * bank[hit] + (1 - self.momentum) * s[hit] / n[hit, None]
            keep = ~full
            if not keep.any():
                return
            feats, class_idx = feats[keep], class_idx[keep]
            one_hot = F.one_hot(class_idx, C)
            rank = ((one_hot.cumsum(0) - 1) * one_hot).sum(1)
            n_new = one_hot.sum(0)
        # FIFO: sample with rank r goes to slot (ptr + r) % Q; only the last Q per class survive
        last = rank >= (n_new[class_idx] - Q)
        slot = (self.ptr[class_idx] + rank) % Q
        self.bank[class_idx[last], slot[last]] = feats[last]
        self.ptr.copy_((self.ptr + n_new) % Q)
        self.count.copy_((self.count + n_new).clamp(max=Q))


class FrontDoorModule(nn.Module):
    """CleanPose's front-door encoder with its dictionary (module docstring).

    Args:
        num_classes: categories ``C``; dim: feature width ``D`` (256).
        dict_size: entries per class ``Q`` (80 NOCS, 100 HouseCat6D); select_num: entries drawn per
            instance in training (12).
        heads, ffn: attention heads (4) and FFN width (256); self_blocks (2), cross_blocks (4).
        update, momentum: :class:`ConfounderDictionary` rule.
        enqueue: ``"output"`` (released: the module's output) or ``"input"`` (the queries' space).

    Shapes:
        ``x (B, D)`` or ``(B, T, D)``, ``class_idx (B,)`` 0-based -> same shape as ``x``.
    """

    def __init__(self, num_classes: int, dim: int = 256, dict_size: int = 80, select_num: int = 12,
                 heads: int = 4, ffn: int = 256, self_blocks: int = 2, cross_blocks: int = 4,
                 update: Literal["fifo", "momentum"] = "fifo", momentum: float = 0.99,
                 enqueue: Literal["output", "input"] = "output") -> None:
        super().__init__()
        if enqueue not in ("output", "input"):
            raise ValueError(f"FrontDoorModule.enqueue: expected 'output' or 'input', got {enqueue!r}")
        self.dictionary = ConfounderDictionary(num_classes, dict_size, dim, update, momentum)
        self.select_num, self.enqueue_from = int(select_num), enqueue
        self.in_local = nn.Linear(dim, dim)
        self.in_global = nn.Linear(dim, dim)
        self.self_blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, ffn) for _ in range(self_blocks))
        self.cross_blocks = nn.ModuleList(CrossAttentionBlock(dim, heads, ffn) for _ in range(cross_blocks))
        self.norm = nn.LayerNorm(dim)
        self.gate_s, self.gate_x = nn.Linear(dim, 1), nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, class_idx: torch.Tensor, generator: torch.Generator | None = None,
                update: bool | None = None) -> torch.Tensor:
        """Refine ``x``; ``update`` (default: ``self.training``) enqueues the batch afterwards."""
        flat = x.dim() == 2
        tokens = x.unsqueeze(1) if flat else x
        dims = check_shape(tokens, f"B T {self.dictionary.bank.shape[2]}", "x")
        class_idx = class_idx.long().reshape(-1)
        check_shape(class_idx, "B", "class_idx", dims)
        if class_idx.numel() and (int(class_idx.min()) < 0 or int(class_idx.max()) >= self.dictionary.num_classes):
            raise ValueError(f"class_idx: expected 0-based indices < {self.dictionary.num_classes}, "
                             f"got {class_idx.tolist()}")
        select = self.select_num if self.training else None
        memory, ignore = self.dictionary.lookup(class_idx, select, generator)
        a = self.in_local(tokens)
        for blk in self.self_blocks:
            a = blk(a)
        b = self.in_global(tokens)
        for blk in self.cross_blocks:
            b = blk(b, memory.to(b.dtype), ignore)
        s = self.norm(a + b)
        w = torch.sigmoid(self.gate_s(s) + self.gate_x(tokens))
        out = w * s + (1 - w) * tokens
        if self.training if update is None else update:
            src = out if self.enqueue_from == "output" else tokens
            self.dictionary.enqueue(src.detach().mean(dim=1), class_idx)
        return out[:, 0] if flat else out


def kmeans(x: torch.Tensor, k: int, iters: int = 50, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's K-means with k-means++ seeding. ``x (M, D), k <= M -> centres (k, D)``."""
    m = x.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"kmeans: expected 1 <= k <= {m} points, got k={k}")
    idx = [int(torch.randint(m, (1,), generator=generator))]
    d2 = ((x - x[idx[0]]) ** 2).sum(1)
    for _ in range(1, k):  # k picks, vectorised over points
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / m)
        j = int(torch.multinomial(p, 1, generator=generator))
        idx.append(j)
        d2 = torch.minimum(d2, ((x - x[j]) ** 2).sum(1))
    c = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        s = torch.zeros_like(c).index_add_(0, assign, x)
        n = torch.bincount(assign, minlength=k).to(x.dtype)
        new = torch.where(n[:, None] > 0, s / n.clamp(min=1)[:, None], c)
        if torch.allclose(new, c):
            break
        c = new
    return c


def build_dictionary(features: torch.Tensor, class_idx: torch.Tensor, num_classes: int, size: int,
                     method: Literal["first", "kmeans"] = "first", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial dictionary from training features.

    Args:
        features: ``(M, D)`` one feature per training instance; class_idx: ``(M,)`` 0-based.
        size: entries per class ``Q``.
        method: ``"first"`` (the release: the first ``Q`` instances of each class, in the given order)
            or ``"kmeans"`` (``Q`` K-means prototypes per class; all its features when fewer).

    Returns:
        ``bank (C, Q, D)`` and ``count (C,)`` valid entries per class.
    """
    check_shape(features, "M D", "features")
    if method not in ("first", "kmeans"):
        raise ValueError(f"build_dictionary.method: expected 'first' or 'kmeans', got {method!r}")
    g = torch.Generator().manual_seed(int(seed))
    feats = features.detach().float().cpu()
    cls = class_idx.long().cpu()
    bank = torch.zeros(num_classes, size, feats.shape[1])
    count = torch.zeros(num_classes, dtype=torch.long)
    for c in range(num_classes):  # loop over categories
        f = feats[cls == c]
        if len(f) == 0:
            log.warning("build_dictionary: no training feature of class index %d; its entries stay empty", c)
            continue
        chosen = kmeans(f, size, generator=g) if method == "kmeans" and len(f) > size else f[:size]
        bank[c, : len(chosen)] = chosen
        count[c] = len(chosen)
    return bank, count


# --------------------------------------------------------------------------------------------------
# initial dictionaries on disk
# --------------------------------------------------------------------------------------------------


def front_door_modules(model: nn.Module) -> dict[str, FrontDoorModule]:
    """Every :class:`FrontDoorModule` inside ``model``, by its ``named_modules`` name (``""`` for the model)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, FrontDoorModule)}


@torch.no_grad()
def collect_dictionary_features(model: nn.Module, batches: Iterable[Mapping[str, Any]],
                                device: torch.device | str = "cpu") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Run ``model`` in eval mode over ``batches`` and record, per front-door module, the feature its
    update rule would enqueue: the mean token of its output (``enqueue="output"``) or of its input.

    The dictionaries are not modified (eval mode). With ``enqueue="output"`` the recorded feature depends
    on the module's current dictionary (all zeros in a fresh model: the cross-attention then sees empty
    slots), exactly as the first training steps would.

    Args:
        model: any model whose ``forward(batch)`` runs its front-door module(s) (moved to ``device``).
        batches: dicts of tensors (e.g. a DataLoader over :class:`~demopose.data.instances.InstanceDataset`).

    Returns:
        ``{module name: (features (M, D) float32 CPU, class_idx (M,) 0-based)}`` in batch order.

    Raises:
        ValueError: the model has no front-door module.
    """
    modules = front_door_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no front-door module (is its causal option on?)")
    feats: dict[str, list[torch.Tensor]] = {n: [] for n in modules}
    classes: dict[str, list[torch.Tensor]] = {n: [] for n in modules}

    def hook(name: str, mod: FrontDoorModule):
        def fn(_m, args, out):
            x, cls = args[0], args[1]
            src = out if mod.enqueue_from == "output" else x
            feats[name].append((src.mean(dim=1) if src.dim() == 3 else src).float().cpu())
            classes[name].append(cls.long().reshape(-1).cpu())
        return fn

    handles = [m.register_forward_hook(hook(n, m)) for n, m in modules.items()]
    was_training = model.training
    model.eval().to(device)
    try:
        for batch in batches:
            model({k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()})
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = {}
    for n in modules:
        if not feats[n]:
            raise ValueError(f"collect_dictionary_features: module {n!r} never ran (no batches?)")
        out[n] = torch.cat(feats[n]), torch.cat(classes[n])
    return out


def save_dictionary_file(path: str | Path, banks: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                         **meta: Any) -> None:
    """Write initial dictionaries atomically: ``banks = {module name: (bank (C, Q, D), count (C,))}``
    plus free-form ``meta`` (method, source model, checkpoint, instance count, ...)."""
    from demopose.io import atomic_path

    mods = {}
    for name, (bank, count) in banks.items():
        check_shape(bank, "C Q D", f"banks[{name!r}] bank")
        check_shape(count, "C", f"banks[{name!r}] count", {"C": bank.shape[0]})
        mods[name] = {"bank": bank.detach().float().cpu().contiguous(), "count": count.long().cpu()}
    with atomic_path(path) as tmp:
        torch.save({"format": DICTIONARY_FORMAT, "version": 1, "modules": mods, "meta": dict(meta)}, tmp)


def load_dictionary_file(path: str | Path) -> dict[str, Any]:
    """Read a file of :func:`save_dictionary_file`: ``{"modules": {name: {"bank", "count"}}, "meta": {...}}``.

    Raises:
        FileNotFoundError: no such file. ValueError: not a dictionary file, or malformed entries.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dictionary file {p} does not exist (write one with `demopose build-dictionary`)")
    try:
        doc = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{p}: not a readable torch file ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != DICTIONARY_FORMAT:
        raise ValueError(f"{p}: not a confounder dictionary file (expected format {DICTIONARY_FORMAT!r})")
    mods = doc.get("modules")
    if not isinstance(mods, dict) or not mods:
        raise ValueError(f"{p}: field 'modules' must map module names to {{'bank', 'count'}}")
    for name, e in mods.items():
        if not isinstance(e, dict) or not isinstance(e.get("bank"), torch.Tensor) or e["bank"].dim() != 3:
            raise ValueError(f"{p}: modules[{name!r}].bank must be a (C, Q, D) tensor")
        if not isinstance(e.get("count"), torch.Tensor) or e["count"].shape != e["bank"].shape[:1]:
            raise ValueError(f"{p}: modules[{name!r}].count must be a (C,) tensor, C = {e['bank'].shape[0]}")
    return doc


def init_dictionary(module: FrontDoorModule, path: str | Path, name: str | None = None) -> str:
    """Fill ``module``'s dictionary from a dictionary file; returns the entry name used.

    The entry is ``name`` when given and present, else the file's only entry.

    Raises:
        ValueError: ambiguous or missing entry; bank shape differs from the module's ``(C, Q, D)``.
    """
    doc = load_dictionary_file(path)
    mods = doc["modules"]
    if name is not None and name in mods:
        key = name
    elif len(mods) == 1:
        key = next(iter(mods))
    else:
        raise ValueError(f"{path}: holds dictionaries {sorted(mods)}; none is named {name!r}")
    bank, count = mods[key]["bank"], mods[key]["count"]
    want = tuple(module.dictionary.bank.shape)
    if tuple(bank.shape) != want:
        raise ValueError(f"{path}: dictionary {key!r} has shape {tuple(bank.shape)} (classes, entries, dim); "
                         f"this front-door module expects {want}")
    module.dictionary.fill(bank.to(module.dictionary.bank), count)
    log.info("front-door dictionary initialised from %s (%s: %s valid entries per class)", path, key,
             count.tolist())
    return key
