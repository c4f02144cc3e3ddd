"""A joblib sweep's job process: its share of the cores, and a start method that the pools the
run spawns (the data generators') can use."""

from multiprocessing import get_context

from joblib import Parallel, delayed

from lra_bench.sweep.joblib_worker import (
    concurrent_jobs,
    job_threads,
    restore_default_start_method,
)


def test_each_job_gets_an_equal_share_of_the_cores():
    assert concurrent_jobs(2, 16) == 2
    assert concurrent_jobs(-1, 16) == 16  # joblib: -1 is one job per core
    assert concurrent_jobs(-2, 16) == 15
    assert concurrent_jobs(-40, 16) == 1
    assert job_threads(2, 16) == 8
    assert job_threads(3, 16) == 5
    assert job_threads(4, 2) == 1  # never fewer than one thread


def _square(x):
    return x * x


def _spawn_a_pool_in_a_loky_worker():
    restore_default_start_method()
    with get_context("spawn").Pool(1) as pool:
        return pool.map(_square, [3])


def test_a_loky_worker_can_spawn_a_pool_once_prepared():
    # Two jobs: joblib runs one job in this process, two in loky workers. Unprepared, the
    # pool's worker dies at start-up, again and again, and the timeout ends the test.
    results = Parallel(n_jobs=2, backend="loky", timeout=60)(
        delayed(_spawn_a_pool_in_a_loky_worker)() for _ in range(2)
    )
    assert results == [[9], [9]]
