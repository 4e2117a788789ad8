"""The tiers and the parallel groups of tests/conftest.py hold what they claim."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED_MODULE_GROUPS, xdist_group_of

REPO = Path(__file__).resolve().parents[1]


def test_every_module_using_a_shared_session_server_is_in_its_group() -> None:
    users = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "tests").rglob("test_*.py")
                   if p.name != "test_tiers.py" and "reliability_server" in p.read_text(encoding="utf-8"))
    assert users, "no module uses the reliability server any more: drop SHARED_MODULE_GROUPS"
    assert {m: xdist_group_of(m + "::t") for m in users} == dict.fromkeys(users, "reliability-server")
    assert set(SHARED_MODULE_GROUPS) == set(users)


def test_a_folder_with_session_wide_things_is_one_group_and_other_modules_are_their_own() -> None:
    assert xdist_group_of("tests/containers/test_containers.py::test_x") == "docker"
    assert xdist_group_of("tests/containers/test_containers_cluster.py::test_y[a]") == "docker"
    assert xdist_group_of("tests/distributed/test_ray_sweep.py::test_z") == "ray"
    assert xdist_group_of("tests/notebooks/test_units.py::test_u") == "notebooks"
    assert xdist_group_of("tests/service/test_service.py::test_a") == "tests/service/test_service.py"
    assert xdist_group_of("tests/service/test_service.py::test_b[x::y]") == "tests/service/test_service.py"
