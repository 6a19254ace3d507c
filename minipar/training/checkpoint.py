"""Checkpoints that survive a crash at any moment.

Layout of ``RUN/checkpoint/``::

    step-00000120/params.npz     parameters by name: np.load(...)["lstm.weight_ih_l0"]
    step-00000120/optim.npz      optimizer state: "t", "m/0", "m/1", ..., "v/0", ...
    step-00000120/ranks.npz      per-rank arrays (e.g. "r1/h", "r1/c": the carried LSTM state)
    step-00000120/meta.json      format, step, config, vocabulary, RNG states, data position,
                                 the SHA-256 of each .npz above and of meta.json itself
    LATEST                       the name of the newest complete checkpoint

One rank writes. Each file is written to a temporary name, flushed and fsync'ed, then renamed;
``LATEST`` changes (by rename) only after the whole step directory is on disk. A crash at any
point leaves ``LATEST`` naming a complete checkpoint, and the previous good checkpoint is kept
until a newer one is complete. Loading verifies the format and every checksum, so a truncated
or corrupted checkpoint is refused with one clear line instead of being half-loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil

import numpy as np

from minipar.core.errors import CheckpointError

FORMAT = "minipar-checkpoint-1"
KEEP = 2  # complete checkpoints kept on disk


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def save(run_dir: str, step: int, params: dict, optim: dict, meta: dict,
         ranks: dict | None = None) -> str:
    """Write checkpoint ``step`` under ``run_dir/checkpoint``; returns its directory."""
    root = os.path.join(run_dir, "checkpoint")
    os.makedirs(root, exist_ok=True)
    name = f"step-{step:08d}"
    final = os.path.join(root, name)
    work = final + f".tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    files = {"params.npz": _npz_bytes(params), "optim.npz": _npz_bytes(flatten_optim(optim)),
             "ranks.npz": _npz_bytes(ranks or {})}
    sums = {}
    for fname, data in files.items():
        atomic_write(os.path.join(work, fname), data)
        sums[fname] = hashlib.sha256(data).hexdigest()
    body = dict(meta, format=FORMAT, step=step, sha256=sums)
    sums["meta.json"] = _meta_sum(json.loads(json.dumps(body)))  # as it will be read
    atomic_write(os.path.join(work, "meta.json"), json.dumps(body, indent=1).encode())
    old = None
    if os.path.exists(final):  # the same step again: keep the old one until the new is in
        old = final + f".old-{os.getpid()}"
        os.replace(final, old)
    os.replace(work, final)
    _fsync_dir(root)
    atomic_write(os.path.join(root, "LATEST"), (name + "\n").encode())
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _prune(root, keep=name)
    return final


def _complete(root: str) -> list[str]:
    """Names of the finished checkpoint directories under ``root``, oldest first."""
    return sorted(d for d in os.listdir(root) if d.startswith("step-") and "." not in d
                  and os.path.exists(os.path.join(root, d, "meta.json")))


def _prune(root: str, keep: str) -> None:
    for d in _complete(root)[:-KEEP]:
        if d != keep:
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    for d in os.listdir(root):  # leftovers of writers that crashed
        if ".tmp-" in d or ".old-" in d:
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def flatten_optim(state: dict) -> dict:
    out = {"t": np.asarray(state.get("t", 0))}
    for slot, arrays in state.items():
        if slot == "t":
            continue
        for i, a in enumerate(arrays):
            out[f"{slot}/{i}"] = a
    return out


def unflatten_optim(arrays: dict) -> dict:
    state: dict = {"t": int(arrays["t"])}
    slots: dict = {}
    for key, a in arrays.items():
        if key == "t":
            continue
        slot, _, i = key.partition("/")
        slots.setdefault(slot, {})[int(i)] = a
    for slot, items in slots.items():
        state[slot] = [items[i] for i in range(len(items))]
    return state


def latest(run_dir: str) -> str:
    """The directory of the newest complete checkpoint of a run (CheckpointError if none).
    ``LATEST`` names it; should a crash have left ``LATEST`` naming a directory that is not
    there, the newest finished one is taken."""
    root = os.path.join(run_dir, "checkpoint")
    marker = os.path.join(root, "LATEST")
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"{run_dir}: no such run directory")
    if not os.path.exists(marker):
        raise CheckpointError(f"{run_dir}: no checkpoint found (no checkpoint/LATEST)")
    with open(marker, encoding="utf-8", errors="replace") as f:
        name = f.read().strip()
    path = os.path.join(root, name)
    if name.startswith("step-") and os.path.isdir(path):
        return path
    # a crash between moving a same-step checkpoint aside and renaming its successor in
    # leaves it as step-N.old-PID: still complete, so still a candidate
    done = sorted(_complete(root) + [d for d in os.listdir(root) if ".old-" in d
                                     and os.path.exists(os.path.join(root, d, "meta.json"))])
    if not done:
        raise CheckpointError(f"{marker}: names {name!r}, which is not a checkpoint")
    return os.path.join(root, done[-1])


def resolve(path: str) -> tuple[str, str]:
    """``--resume PATH`` -> (checkpoint directory, run directory). PATH is a run directory
    (its latest checkpoint) or one checkpoint directory ``RUN/checkpoint/step-N``."""
    if os.path.isdir(os.path.join(path, "checkpoint")):
        return latest(path), path
    if os.path.exists(os.path.join(path, "meta.json")):
        return path, os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such run directory")
    raise CheckpointError(f"{path}: neither a run directory (with checkpoint/) nor a "
                          f"checkpoint (with meta.json)")


def read_meta(path: str) -> dict:
    """meta.json of a checkpoint directory, its format checked (checksums are not)."""
    meta_path = os.path.join(path, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not a checkpoint (no meta.json)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: corrupted or truncated ({exc})"
                              + _older(path)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: unknown checkpoint format "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
                              f"expected {FORMAT}")
    if _meta_sum(meta) != meta.get("sha256", {}).get("meta.json"):
        raise CheckpointError(f"{meta_path}: checksum mismatch (edited or corrupted)"
                              + _older(path))
    return meta


def _meta_sum(meta: dict) -> str:
    """SHA-256 of meta.json's content without its own checksum (keys sorted)."""
    body = dict(meta, sha256={k: v for k, v in meta.get("sha256", {}).items()
                              if k != "meta.json"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load(path: str) -> tuple[dict, dict, dict, dict]:
    """(params, optimizer state, meta, per-rank arrays) of a checkpoint directory, or of a
    run directory's latest checkpoint; every file's checksum is verified first."""
    path = resolve(path)[0]
    meta = read_meta(path)
    loaded = []
    for fname in ("params.npz", "optim.npz", "ranks.npz"):
        fpath = os.path.join(path, fname)
        try:
            with open(fpath, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CheckpointError(f"{fpath}: missing from the checkpoint") from None
        if hashlib.sha256(data).hexdigest() != meta.get("sha256", {}).get(fname):
            raise CheckpointError(f"{fpath}: checksum mismatch (truncated or corrupted)"
                                  + _older(path))
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            loaded.append({k: z[k] for k in z.files})
    params, optim, ranks = loaded
    return params, unflatten_optim(optim), meta, ranks


def _older(path: str) -> str:
    """A hint naming the previous complete checkpoint of the same run, if there is one."""
    root, name = os.path.split(os.path.abspath(path))
    try:
        done = [d for d in _complete(root) if d < name]
    except OSError:
        return ""
    return f"; the previous one is --resume {os.path.join(root, done[-1])}" if done else ""
