"""The tiers and the parallel groups of tests/conftest.py hold what they claim."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LONGEST_GROUPS, SERVER_GROUPS, SHARED_MODULE_GROUPS, longest_first, xdist_group_of

REPO = Path(__file__).resolve().parents[1]


def test_every_module_using_a_shared_session_server_is_in_its_group() -> None:
    """A module that uses one of the session's `axiom serve`s (tests/support/served.py), directly or through
    the reliability tests' `reliability_server`, is in that server's group; each group lists only those."""
    uses = {"keyed_service": ("keyed_service", "reliability_server"), "fresh_service": ("fresh_service",)}
    assert set(uses) == set(SERVER_GROUPS)
    for fixture, names in uses.items():
        users = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "tests").rglob("test_*.py")
                       if p.name != "test_tiers.py"
                       and any(name in p.read_text(encoding="utf-8") for name in names))
        assert users, f"no module uses {fixture} any more: drop its SERVER_GROUPS entry"
        assert {m: xdist_group_of(m + "::t") for m in users} == dict.fromkeys(users, fixture)
        assert sorted(SERVER_GROUPS[fixture]) == users


def test_a_folder_with_session_wide_things_is_one_group_and_other_modules_are_their_own() -> None:
    assert xdist_group_of("tests/containers/test_containers.py::test_x") == "docker"
    assert xdist_group_of("tests/containers/test_environment_pins.py::test_p") == "docker"
    assert xdist_group_of("tests/containers/test_containers_cluster.py::test_y[a]") == "docker"
    assert xdist_group_of("tests/distributed/test_ray_sweep.py::test_z") == "ray"
    assert xdist_group_of("tests/notebooks/test_units.py::test_u") == "notebooks"
    assert xdist_group_of("tests/service/test_overload.py::test_a") == "tests/service/test_overload.py"
    assert xdist_group_of("tests/service/test_overload.py::test_b[x::y]") == "tests/service/test_overload.py"
    assert xdist_group_of("tests/service/test_service.py::test_b[x::y]") == "fresh_service"


class Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def test_the_longest_groups_are_handed_out_first_and_every_group_stays_together() -> None:
    ids = ["tests/core/test_a.py::t1", "tests/containers/test_containers.py::s1", "tests/core/test_b.py::t1",
           "tests/core/test_b.py::t2", "tests/containers/test_containers.py::s2", "tests/core/test_a.py::t2",
           "tests/core/test_b.py::t3", "tests/containers/test_containers_cluster.py::c",
           "tests/distributed/test_r.py::r"]
    ordered = [i.nodeid for i in longest_first([Item(n) for n in ids])]
    assert ordered == ["tests/containers/test_containers.py::s1", "tests/containers/test_containers.py::s2",
                       "tests/containers/test_containers_cluster.py::c", "tests/distributed/test_r.py::r",
                       "tests/core/test_b.py::t1", "tests/core/test_b.py::t2", "tests/core/test_b.py::t3",
                       "tests/core/test_a.py::t1", "tests/core/test_a.py::t2"]
    assert LONGEST_GROUPS[:2] == ("docker", "ray")


def test_every_module_named_in_the_groups_exists() -> None:
    for module in [*SHARED_MODULE_GROUPS, *(g for g in LONGEST_GROUPS if g.endswith(".py"))]:
        assert (REPO / module).is_file(), module
