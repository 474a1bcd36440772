"""What the host offers: a package that is installed but does not import is not used, and the
log says why (the run takes a slower path without it)."""

import logging

import pytest

from engine.compat import platform


@pytest.mark.parametrize("failure, kind", [
    ("assert False, 'transformer-engine 2.12.0 and transformer-engine-cu13 2.13.0 differ'",
     "AssertionError"),
    ("raise OSError('libcudnn.so.9: cannot open shared object file')", "OSError"),
    ("import not_installed_either", "ModuleNotFoundError"),
])
def test_a_package_that_fails_to_import_is_a_warning_with_its_reason(
        tmp_path, monkeypatch, caplog, failure, kind):
    (tmp_path / "broken_extension").mkdir()
    (tmp_path / "broken_extension" / "__init__.py").write_text(failure + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(platform, "has_cuda", lambda: True)
    monkeypatch.setattr(platform.log, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="engine"):
        assert platform._imports("broken_extension") is False
    assert f"broken_extension is installed but does not import ({kind}:" in caplog.text


def test_a_package_that_imports_is_used_and_one_absent_is_silently_not(monkeypatch, caplog):
    monkeypatch.setattr(platform, "has_cuda", lambda: True)
    monkeypatch.setattr(platform.log, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="engine"):
        assert platform._imports("json") is True
        assert platform._imports("surely_no_such_package_here") is False
    assert caplog.text == ""
