"""Prompt tables (prompt_id, prompt_index, prompt, category) from a configured source.

Sources:
- `local`: a TSV of ours with columns prompt_id, prompt, category.
- `geneval`: a file in GenEval's evaluation_metadata.jsonl format; ids `geneval-NNN` (0-based line
  index), category = GenEval tag.
- `list`: a one-prompt-a-line text file; each line is looked up by exact text in another set
  (`from`), so it keeps that set's ids and categories and shares its images.
- `subset`: the first `first` rows of another set.
`geneval` and `list` files come either from a pinned `url` + `sha256` (downloaded once into a
content-addressed cache) or from a `path` relative to the working directory (our stand-in files in
config/prompts/; an optional `sha256` is checked too).
"""
from __future__ import annotations

import csv
import io
import json
import urllib.request
from pathlib import Path

from sinkrepro.io import atomic_path, sha256_bytes, sha256_file, write_text

COLUMNS = ("prompt_id", "prompt_index", "prompt", "category")
CATEGORIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
FETCH_COMMAND = "sinkrepro fetch-prompts CONFIG"


def fetch_pinned(url: str, sha256: str, where: str, cache_dir: Path | None = None) -> bytes:
    """Read a URL (http(s) or file://), check its sha256, and keep a content-addressed copy.

    The workflow plans its shards from the prompt lists, so it reads them when it starts; the
    cache makes that a one-time download.
    """
    cached = cache_dir / sha256 if cache_dir else None
    if cached and cached.exists() and sha256_file(cached) == sha256:
        return cached.read_bytes()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as err:
        cache = f" and is not cached in {cache_dir}" if cache_dir else ""
        raise RuntimeError(f"{where}.url: cannot read {url} ({err}){cache}. On a machine with network, run "
                           f"`{FETCH_COMMAND}` once (it caches every prompt source), or set path: to a local "
                           f"copy instead of url") from err
    got = sha256_bytes(data)
    if got != sha256:
        raise ValueError(f"{where}.sha256: {url} has sha256 {got}, expected {sha256}; the file changed upstream "
                         f"or the pin is wrong")
    if cached:
        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
    return data


def read_source(cfg: dict, where: str, root: Path, cache_dir: Path | None) -> bytes:
    """The file of a geneval/list set: exactly one of a pinned url (with sha256) or a local path."""
    if ("url" in cfg) == ("path" in cfg):
        raise ValueError(f"{where}: give exactly one of url (with sha256) or path, not "
                         f"{'both' if 'url' in cfg else 'neither'}; e.g. path: config/prompts/standin_geneval.jsonl")
    if "url" in cfg:
        if "sha256" not in cfg:
            raise ValueError(f"{where}.sha256: required with url; pin the file's sha256 (sha256sum FILE)")
        return fetch_pinned(cfg["url"], cfg["sha256"], where, cache_dir)
    path = root / cfg["path"]
    if not path.is_file():
        raise FileNotFoundError(f"{where}.path: {path} is not a file (paths are relative to the working directory)")
    data = path.read_bytes()
    if "sha256" in cfg and sha256_bytes(data) != cfg["sha256"]:
        raise ValueError(f"{where}.sha256: {path} has sha256 {sha256_bytes(data)}, expected {cfg['sha256']}")
    return data


def parse_geneval(data: bytes) -> list[dict]:
    rows = []
    for i, line in enumerate(data.decode().splitlines()):
        if line.strip():
            item = json.loads(line)
            rows.append({"prompt_id": f"geneval-{i:03d}", "prompt_index": i, "prompt": item["prompt"],
                         "category": item["tag"]})
    return rows


def parse_local(path: Path, where: str) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{where}.path: {path} does not exist; create it (columns prompt_id, prompt, "
                                "category) or fix the path")
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"prompt_id", "prompt", "category"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{where}.path: {path} lacks columns {sorted(missing)}")
        rows = [{"prompt_id": r["prompt_id"], "prompt_index": i, "prompt": r["prompt"], "category": r["category"]}
                for i, r in enumerate(reader)]
    first_line = {}
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        if row["prompt_id"] in first_line:
            raise ValueError(f"{where}.path: {path} line {n}: duplicate prompt_id {row['prompt_id']!r} (first at "
                             f"line {first_line[row['prompt_id']]}); give every prompt its own id")
        first_line[row["prompt_id"]] = n
    return rows


def lookup_lines(lines: list[str], reference: list[dict], where: str) -> list[dict]:
    by_text = {r["prompt"]: r for r in reference}
    rows = []
    for n, text in enumerate(lines):
        if text not in by_text:
            raise ValueError(f"{where}: line {n + 1} {text!r} is not a prompt of the lookup set")
        rows.append(dict(by_text[text]))
    return rows


def load_prompt_set(name: str, sets: dict, root: Path = Path("."), cache_dir: Path | None = None,
                    _seen: tuple = ()) -> list[dict]:
    """Resolve prompt set `name` from the `prompt_sets` config section."""
    where = f"config.prompt_sets.{name}"
    if name not in sets:
        raise ValueError(f"{where}: no such prompt set; define it under prompt_sets")
    if name in _seen:
        raise ValueError(f"{where}: circular reference through {list(_seen)}")
    cfg = sets[name]
    source = cfg["source"]
    if source == "local":
        return parse_local(root / cfg["path"], where)
    if source == "geneval":
        return parse_geneval(read_source(cfg, where, root, cache_dir))
    reference = load_prompt_set(cfg["from"], sets, root, cache_dir, _seen + (name,))
    if source == "subset":
        rows = reference
        if cfg.get("categories"):
            rows = [r for r in rows if r["category"] in cfg["categories"]]
        return rows[: cfg.get("first") or len(rows)]
    if source == "list":
        lines = [ln for ln in read_source(cfg, where, root, cache_dir).decode().splitlines() if ln.strip()]
        return lookup_lines(lines, reference, where)
    raise ValueError(f"{where}.source: {source!r} is not one of local, geneval, list, subset")


def write_table(path: str | Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r[k] for k in COLUMNS} for r in rows)
    write_text(path, buf.getvalue())


def read_table(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{**r, "prompt_index": int(r["prompt_index"])} for r in csv.DictReader(f, delimiter="\t")]
