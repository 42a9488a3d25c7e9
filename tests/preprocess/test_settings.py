import pytest
from omegaconf import OmegaConf

from fermix.errors import FermixError
from fermix.preprocess.settings import limit, num_workers, progress_mode, settings_from_config


def test_defaults_are_iern_template_hog_largest_png():
    s = settings_from_config({})
    assert (s.template.size, s.template.left_eye) == (256, (0.35, 0.35))
    assert (s.detector, s.upsample, s.keep, s.image_format, s.already_cropped) == ("hog", 1, "largest", "png", False)
    assert s.landmark_model.name == "shape_predictor_68_face_landmarks.dat"


def test_omegaconf_node_is_read():
    cfg = OmegaConf.create({"size": 128, "left_eye": [0.3, 0.4], "detector": "NONE", "num_workers": 3, "limit": None})
    s = settings_from_config(cfg)
    assert (s.template.size, s.template.left_eye, s.detector) == (128, (0.3, 0.4), "none")
    assert num_workers(cfg) == 3 and limit(cfg) is None


def test_fingerprint_covers_the_output_but_not_workers_or_limit():
    a = settings_from_config({"num_workers": 1}).fingerprint()
    assert a == settings_from_config({"num_workers": 4, "limit": 2}).fingerprint()
    assert a != settings_from_config({"size": 128}).fingerprint()
    assert a != settings_from_config({"upsample": 0}).fingerprint()


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"detector": "cnn"}, r"preprocess\.detector='cnn' is not one of hog, box, none"),
        ({"keep": "all"}, r"preprocess\.keep='all' is not one of largest, first"),
        ({"image_format": "gif"}, r"preprocess\.image_format='gif'"),
        ({"upsample": -1}, r"preprocess\.upsample=-1 is not an integer ≥ 0"),
        ({"size": "big"}, r"preprocess\.size='big' is not an integer"),
        ({"left_eye": [0.35]}, r"preprocess\.left_eye=\[0\.35\] must be two fractions"),
        ({"left_eye": "0.35"}, r"preprocess\.left_eye='0\.35' must be two fractions"),
        ({"left_eye": [0.6, 0.35]}, r"preprocess\.left_eye=\[0\.6, 0\.35\] is not a valid eye position"),
    ],
)
def test_bad_settings_name_the_key(cfg, match):
    with pytest.raises(FermixError, match=match):
        settings_from_config(cfg)


def test_bad_run_options_name_the_key():
    with pytest.raises(FermixError, match=r"preprocess\.num_workers=0 is not an integer ≥ 1"):
        num_workers({"num_workers": 0})
    with pytest.raises(FermixError, match=r"preprocess\.limit=0"):
        limit({"limit": 0})
    with pytest.raises(FermixError, match=r"progress='bars' is not one of auto, rich, plain, none"):
        progress_mode("bars")
