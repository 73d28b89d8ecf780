"""download: read PubMed RCT (hub dataset, a local copy of one, or a text-format folder/URL), validate,
write data/raw/*.parquet and source.json (where the data came from, which commit, which number form)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

from pubmed_rct import params
from pubmed_rct.corpus.sources import SPLITS, read_source
from pubmed_rct.corpus.store import write_split
from pubmed_rct.io import atomic_path, run_stage, write_json

OUT = "data/raw"


def main() -> None:
    p = params.load()
    source = p.data.source
    splits, meta = read_source(source, p.data.revision or None)
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        for split in SPLITS:
            write_split(tmp / f"{split}.parquet", splits[split])
        meta["sentences"] = {s: len(splits[s]) for s in SPLITS}
        meta["abstracts"] = {s: len({r["abstract_id"] for r in splits[s]}) for s in SPLITS}
        write_json(tmp / "source.json", meta)
    print(f"download: {meta['sentences']} sentences from {source}"
          + (f" at commit {meta['commit']}" if meta.get("commit") else "") + f"; numbers: {meta['number_form']}")


if __name__ == "__main__":
    run_stage(main)
