"""Record a code change that leaves every result as it was, without recomputing: each stage's new
dependency hashes go into its dvc.lock, and the recorded hashes of outputs this workspace lacks (adapters
and corpora not in the local cache) are kept.

Run it only after ``scripts/tiny_pipeline_hashes.py --compare`` has shown the change leaves every output
byte-identical, and say so in the commit. ``dvc commit -f`` does the same for stages whose outputs are all
present; this is the body of DVC's own commit (``dvc.repo.commit``) with ``allow_missing``, which its CLI
does not offer, and without the run cache, which cannot hash a dependency the workspace lacks.
A stage whose output the change does alter is named with ``--rerun``: it is left stale for ``dvc repro``.

    python scripts/record_unchanged_stages.py --rerun report_claims dvc.yaml seeds/dvc.yaml
"""

from __future__ import annotations

import argparse

from dvc.repo import Repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipelines", nargs="+", help="dvc.yaml files whose stages to record")
    parser.add_argument("--rerun", action="append", default=[], metavar="STAGE",
                        help="a stage name (before any @) to leave stale; repeat for more")
    args = parser.parse_args()
    with Repo() as repo, repo.lock:
        for pipeline in args.pipelines:
            recorded = []
            for stage in repo.stage.collect(pipeline):
                if stage.name.split("@")[0] in args.rerun or stage.name in args.rerun:
                    print(f"left stale: {pipeline}:{stage.name}")
                    continue
                stage.save(allow_missing=True, run_cache=False)
                stage.commit(allow_missing=True, relink=True)
                recorded.append(stage)
                print(f"recorded: {pipeline}:{stage.name}")
            if recorded:
                recorded[0].dvcfile.dump_stages(recorded, update_pipeline=False)


if __name__ == "__main__":
    main()
