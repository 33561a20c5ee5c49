import pytest

from medgen_tf.files import atomic_path


def test_atomic_path_replaces_the_file_on_success(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent
        assert temporary.name.endswith(".json")
        temporary.write_text('{"new": 1}')
        assert not target.exists()
    assert target.read_text() == '{"new": 1}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "volume.nii.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        assert temporary.name.endswith(".nii.gz")
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume.nii.gz"]
