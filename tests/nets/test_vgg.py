import torch

from reverie.nets.vgg import Preprocess


def test_features_stay_channels_last(vgg16):
    # The convolutions are 1.4x faster in channels_last; a plain NCHW tensor anywhere in the network
    # makes oneDNN reorder every layer. Preprocessing (a channel permutation) used to drop the layout.
    image = (torch.rand(1, 3, 32, 48) * 255).contiguous(memory_format=torch.channels_last)
    feats = vgg16(image, {"conv1_1", "conv3_1", "conv4_2"})
    for name, f in feats.items():
        assert f.is_contiguous(memory_format=torch.channels_last), name


def test_caffe_preprocessing_is_bgr_minus_the_mean():
    rgb = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = Preprocess("caffe")(rgb)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([30 - 103.939, 20 - 116.779, 10 - 123.68]))
