"""Repair a packaging bug after install: hpsv2 1.2.0's wheel lacks its vendored tokenizer vocab.

`import hpsv2.src.open_clip` then raises FileNotFoundError. The file is identical to open_clip's
own `bpe_simple_vocab_16e6.txt.gz`, so copy that one in. Idempotent.
"""
import importlib.util
import shutil
from pathlib import Path

VOCAB = "bpe_simple_vocab_16e6.txt.gz"


def main() -> None:
    open_clip = importlib.util.find_spec("open_clip")
    hpsv2 = importlib.util.find_spec("hpsv2")
    if open_clip is None or hpsv2 is None:
        raise SystemExit("envfix: open_clip_torch and hpsv2 must be installed first (make install)")
    target = Path(hpsv2.origin).parent / "src" / "open_clip" / VOCAB
    if not target.exists():
        shutil.copy(Path(open_clip.origin).parent / VOCAB, target)


if __name__ == "__main__":
    main()
