"""The three workflow adapters, run as Snakemake runs them (a `snakemake` object with Namedlists)."""
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sinkrepro.paper.tables import FORMATS, stats_tables
from sinkrepro.provenance import STANDIN_NOTICE
from helpers import make_experiment, make_scores, prompt_table, run_script

STATS = {"bootstrap_resamples": 500, "seed": 3, "margins": {"clip_t": 0.02}, "multiplicity": {"within": "holm"}}


@pytest.fixture(scope="module")
def stats_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapters")
    exp = make_experiment(ks=(1, 5), seeds=(0,), n_prompts=6, metrics=("clip_t", "lpips"))
    exp["tables"] = ["table2", "table6"]
    scores = make_scores(exp, {("lpips", "cf-k1-L12"): 0.3, ("lpips", "cf_random-k1-L12"): 0.05})
    shards = []
    for (metric, cond), part in scores.groupby(["metric", "condition"]):  # one file per (metric, condition)
        shards.append(tmp / f"{metric}-{cond}.parquet")
        part.to_parquet(shards[-1], index=False)
    prompt_table(6).to_csv(tmp / "prompts.tsv", sep="\t", index=False)
    out = {"parquet": str(tmp / "stats" / "k_sweep.parquet"), "csv": str(tmp / "stats" / "k_sweep.csv")}
    run_script("stats_experiment.py", input={"scores": [str(p) for p in shards], "prompts": str(tmp / "prompts.tsv")},
               output=out, params={"experiment": exp, "stats": STATS}, log=[tmp / "stats.log"])
    return tmp, exp, out


def test_stats_adapter_writes_parquet_and_csv(stats_file):
    tmp, _, out = stats_file
    stats = pd.read_parquet(out["parquet"])
    assert len(stats) and set(stats["experiment"]) == {"k_sweep"}
    assert pd.read_csv(out["csv"])["mean"].to_numpy() == pytest.approx(stats["mean"].to_numpy(), nan_ok=True)
    assert (stats.loc[stats.metric == "clip_t", "tost_margin"].dropna() == 0.02).all()  # config margin used
    assert set(stats["n_resamples"].dropna()) == {500}
    assert "comparison rows" in (tmp / "stats.log").read_text()
    assert pq.read_schema(out["parquet"]).metadata[b"sinkrepro.notice"].decode() == STANDIN_NOTICE


def test_paper_adapters_write_declared_tables_and_claims(stats_file):
    tmp, exp, out = stats_file
    tables = [tmp / "paper" / "tables" / f"{t}.{e}" for t in stats_tables([exp]) for e in FORMATS]
    run_script("paper_tables.py", input={"stats": [out["parquet"]]}, output=tables,
               params={"experiments": [exp], "stats": STATS}, log=[tmp / "tables.log"])
    assert all(p.exists() for p in tables) and len(tables) == 2 * len(FORMATS)
    claims = tmp / "paper" / "claims.md"
    baseline = [str(p) for p in tmp.glob("*-base.parquet")]  # one seed: no noise floor, configured margins
    run_script("paper_claims.py", input={"stats": [out["parquet"]], "baseline_scores": baseline},
               output={"claims": str(claims)},
               params={"experiments": [exp], "stats": STATS}, log=[tmp / "claims.log"])
    text = claims.read_text()
    assert text.startswith(STANDIN_NOTICE) and "Perceptual shift about 6x random" in text
    assert "not run in this config" in text  # no HPS / ImageReward in this experiment


def test_paper_tables_adapter_rejects_undeclared_layout(stats_file):
    tmp, exp, out = stats_file
    wrong = [tmp / "elsewhere" / "table2.csv", tmp / "elsewhere" / "table99.csv"]
    with pytest.raises(SystemExit, match="table99.csv"):
        run_script("paper_tables.py", input={"stats": [out["parquet"]]}, output=wrong,
                   params={"experiments": [exp], "stats": STATS}, log=[tmp / "tables2.log"])


def test_stats_read_only_the_experiments_own_prompts_and_seeds(tmp_path):
    """A shared condition's shards also hold other experiments' prompts and seeds (not in this
    experiment's prompt table): the stats are those of the experiment's own rows."""
    exp = make_experiment(ks=(1, 5), seeds=(0,), n_prompts=6, metrics=("clip_t", "lpips"))
    exp["prompt_ids"] = [f"p{i:03d}" for i in range(6)]
    own = make_scores(exp, {("clip_t", "cf-k1-L12"): -0.05})
    other = make_scores({**exp, "n_prompts": 9, "seeds": [0, 1]}, seed=1)  # p000-p008 at seeds 0 and 1
    mixed = pd.concat([own, other[~(other["prompt_id"].isin(exp["prompt_ids"]) & (other["seed"] == 0))]])
    prompt_table(6).to_csv(tmp_path / "prompts.tsv", sep="\t", index=False)
    results = []
    for name, scores in (("own", own), ("mixed", mixed)):
        scores.to_parquet(tmp_path / f"{name}.parquet", index=False)
        out = {"parquet": str(tmp_path / f"{name}-stats.parquet"), "csv": str(tmp_path / f"{name}-stats.csv")}
        run_script("stats_experiment.py", input={"scores": [str(tmp_path / f"{name}.parquet")],
                                                 "prompts": str(tmp_path / "prompts.tsv")},
                   output=out, params={"experiment": exp, "stats": STATS}, log=[tmp_path / f"{name}.log"])
        results.append(pd.read_parquet(out["parquet"]))
    assert len(mixed) > len(own)
    pd.testing.assert_frame_equal(results[0], results[1])
    assert set(results[1].loc[results[1]["category"] == "all", "n"]) == {6}
