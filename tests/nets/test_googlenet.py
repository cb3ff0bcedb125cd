"""GoogLeNet features from a torchvision-format state dict, checked against torchvision's layout.

No real checkpoint exists here: the tests build a random state dict with the exact keys and shapes of
torchvision's googlenet (written out below from torchvision's GoogLeNet constructor, independently of the
module under test) and an unfolded reference forward pass in torchvision's order of operations.
"""

import math
import os

import pytest
import torch
from torch.nn import functional as F

from reverie.errors import ReverieError
from reverie.nets import googlenet
from reverie.nets.googlenet import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYER_WEIGHTS,
    DEFAULT_STYLE_LAYERS,
    GOOGLENET_LAYERS,
    GoogLeNetFeatures,
    find_googlenet_checkpoint,
    load_googlenet_state,
)

# torchvision: Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
CHANNELS = {
    "conv1": 64,
    "conv2": 64,
    "conv3": 192,
    "inception3a": 256,
    "inception3b": 480,
    "inception4a": 512,
    "inception4b": 512,
    "inception4c": 512,
    "inception4d": 528,
    "inception4e": 832,
    "inception5a": 832,
    "inception5b": 1024,
}
STRIDES = {"conv1": 2, "conv2": 4, "conv3": 4, "inception3a": 8, "inception3b": 8, "inception5a": 32}
STRIDES |= {f"inception4{c}": 16 for c in "abcde"} | {"inception5b": 32}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def conv_table(branch3_kernel: int = 3) -> dict[str, tuple[int, int, int]]:
    """BasicConv2d module path -> (out, in, kernel), as torchvision builds them."""
    table = {"conv1": (64, 3, 7), "conv2": (64, 64, 1), "conv3": (192, 64, 3)}
    for name, (cin, c1, r3, c3, r5, c5, proj) in INCEPTIONS.items():
        table[f"{name}.branch1"] = (c1, cin, 1)
        table[f"{name}.branch2.0"] = (r3, cin, 1)
        table[f"{name}.branch2.1"] = (c3, r3, 3)
        table[f"{name}.branch3.0"] = (r5, cin, 1)
        table[f"{name}.branch3.1"] = (c5, r5, branch3_kernel)  # torchvision: 3 (vision#906); paper: 5
        table[f"{name}.branch4.1"] = (proj, cin, 1)
    table["aux1.conv"], table["aux2.conv"] = (128, 512, 1), (128, 528, 1)
    return table


def torchvision_state(seed: int = 0, branch3_kernel: int = 3) -> dict[str, torch.Tensor]:
    """A random state dict with the keys and shapes of torchvision's googlenet (aux heads and fc too).

    He-scaled weights and BatchNorm stats near identity keep activations alive through all 57 ReLUs."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, (cout, cin, k) in conv_table(branch3_kernel).items():
        state[f"{prefix}.conv.weight"] = torch.randn(cout, cin, k, k, generator=gen) * math.sqrt(
            2 / (cin * k * k)
        )
        state[f"{prefix}.bn.weight"] = 1 + 0.2 * torch.randn(cout, generator=gen)
        state[f"{prefix}.bn.bias"] = 0.1 * torch.randn(cout, generator=gen)
        state[f"{prefix}.bn.running_mean"] = 0.2 * torch.randn(cout, generator=gen)
        state[f"{prefix}.bn.running_var"] = 0.5 + torch.rand(cout, generator=gen)
        state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    for aux in ("aux1", "aux2"):
        state[f"{aux}.fc1.weight"], state[f"{aux}.fc1.bias"] = torch.zeros(1024, 2048), torch.zeros(1024)
        state[f"{aux}.fc2.weight"], state[f"{aux}.fc2.bias"] = torch.zeros(1000, 1024), torch.zeros(1000)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 1024), torch.zeros(1000)
    return state


def basic_conv(state, prefix, x, stride=1):
    """torchvision's BasicConv2d unfolded: conv (no bias), eval BatchNorm (eps 0.001), ReLU."""
    w = state[f"{prefix}.conv.weight"]
    x = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
    bn = [state[f"{prefix}.bn.{s}"] for s in ("running_mean", "running_var", "weight", "bias")]
    return F.relu(F.batch_norm(x, *bn, training=False, eps=0.001))


def inception(state, name, x):
    b1 = basic_conv(state, f"{name}.branch1", x)
    b2 = basic_conv(state, f"{name}.branch2.1", basic_conv(state, f"{name}.branch2.0", x))
    b3 = basic_conv(state, f"{name}.branch3.1", basic_conv(state, f"{name}.branch3.0", x))
    b4 = basic_conv(state, f"{name}.branch4.1", F.max_pool2d(x, 3, 1, 1, ceil_mode=True))
    return torch.cat([b1, b2, b3, b4], 1)


