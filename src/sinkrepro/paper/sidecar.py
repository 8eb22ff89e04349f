"""Machine-readable outputs: plain CSV that default readers load, with the caption and the stand-in
notice in a sidecar beside it, `<name>.csv-metadata.json` (the W3C "CSV on the Web" convention)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..io import write_text
from ..provenance import STANDIN_NOTICE
from .numbers import WHOLE_COLUMNS

SIDECAR_SUFFIX = "-metadata.json"


def sidecar_path(csv: str | os.PathLike) -> Path:
    return Path(f"{csv}{SIDECAR_SUFFIX}")


def whole_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts, seeds and k as integers (nullable), so a CSV says `0`, not `0.0`."""
    out = frame.copy()
    for col in WHOLE_COLUMNS & set(out.columns):
        values = pd.to_numeric(out[col], errors="coerce")
        if values.notna().any() and (values.dropna() % 1 == 0).all() and out[col].dtype != object:
            out[col] = values.astype("Int64")
    return out


def csv_text(frame: pd.DataFrame) -> str:
    return whole_columns(frame).to_csv(index=False)


def metadata_text(csv_name: str, title: str, caption: str, standin: bool, frame: pd.DataFrame,
                  extra: dict | None = None) -> str:
    meta = {
        "@context": "http://www.w3.org/ns/csvw",
        "url": csv_name,
        "dc:title": title,
        "dc:description": caption,
        "standin": bool(standin),
        "notice": STANDIN_NOTICE if standin else "",
        "tableSchema": {"columns": [{"name": str(c)} for c in frame.columns]},
        **(extra or {}),
    }
    return json.dumps(meta, indent=1, ensure_ascii=False) + "\n"


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, title: str, caption: str = "",
              standin: bool = False, extra: dict | None = None) -> list[Path]:
    """Write `frame` as CSV and its sidecar (`extra`: more sidecar fields); returns both paths."""
    path = Path(path)
    write_text(path, csv_text(frame))
    write_text(sidecar_path(path), metadata_text(path.name, title, caption, standin, frame, extra))
    return [path, sidecar_path(path)]


def read_metadata(csv: str | os.PathLike) -> dict:
    return json.loads(sidecar_path(csv).read_text())
