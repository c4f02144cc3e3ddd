"""hydra/launcher=slurm as `make sweep LAUNCHER=slurm` starts it, on a machine without Slurm:
stand-ins for `srun` and `sbatch` (the latter keeps the batch file submitit wrote and refuses
the job), so that the test reads the sbatch script a real cluster would get. The multi-node
recipe of the README: 2 nodes x 8 GPUs, one rank per Slurm task."""

import os
import stat

from tests.apps import run_app

SBATCH = """#!/bin/sh
cp "$1" "$SBATCH_COPY"
echo "sbatch stand-in: not submitted" >&2
exit 1
"""
SRUN = """#!/bin/sh
exit 1
"""


def stand_ins(folder):
    folder.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", SRUN)):
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def test_the_slurm_launcher_writes_the_batch_script_a_cluster_needs(tmp_path):
    bin_dir, results = stand_ins(tmp_path / "bin"), tmp_path / "results"
    copy = tmp_path / "submitted.sh"
    done = run_app(
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.nodes=2",
        "hydra.launcher.tasks_per_node=8",
        "hydra.launcher.gpus_per_node=8",
        "hydra.launcher.timeout_min=600",
        "hydra.launcher.array_parallelism=4",
        "hydra.launcher.setup=[source .venv/bin/activate]",
        "+hydra.launcher.additional_parameters.account=lra",
        "model=transformer,s4d",
        "task=listops",
        "profile=lra",
        "seed=0,1",
        f"results_dir={results}",
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SBATCH_COPY=str(copy),
    )
    assert done.returncode != 0  # the stand-in refused the job
    assert "sbatch stand-in: not submitted" in done.stdout
    script = copy.read_text()
    options = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in script.splitlines()
        if line.startswith("#SBATCH ") and "=" in line
    }
    assert options["#SBATCH --array"] == "0-3%4"  # 2 models x 2 seeds, 4 at a time
    assert options["#SBATCH --partition"] == "gpu"
    assert options["#SBATCH --nodes"] == "2"
    assert options["#SBATCH --ntasks-per-node"] == "8"  # one rank per GPU
    assert options["#SBATCH --gpus-per-node"] == "8"
    assert options["#SBATCH --cpus-per-task"] == "8"
    assert options["#SBATCH --mem"] == "64GB"
    assert options["#SBATCH --time"] == "600"
    assert options["#SBATCH --account"] == "lra"
    # The warning before the time limit is the signal the trainer checkpoints on.
    assert options["#SBATCH --signal"] == "USR1@120"
    assert "\nsource .venv/bin/activate\n" in script
    # srun starts every task (rank) of the job; submitit's entry point runs the Hydra job there.
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ")]
    assert "-m submitit.core._submit" in srun
    assert "export SUBMITIT_EXECUTOR=slurm" in script  # what lra_bench.distributed reads