def transform_input(rgb255):
    """What a torchvision user does: ToTensor + Normalize(ImageNet), then googlenet's transform_input."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (rgb255 / 255 - mean) / std
    return x * (std / 0.5) + (mean - 0.5) / 0.5


def reference(state, rgb255):
    """Every layer of torchvision's pretrained googlenet (transform_input=True), unfolded, in order."""
    out, x = {}, transform_input(rgb255)
    out["conv1"] = x = basic_conv(state, "conv1", x, stride=2)
    out["conv2"] = x = basic_conv(state, "conv2", F.max_pool2d(x, 3, 2, ceil_mode=True))
    out["conv3"] = x = basic_conv(state, "conv3", x)
    x = F.max_pool2d(x, 3, 2, ceil_mode=True)
    for name in INCEPTIONS:
        if name in ("inception4a", "inception5a"):
            x = F.max_pool2d(x, 3 if name == "inception4a" else 2, 2, ceil_mode=True)
        out[name] = x = inception(state, name, x)
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine OpenMP waits make them 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def state():
    return torchvision_state()


@pytest.fixture(scope="module")
def checkpoint(state, tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "googlenet-1378be20.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def net(checkpoint):
    return GoogLeNetFeatures(load_googlenet_state(checkpoint))


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(1)) * 255


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_layers_channels_and_strides(net, image):
    assert net.arch == "googlenet"
    assert net.names == list(GOOGLENET_LAYERS) == list(CHANNELS)
    out = net(image, set(GOOGLENET_LAYERS))
    assert list(out) == list(GOOGLENET_LAYERS)
    for name, features in out.items():
        s = STRIDES[name]
        assert features.shape == (1, CHANNELS[name], math.ceil(64 / s), math.ceil(80 / s)), name
        assert features.min() >= 0 and features.amax() > 0, name  # post-ReLU, and alive


def test_matches_unfolded_torchvision_forward(state, net, image):
    expected = reference(state, image)
    out = net(image, set(GOOGLENET_LAYERS))
    for name in GOOGLENET_LAYERS:
        scale = expected[name].abs().max()
        torch.testing.assert_close(out[name] / scale, expected[name] / scale, atol=1e-4, rtol=0, msg=name)


def test_batchnorm_folding_is_exact(state):
    """One BasicConv2d, folded vs conv + F.batch_norm(eval): equal to float32 rounding."""
    x = torch.randn(2, 480, 9, 11, generator=torch.Generator().manual_seed(2))
    folded = googlenet._folded(state, "inception4a.branch3.0")
    torch.testing.assert_close(folded(x), basic_conv(state, "inception4a.branch3.0", x), atol=1e-5, rtol=1e-5)
    y = torch.randn(1, 3, 33, 41, generator=torch.Generator().manual_seed(3))
    conv1 = googlenet._folded(state, "conv1", stride=2)
    torch.testing.assert_close(conv1(y), basic_conv(state, "conv1", y, stride=2), atol=1e-5, rtol=1e-5)


def test_preprocessing_is_torchvision_transform_input():
    """ImageNet Normalize then transform_input = (x/255 - 0.5) / 0.5 in every channel: [-1, 1]."""
    for level in (0.0, 51.0, 127.5, 200.0, 255.0):
        rgb = torch.full((1, 3, 4, 4), level)
        torch.testing.assert_close(googlenet.preprocess(rgb), transform_input(rgb), atol=1e-6, rtol=0)
        torch.testing.assert_close(googlenet.preprocess(rgb), torch.full_like(rgb, level / 127.5 - 1))
    mixed = torch.tensor([10.0, 120.0, 250.0]).view(1, 3, 1, 1)  # channels stay in RGB order
    torch.testing.assert_close(googlenet.preprocess(mixed), transform_input(mixed), atol=1e-6, rtol=0)


def test_only_requested_layers_and_stops_early(net, image):
    ran = []
    hooks = [m.register_forward_hook(lambda *_, n=n: ran.append(n)) for n, m in net.stages.items()]
    try:
        assert list(net(image, {"conv1"})) == ["conv1"]
        assert ran == ["conv1"]
        ran.clear()
        assert set(net(image, frozenset({"conv3", "inception3b"}))) == {"conv3", "inception3b"}
        assert ran == list(GOOGLENET_LAYERS[:5])
        ran.clear()
        assert net(image, set()) == {} and ran == []
    finally:
        for h in hooks:
            h.remove()


def test_unknown_layer_lists_known(net, image):
    with pytest.raises(ValueError, match="inception4c") as err:
        net(image, {"inception_4c/output"})
    assert "inception_4c/output" in str(err.value)


def test_frozen_and_eval(net):
    assert not net.training
    assert all(not p.requires_grad for p in net.parameters())


def test_avg_pooling(checkpoint, net, image):
    avg = GoogLeNetFeatures(load_googlenet_state(checkpoint), pooling="avg")
    a, m = avg(image, {"conv2", "inception5b"}), net(image, {"conv2", "inception5b"})
    assert a["inception5b"].shape == m["inception5b"].shape == (1, 1024, 2, 3)
    assert not torch.allclose(a["conv2"], m["conv2"])
    with pytest.raises(ValueError, match="pooling"):
        GoogLeNetFeatures(load_googlenet_state(checkpoint), pooling="median")


