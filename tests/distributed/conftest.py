"""A two-node Ray cluster inside the test session (head + one worker node, one CPU each), made
only when a test asks for it and shut down at the end of the session."""

from __future__ import annotations

import pytest

MiB = 2**20


@pytest.fixture(scope="session")
def ray_cluster():
    """Head and one worker node (``num_cpus=1`` and 100 MiB object store each), the test process
    connected as the driver: a ``RayExecutor()`` made in a test joins it."""
    ray = pytest.importorskip("ray", reason="the Ray backend's tests need ray (pip install 'trustlab[ray]')")
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:  # what the nodes' worker processes inherit
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv("TRUSTLAB_OFFLINE", "1")
        patch.setenv("OMP_NUM_THREADS", "1")
        cluster = Cluster(
            initialize_head=True,
            connect=True,
            head_node_args={"num_cpus": 1, "object_store_memory": 100 * MiB, "include_dashboard": False},
        )
        try:
            cluster.add_node(num_cpus=1, object_store_memory=100 * MiB)
            cluster.wait_for_nodes()
        except BaseException:
            ray.shutdown()
            cluster.shutdown()
            raise
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The driver computes the local references with one thread (see ``one_thread``)."""
