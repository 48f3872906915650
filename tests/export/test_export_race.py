"""Two exports racing for the same version: the loser takes the next version, or (with --version) stops cleanly.

The race is made deterministic: ``tf.saved_model.save`` is wrapped so that, once this export has written its
staging folder, "another export" puts a complete version in place (the window between `next_version` and the
rename), and a second thread races a real export for the same name.
"""

import os
import threading

import pytest
import tensorflow as tf

from tfpretrain.export import saved_model
from tfpretrain.export.saved_model import export_saved_model


class Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def double(self, x):
        return {"y": 2.0 * x}


def _other_export_wins(monkeypatch, root, name, version):
    """While this export saves, another one completes ``root/name/version`` (a folder holding a file)."""
    real_save = tf.saved_model.save

    def save(module, path, signatures=None):
        real_save(module, path, signatures=signatures)
        other = os.path.join(root, name, str(version))
        os.makedirs(other)
        with open(os.path.join(other, "saved_model.pb"), "w") as f:
            f.write("the other export")

    monkeypatch.setattr(saved_model.tf.saved_model, "save", save)


def _entries(root, name):
    return sorted(os.listdir(os.path.join(root, name)))


def test_the_loser_of_a_race_takes_the_next_version(tmp_path, monkeypatch):
    module = Doubler()
    _other_export_wins(monkeypatch, str(tmp_path), "m", 1)
    path = export_saved_model(module, str(tmp_path), "m", {"serving_default": module.double})
    assert path == os.path.join(str(tmp_path), "m", "2")
    assert _entries(tmp_path, "m") == ["1", "2"]  # no staging folder left
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_text() == "the other export"  # the winner is intact
    monkeypatch.undo()
    served = tf.saved_model.load(path).signatures["serving_default"]
    assert served(x=tf.constant([1.5]))["y"].numpy().tolist() == [3.0]


def test_the_loser_of_a_race_for_an_explicit_version_stops_cleanly(tmp_path, monkeypatch):
    module = Doubler()
    _other_export_wins(monkeypatch, str(tmp_path), "m", 3)
    with pytest.raises(FileExistsError, match=r"m/3 was written by another export.*--version"):
        export_saved_model(module, str(tmp_path), "m", {"serving_default": module.double}, version=3)
    assert _entries(tmp_path, "m") == ["3"]  # nothing of the loser is left, the winner is intact
    assert (tmp_path / "m" / "3" / "saved_model.pb").read_text() == "the other export"


def test_two_threads_exporting_at_once_get_two_versions(tmp_path):
    module = Doubler()
    paths, errors = [], []

    def export():
        try:
            paths.append(export_saved_model(module, str(tmp_path), "m", {"serving_default": module.double}))
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(os.path.basename(p) for p in paths) == ["1", "2"]
    assert _entries(tmp_path, "m") == ["1", "2"]