def test_default_layers():
    assert set(DEFAULT_CONTENT_LAYERS) <= set(GOOGLENET_LAYERS)
    assert set(DEFAULT_STYLE_LAYERS) <= set(GOOGLENET_LAYERS)
    assert len(DEFAULT_STYLE_LAYER_WEIGHTS) == len(DEFAULT_STYLE_LAYERS)
    order = [GOOGLENET_LAYERS.index(n) for n in DEFAULT_STYLE_LAYERS]
    assert order == sorted(order)


def test_gradients_reach_the_image(net):
    """Gatys optimises the pixels: every default layer must pass a non-zero gradient back to them."""
    gen = torch.Generator().manual_seed(4)
    for layer in {*DEFAULT_CONTENT_LAYERS, *DEFAULT_STYLE_LAYERS}:
        pixels = (torch.rand(1, 3, 64, 80, generator=gen) * 255).requires_grad_(True)
        features = net(pixels, {layer})[layer]
        (features.pow(2).sum()).backward()
        assert pixels.grad is not None and pixels.grad.abs().sum() > 0, layer
        assert torch.isfinite(pixels.grad).all(), layer


def test_load_keeps_only_feature_tensors(checkpoint, state):
    loaded = load_googlenet_state(checkpoint)
    assert not any(k.startswith(("aux", "fc")) or k.endswith("num_batches_tracked") for k in loaded)
    assert loaded["inception3a.branch3.1.conv.weight"].shape == (32, 16, 3, 3)
    assert loaded["conv1.bn.running_var"].dtype == torch.float32
    torch.testing.assert_close(loaded["conv3.conv.weight"], state["conv3.conv.weight"])


def test_load_unwraps_and_converts(state, tmp_path):
    path = tmp_path / "trained.pth"
    torch.save({"state_dict": {k: v.half() for k, v in state.items()}, "epoch": 3}, path)
    loaded = load_googlenet_state(path)
    assert loaded["conv1.conv.weight"].dtype == torch.float32


def test_rewritten_file_is_read_again(state, tmp_path):
    path = tmp_path / "g.pth"
    torch.save(state, path)
    first = load_googlenet_state(path)
    changed = dict(state, **{"conv1.bn.bias": torch.ones(64)})
    torch.save(changed, path)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    assert load_googlenet_state(path) is not first
    assert load_googlenet_state(path)["conv1.bn.bias"].eq(1).all()


def test_find_checkpoint_in_hub_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_googlenet_checkpoint() is None
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "vgg16-397923af.pth").write_bytes(b"x")
    assert find_googlenet_checkpoint() is None
    old, new = folder / "googlenet-00000000.pth", folder / "googlenet-1378be20.pth"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, ns=(10**18, 10**18))
    os.utime(new, ns=(2 * 10**18, 2 * 10**18))
    assert find_googlenet_checkpoint() == new


def test_default_load_uses_hub_checkpoint(monkeypatch, tmp_path, state):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "googlenet-1378be20.pth")
    assert set(load_googlenet_state()) == set(googlenet.state_shapes())


def test_missing_checkpoint_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ReverieError) as err:
        load_googlenet_state()
    message = one_line(err)
    assert "checkpoints" in message and "--weights" in message and "googlenet-1378be20.pth" in message
    assert str(tmp_path) in message and "downloads nothing" in message
    with pytest.raises(ReverieError, match="not found"):
        load_googlenet_state(tmp_path / "nope.pth")
    with pytest.raises(ReverieError, match="directory"):
        load_googlenet_state(tmp_path)


def test_bad_files_are_one_line_errors(state, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\nat all\n")
    with pytest.raises(ReverieError, match="not a PyTorch state dict") as err:
        load_googlenet_state(text)
    one_line(err)

    vgg = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, vgg)
    with pytest.raises(ReverieError, match="does not look like torchvision's googlenet") as err:
        load_googlenet_state(vgg)
    one_line(err)

    incomplete = tmp_path / "incomplete.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("inception5b")}, incomplete)
    with pytest.raises(
        ReverieError, match=r"lacks the tensor 'inception5b\.branch1\.conv\.weight' and 29 more"
    ) as err:
        load_googlenet_state(incomplete)
    one_line(err)

    paper = tmp_path / "paper.pth"  # a GoogLeNet with the paper's 5x5 branch: not torchvision's weights
    torch.save(torchvision_state(branch3_kernel=5), paper)
    with pytest.raises(
        ReverieError, match=r"inception3a.branch3.1.conv.weight has shape \(32, 16, 5, 5\)"
    ) as err:
        load_googlenet_state(paper)
    one_line(err)

    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ReverieError, match="not a state dict") as err:
        load_googlenet_state(listed)
    one_line(err)


def test_constructor_checks_a_raw_state(state):
    broken = dict(state, **{"conv2.conv.weight": torch.zeros(64, 64, 3, 3)})
    with pytest.raises(ReverieError, match=r"conv2\.conv\.weight has shape"):
        GoogLeNetFeatures(broken)
