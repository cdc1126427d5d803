"""Writes bench/models/*.onnx: the benchmark suite, exported from torch with
seeded random weights, opset 17, static shapes, legacy (TorchScript) exporter.

torch is a dev tool here (pip install torch), never a runtime dependency.
The example inputs are saved beside each model (<name>.inputs.npz) for the
benchmark: token models need ids inside the vocabulary and a real mask.
Sizes are cut down from the originals so that all models together stay small
enough to commit (see SIZES); each model is checked with onnx.checker and
against torch through onnxruntime.

    python -m bench.make_models [--only resnet,mlp]
"""
import argparse
import math
import os

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn import functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
OPSET = 17

# What each model is cut down from, and how (the table in the README repeats it).
SIZES = {
    "resnet18_half": "ResNet-18 at 1x3x224x224, widths halved (32..256), 1000 classes",
    "mobilenetv2_half": "MobileNetV2 at 1x3x224x224, width multiplier 0.5, last conv 640, 1000 classes",
    "se_cnn": "small CNN at 1x3x112x112: SiLU, HardSwish, squeeze-excite, 16..128 channels, 100 classes",
    "bert_small": "BERT encoder: seq 128, hidden 256, 4 heads, 4 layers, FFN 1024, vocab 2048, attention mask",
    "gpt2_small": "GPT-2 decoder: seq 64, hidden 256, 4 heads, 4 layers, vocab 2048 (tied head), causal",
    "mlp": "MLP 784-512-512-10 with ReLU at batch 1",
    "lstm": "nn.LSTM: seq 32, batch 1, input 64, hidden 128, then a linear head to 10",
}


# -- CNNs ---------------------------------------------------------------------
def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, 1)
        self.skip = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.b(F.relu(self.a(x))) + self.skip(x))


class ResNet18(nn.Module):
    def __init__(self, widths=(32, 64, 128, 256), classes=1000):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, widths[0], 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, mid, 1), nn.ReLU6()]
        layers += [conv_bn(mid, mid, 3, stride, groups=mid), nn.ReLU6(), conv_bn(mid, cout, 1)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    # (expansion, channels, repeats, stride) of the paper, channels scaled by `width`
    CONFIG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width=0.5, last=640, classes=1000):
        super().__init__()
        scale = lambda c: max(8, int(c * width + 4) // 8 * 8)  # noqa: E731
        cin = scale(32)
        layers = [conv_bn(3, cin, 3, 2), nn.ReLU6()]
        for t, c, n, s in self.CONFIG:
            for i in range(n):
                layers.append(InvertedResidual(cin, scale(c), s if i == 0 else 1, t))
                cin = scale(c)
        layers += [conv_bn(cin, last, 1), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.down, self.up = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.up(F.silu(self.down(s))))


class SEBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.expand = conv_bn(cin, cout * 2, 1)
        self.dw = conv_bn(cout * 2, cout * 2, 3, stride, groups=cout * 2)
        self.se = SqueezeExcite(cout * 2)
        self.project = conv_bn(cout * 2, cout, 1)

    def forward(self, x):
        x = F.silu(self.expand(x))
        x = F.hardswish(self.dw(x))
        return self.project(self.se(x))


class SECNN(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128), classes=100):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, widths[0], 3, 2), nn.Hardswish())
        blocks, cin = [], widths[0]
        for w in widths:
            blocks.append(SEBlock(cin, w, 2 if w != cin else 1))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


# -- transformers -------------------------------------------------------------
class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)

    def forward(self, x, bias):
        b, s, h = x.shape
        q, k, v = self.qkv(x).reshape(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + bias
        y = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, s, h)
        return self.out(y)


class EncoderLayer(nn.Module):
    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.ff1, self.ff2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)

    def forward(self, x, bias):      # post-norm, exact GELU (BERT)
        x = self.ln1(x + self.attn(x, bias))
        return self.ln2(x + self.ff2(F.gelu(self.ff1(x))))


