"""What each rule asks of the job grid, from plain wildcard values (torch-free, unit-testable).

workflow/rules/common.smk builds one `Wiring` from the validated config and wraps each method in a
`get_*` input or params function; paths and per-experiment file lists come from sinkrepro.layout.
"""
from __future__ import annotations

from sinkrepro import layout
from sinkrepro.config import scorer_identity
from sinkrepro.grid import Shard, build_grid, config_hash
from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS, check_experiments, experiments_filling
from sinkrepro.paper.tables import stats_tables
from sinkrepro.vocab import PAIRWISE_METRICS

# What a figure's report entry names as its metric (the rest show every metric of the experiment).
FIGURE_METRICS = {"curves": "sink statistics", "position": "sink position", "attribution": "sink attribution",
                  "fid": "fid"}
# Cluster resources of the heavy rules; every one also asks for a GPU unless the config's device is the CPU.
RESOURCES = {"generate": {"mem_mb": 4000, "runtime": 120}, "score": {"mem_mb": 4000}, "fid": {"mem_mb": 4000}}


class Wiring:
    """The grid of a validated config and its prompt tables, with every rule's inputs and params."""

    def __init__(self, config: dict, prompts: dict):
        self.config = config
        self.grid = build_grid(config, prompts)
        self.experiments = self.grid.experiments
        check_experiments(self.experiments.values())
        self.prompts = {r["prompt_id"]: r for rows in prompts.values() for r in rows}
        self.score_work = layout.score_work(self.grid)
        self.fid_jobs = layout.all_fid_jobs(self.grid)
        self.dynamics_table_of = {stem: table for table, stem in OUTPUT_STEMS.items()}

    def resources(self, rule: str) -> dict:
        return {"gpu": 0 if self.config["device"] == "cpu" else 1, **RESOURCES[rule]}

    # --- generate and score: one job per image shard ---------------------------------------------
    def shard(self, model: str, condition: str, seed: str, shard: str) -> Shard:
        return self.grid.shard(model, condition, int(seed), int(shard.removeprefix("shard")))

    def shard_job(self, *shard_wildcards: str) -> dict:
        """Everything that decides a shard's images (its params: a change reruns the shard)."""
        shard = self.shard(*shard_wildcards)
        cond = self.grid.conditions[(shard.model, shard.condition)]
        model_cfg = self.config["models"][shard.model]
        job = {
            "model": shard.model, "family": model_cfg["family"], "condition": shard.condition,
            "seed": shard.seed, "seed_scheme": self.config["seed_scheme"], "sampler": cond.sampler,
            "spec": cond.spec.to_dict(), "prompts": [self.prompts[p] for p in shard.prompt_ids],
            "measure_layers": model_cfg["measure_layers"] if cond.measure else [],
            "measure_modules": model_cfg.get("measure_modules", []), "measure_blocks": model_cfg["measure_blocks"],
            "batch_size": self.config["batch_size"], "dtype": model_cfg["dtype"], "variant": model_cfg["variant"],
        }
        job["config_hash"] = config_hash({**job, "model_cfg": model_cfg})
        return job

    def score_inputs(self, *shard_wildcards: str) -> dict:
        shard = self.shard(*shard_wildcards)
        metrics = self.score_work[shard.key]
        inputs = {"shard": layout.image_dir(shard),
                  "scorers": [layout.SCORER.format(scorer=s) for s in layout.scorers_of(metrics)]}
        pairwise = sorted({p for m, ids in metrics.items() if m in PAIRWISE_METRICS for p in ids})
        if pairwise:
            inputs["references"] = layout.reference_dirs(self.grid, shard, pairwise)
        return inputs

    def score_params(self, *shard_wildcards: str) -> dict:
        """Per metric: the prompts to score and the scorer's failure tolerance (what decides the scores;
        the runtime knobs batch size and device are read from the config and rerun nothing)."""
        scorers = self.config["scorers"]
        return {metric: {"prompt_ids": prompt_ids, "tolerance": scorers[layout.scorers_of([metric])[0]]["tolerance"]}
                for metric, prompt_ids in self.score_work[self.shard(*shard_wildcards).key].items()}

    def scorer_config(self, scorer: str) -> dict:
        return scorer_identity(scorer, self.config["scorers"].get(scorer, {}))

    def all_scores(self) -> list[str]:
        return [layout.score_file(self.grid.shard(*key)) for key in self.score_work] + sorted(self.fid_jobs)

    # --- FID: one job per (prompt key, set, reference set) ---------------------------------------
    def fid_job(self, **fid_wildcards: str) -> layout.FidJob:
        path = layout.FID.format(**fid_wildcards)
        if path not in self.fid_jobs:
            raise ValueError(f"{path}: no experiment asks for this FID set")
        return self.fid_jobs[path]

    def fid_inputs(self, **fid_wildcards: str) -> dict:
        job = self.fid_job(**fid_wildcards)
        return {"shards": layout.fid_set_dirs(self.grid, job),
                "references": layout.fid_set_dirs(self.grid, job, reference=True),
                "scorer": layout.SCORER.format(scorer="fid")}

    def fid_params(self, **fid_wildcards: str) -> dict:
        return {"prompt_ids": list(self.fid_job(**fid_wildcards).prompt_ids)}

    # --- experiments and their figures -------------------------------------------------------------
    def scored(self) -> list[dict]:
        return [self.experiments[name] for name in layout.scored_experiments(self.grid)]

    def experiment_scores(self, experiment: str) -> list[str]:
        return layout.experiment_scores(self.grid, self.experiments[experiment])

    def experiment_prompts(self, experiment: str) -> str:
        return layout.PROMPT_TABLE.format(prompt_set=self.experiments[experiment]["prompt_set"])

    def experiment_own(self, experiment: str) -> dict:
        """The experiment's prompt ids and seeds: figures read only its own rows of shared shards."""
        exp = self.experiments[experiment]
        return {"prompt_ids": exp["prompt_ids"], "seeds": exp["seeds"]}

    def baseline_dynamics(self, experiment: str) -> list[str]:
        exp = self.experiments[experiment]
        return layout.dynamics_files(self.grid, exp, [exp["baseline"]])

    def figure_labels(self, experiment: str, figure: str) -> dict:
        """A dynamics or statistics figure's labels in the report."""
        exp = self.experiments[experiment]
        dynamics = figure in layout.DYNAMICS_FIGURES
        presets = ", ".join(sorted({c["preset"] for c in exp["conditions"]})) or "base"
        return {"figure": figure, "k": "-" if dynamics else "all", "preset": exp["baseline"] if dynamics else presets,
                "metric": FIGURE_METRICS.get(figure, "all")}

    def contrast(self, experiment: str, k: str) -> dict:
        return layout.contrast_at(self.experiments[experiment], int(k))

    def panel_inputs(self, experiment: str, k: str) -> dict:
        return layout.panel_inputs(self.grid, self.experiments[experiment], int(k))

    def panel_labels(self, experiment: str, k: str) -> dict:
        return {"figure": "panels", "k": k, "preset": self.contrast(experiment, k)["condition"],
                "metric": "lpips, clip_t"}

    def paper_tables(self) -> list[str]:
        return stats_tables(self.scored())

    # --- tables from measured dynamics, one job per output stem -------------------------------------
    def dynamics_table(self, stem: str) -> str:
        return self.dynamics_table_of[stem]

    def dynamics_table_experiments(self, stem: str) -> list[dict]:
        return experiments_filling(self.dynamics_table(stem), self.experiments.values())

    def dynamics_table_inputs(self, stem: str) -> list[str]:
        return layout.dynamics_table_inputs(self.grid, self.dynamics_table(stem))
