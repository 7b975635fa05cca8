"""vaelib.atomic: a reader sees the old file or the new one, never a part, and a failed write leaves nothing."""
import pytest

from vaelib.atomic import atomic_write, atomic_write_text, tmp_path as tmp_name


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "report.json"
    atomic_write_text(target, "old")
    assert atomic_write_text(target, "new") == target
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "shard.npz"
    atomic_write_text(target, "complete")

    def crash(f):
        f.write(b"half a shard")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_text() == "complete"
    assert not tmp_name(target).exists() and [p.name for p in tmp_path.iterdir()] == ["shard.npz"]
