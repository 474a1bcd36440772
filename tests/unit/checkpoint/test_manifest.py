"""A checkpoint's manifest finds every kind of damage to its files, and nothing else."""

from engine.checkpoint.manifest import (MANIFEST, checkpoint_files, file_digests, has_manifest,
                                        verify_share, write_manifest)


def _checkpoint(tmp_path):
    (tmp_path / "sub").mkdir()
    for name, data in (("a.distcp", b"x" * 1000), ("common.pt", b"meta"),
                       ("sub/b.distcp", b"y" * 10)):
        (tmp_path / name).write_bytes(data)
    names = checkpoint_files(tmp_path)
    write_manifest(tmp_path, file_digests(tmp_path, names))
    return names


def test_intact_checkpoint_has_no_problems_in_any_share(tmp_path):
    names = _checkpoint(tmp_path)
    assert names == ["a.distcp", "common.pt", "sub/b.distcp"] and has_manifest(tmp_path)
    assert checkpoint_files(tmp_path) == names  # the manifest is not one of its own files
    assert verify_share(tmp_path) == []
    assert verify_share(tmp_path, 0, 2) == verify_share(tmp_path, 1, 2) == []


def test_truncated_zeroed_and_missing_files_are_found(tmp_path):
    _checkpoint(tmp_path)
    (tmp_path / "a.distcp").write_bytes(b"\0" * 1000)
    (tmp_path / "common.pt").unlink()
    (tmp_path / "sub" / "b.distcp").write_bytes(b"y" * 3)
    assert verify_share(tmp_path) == ["a.distcp does not match its checksum",
                                      "common.pt is missing",
                                      "sub/b.distcp has 3 bytes, expected 10"]
    assert verify_share(tmp_path, 1, 3) == ["common.pt is missing"]  # its share only


def test_unreadable_manifest_is_a_problem(tmp_path):
    _checkpoint(tmp_path)
    (tmp_path / MANIFEST).write_text('{"files": {"a.dis')
    assert verify_share(tmp_path) == [f"{MANIFEST} is unreadable"]


def test_size_check_reads_no_file(tmp_path):
    _checkpoint(tmp_path)
    (tmp_path / "a.distcp").write_bytes(b"\0" * 1000)  # same size: only a checksum sees it
    (tmp_path / "sub" / "b.distcp").write_bytes(b"y" * 3)
    assert verify_share(tmp_path, checksums=False) == ["sub/b.distcp has 3 bytes, expected 10"]