class Bert(nn.Module):
    def __init__(self, vocab=2048, seq=128, hidden=256, heads=4, layers=4, ffn=1024):
        super().__init__()
        self.tok, self.pos, self.typ = nn.Embedding(vocab, hidden), nn.Embedding(seq, hidden), nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)

    def forward(self, input_ids, attention_mask, token_type_ids):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.ln(self.tok(input_ids) + self.pos(pos) + self.typ(token_type_ids))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x, torch.tanh(self.pooler(x[:, 0]))


class DecoderLayer(EncoderLayer):
    def forward(self, x, bias):      # pre-norm, tanh GELU (GPT-2)
        x = x + self.attn(self.ln1(x), bias)
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, vocab=2048, seq=64, hidden=256, heads=4, layers=4):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, hidden), nn.Embedding(seq, hidden)
        self.layers = nn.ModuleList(DecoderLayer(hidden, heads, 4 * hidden) for _ in range(layers))
        self.ln = nn.LayerNorm(hidden)
        self.register_buffer("causal", torch.triu(torch.full((seq, seq), -1e4), 1))

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.tok(input_ids) + self.pos(pos)
        for layer in self.layers:
            x = layer(x, self.causal)
        return self.ln(x) @ self.tok.weight.t()   # tied LM head


# -- small ones ---------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class LSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.LSTM(64, 128), nn.Linear(128, 10)

    def forward(self, x):
        y, (h, _) = self.rnn(x)
        return y, self.head(h[-1])


def image(n=224):
    return {"image": torch.randn(1, 3, n, n)}


def tokens(seq, mask=False):
    g = torch.Generator().manual_seed(1)
    feeds = {"input_ids": torch.randint(0, 2048, (1, seq), generator=g)}
    if mask:
        m = torch.ones(1, seq, dtype=torch.int64)
        m[:, seq * 3 // 4:] = 0                       # padded tail
        feeds["attention_mask"] = m
        feeds["token_type_ids"] = (torch.arange(seq) >= seq // 2).long().unsqueeze(0)
    return feeds


# name: (module factory, example inputs, output names)
MODELS = {
    "resnet18_half": (ResNet18, lambda: image(224), ["logits"]),
    "mobilenetv2_half": (MobileNetV2, lambda: image(224), ["logits"]),
    "se_cnn": (SECNN, lambda: image(112), ["logits"]),
    "bert_small": (Bert, lambda: tokens(128, mask=True), ["hidden", "pooled"]),
    "gpt2_small": (GPT2, lambda: tokens(64), ["logits"]),
    "mlp": (MLP, lambda: {"x": torch.randn(1, 784)}, ["logits"]),
    "lstm": (LSTM, lambda: {"x": torch.randn(32, 1, 64)}, ["y", "logits"]),
}


def randomize(module, seed):
    """Seeded weights; BatchNorm statistics made non-trivial so folding them matters."""
    torch.manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return module.eval()


def export(name, seed=0):
    factory, make_inputs, outputs = MODELS[name]
    torch.manual_seed(seed)
    module = randomize(factory(), seed)
    feeds = make_inputs()
    path = os.path.join(OUT, name + ".onnx")
    with torch.no_grad():
        torch.onnx.export(module, tuple(feeds.values()), path, input_names=list(feeds), output_names=outputs,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
        expected = module(*feeds.values())
    np.savez(os.path.join(OUT, name + ".inputs.npz"), **{k: v.numpy() for k, v in feeds.items()})
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    check_ort(path, {k: v.numpy() for k, v in feeds.items()},
              [expected] if isinstance(expected, torch.Tensor) else list(expected))
    return path


def check_ort(path, feeds, expected):
    import onnxruntime as ort
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-3, atol=1e-4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(MODELS))
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in a.only.split(","):
        path = export(name)
        print(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB  ({SIZES[name]})")


if __name__ == "__main__":
    main()
