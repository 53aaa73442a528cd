"""The stack names the directory that keeps user postgres out of JARVIS_HOME, before initdb fails."""

from __future__ import annotations

from pathlib import Path

from jarvis.stack.postgres import closed_parent

HOME = Path("/tmp/pytest-of-root/p0/home/postgres")


def modes(closed: set[str]) -> dict[Path, int | None]:
    tree = {p: (0o40700 if str(p) in closed else 0o40755) for p in HOME.parents}
    tree[Path("/tmp/pytest-of-root/p0/home")] = None  # not made yet: nothing to enter
    return tree


def test_the_first_closed_directory_above_the_home_is_named() -> None:
    m = modes({"/tmp/pytest-of-root", "/tmp/pytest-of-root/p0"})
    assert closed_parent(HOME, m.get) == Path("/tmp/pytest-of-root")


def test_a_home_others_may_enter_passes() -> None:
    assert closed_parent(HOME, modes(set()).get) is None


def test_the_real_filesystem_is_read_by_default(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "home").mkdir(parents=True)
    closed.chmod(0o700)
    try:
        found = closed_parent(closed / "home" / "postgres")
        assert found is not None and (found == closed or found in closed.parents)
    finally:
        closed.chmod(0o755)
