#!/usr/bin/python3
"""Trains a tiny anomaly-detection network and writes it as a Ganglion device model (.gdm).

The model scores a window of machine readings: two features in, one anomaly score out,
    f0 = vibration RMS over the window / 4 g
    f1 = (mean temperature over the window - 20 C) / 80 C
    2 -> 8 (ReLU) -> 1 (sigmoid)
trained by plain-Python gradient descent (no numpy) on synthetic data: normal operation
(RMS 0.1-1.2 g, 15-70 C) versus bearing faults (RMS 1.8-4 g) and overheating (85-110 C).
It is then quantized to int8 (symmetric per-layer weights, int32 biases, asymmetric int8
activations, Q31 multiplier + shift requantization, sigmoid through a 256-entry table) and
written in the format described in src/device/MODEL_FORMAT.md.

    /usr/bin/python3 tools/make_model.py -o examples/device/anomaly.gdm
"""
import argparse
import math
import random
import struct
import sys

IN_LO, IN_HI = 0.0, 2.0          # input feature range -> int8
LOGIT_LO, LOGIT_HI = -8.0, 8.0   # pre-sigmoid range -> int8
ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX = 0, 1, 2, 3


def sample(rng):
    """(features, label) for one synthetic window."""
    kind = rng.random()
    if kind < 0.6:
        rms, temp, label = rng.uniform(0.1, 1.2), rng.uniform(15, 70), 0.0
    elif kind < 0.8:
        rms, temp, label = rng.uniform(1.8, 4.0), rng.uniform(15, 75), 1.0
    else:
        rms, temp, label = rng.uniform(0.1, 1.5), rng.uniform(85, 110), 1.0
    return [rms / 4.0, (temp - 20.0) / 80.0], label


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))


def forward(net, x):
    w1, b1, w2, b2 = net
    h = [max(0.0, sum(w * xi for w, xi in zip(row, x)) + b) for row, b in zip(w1, b1)]
    z = sum(w * hi for w, hi in zip(w2, h)) + b2
    return h, z, sigmoid(z)


def train(seed, steps, hidden=8, lr=0.5):
    rng = random.Random(seed)
    w1 = [[rng.gauss(0, 1.0) for _ in range(2)] for _ in range(hidden)]
    b1 = [rng.uniform(-0.5, 0.5) for _ in range(hidden)]
    w2 = [rng.gauss(0, 0.5) for _ in range(hidden)]
    b2 = 0.0
    data = [sample(rng) for _ in range(600)]
    for step in range(steps):
        batch = rng.sample(data, 32)
        gw1 = [[0.0, 0.0] for _ in range(hidden)]
        gb1 = [0.0] * hidden
        gw2 = [0.0] * hidden
        gb2 = 0.0
        for x, y in batch:
            h, _, p = forward((w1, b1, w2, b2), x)
            dz = p - y  # d(cross-entropy)/dz
            gb2 += dz
            for j in range(hidden):
                gw2[j] += dz * h[j]
                if h[j] > 0:
                    dh = dz * w2[j]
                    gb1[j] += dh
                    gw1[j][0] += dh * x[0]
                    gw1[j][1] += dh * x[1]
        k = lr / len(batch)
        for j in range(hidden):
            w2[j] -= k * gw2[j]
            b1[j] -= k * gb1[j]
            w1[j][0] -= k * gw1[j][0]
            w1[j][1] -= k * gw1[j][1]
        b2 -= k * gb2
    net = (w1, b1, w2, b2)
    test = [sample(rng) for _ in range(1000)]
    acc = sum((forward(net, x)[2] > 0.5) == (y > 0.5) for x, y in test) / len(test)
    hidden_max = max(max(forward(net, x)[0]) for x, _ in data)
    return net, acc, hidden_max, test


def clamp8(v):
    return max(-128, min(127, v))


def round_half_away(x):
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def asymmetric(lo, hi):
    scale = (hi - lo) / 255.0
    return scale, clamp8(round_half_away(-128 - lo / scale))


def multiplier_shift(m):
    """Real multiplier m > 0 -> (Q31 multiplier in [2^30, 2^31), right shift)."""
    frac, exp = math.frexp(m)
    mult = round_half_away(frac * (1 << 31))
    if mult == 1 << 31:
        mult //= 2
        exp += 1
    shift = -exp
    if not -30 <= shift <= 31:
        raise ValueError(f"multiplier {m} out of range")
    return mult, shift


def quantize_layer(w, b, act, in_scale, in_zp, pre_lo, pre_hi):
    """One layer as a dict of the file's fields."""
    wmax = max(1e-9, max(abs(v) for row in w for v in row))
    w_scale = wmax / 127.0
    qw = [[clamp8(round_half_away(v / w_scale)) for v in row] for row in w]
    qb = [round_half_away(v / (in_scale * w_scale)) for v in b]
    pre_scale, pre_zp = asymmetric(pre_lo, pre_hi)
    if act == ACT_SIGMOID:
        out_scale, out_zp = 1.0 / 256.0, -128
        lut = [clamp8(round_half_away(sigmoid(pre_scale * (q - pre_zp)) * 256.0) - 128)
               for q in range(-128, 128)]
    else:
        out_scale, out_zp, lut = pre_scale, pre_zp, []
    mult, shift = multiplier_shift(in_scale * w_scale / pre_scale)
    return dict(inp=len(w[0]), out=len(w), act=act, in_scale=in_scale, in_zp=in_zp,
                out_scale=out_scale, out_zp=out_zp, mult=mult, shift=shift, pre_zp=pre_zp,
                pre_scale=pre_scale, w=qw, b=qb, lut=lut)


def serialize(layers):
    body = b""
    for l in layers:
        body += struct.pack("<HHB3xfifiiiif", l["inp"], l["out"], l["act"], l["in_scale"],
                            l["in_zp"], l["out_scale"], l["out_zp"], l["mult"], l["shift"],
                            l["pre_zp"], l["pre_scale"])
        body += bytes((v & 0xFF) for row in l["w"] for v in row)
        body += b"".join(struct.pack("<i", v) for v in l["b"])
        body += bytes((v & 0xFF) for v in l["lut"])
    header_len = 12
    return b"GDM1" + struct.pack("<HHI", 1, len(layers), header_len + len(body)) + body


def run_int8(layers, xq):
    """The reference integer inference (MODEL_FORMAT.md), for checking the written file."""
    for l in layers:
        y = []
        for row, bias in zip(l["w"], l["b"]):
            acc = bias + sum(w * (x - l["in_zp"]) for w, x in zip(row, xq))
            acc = max(-2**31, min(2**31 - 1, acc))
            prod, s = acc * l["mult"], 31 + l["shift"]
            half = 1 << (s - 1)
            r = (prod + half) >> s if prod >= 0 else -((-prod + half) >> s)
            v = clamp8(r + l["pre_zp"])
            if l["act"] == ACT_RELU:
                v = max(v, l["out_zp"])
            elif l["act"] == ACT_SIGMOID:
                v = l["lut"][v + 128]
            y.append(v)
        xq = y
    return xq


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="examples/device/anomaly.gdm")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()

    net, acc, hidden_max, test = train(args.seed, args.steps)
    w1, b1, w2, b2 = net
    in_scale, in_zp = asymmetric(IN_LO, IN_HI)
    l1 = quantize_layer(w1, b1, ACT_RELU, in_scale, in_zp, 0.0, hidden_max * 1.1)
    l2 = quantize_layer([w2], [b2], ACT_SIGMOID, l1["out_scale"], l1["out_zp"], LOGIT_LO, LOGIT_HI)
    layers = [l1, l2]
    data = serialize(layers)

    q = lambda v: clamp8(round_half_away(v / in_scale + in_zp))
    int8_acc = sum(((run_int8(layers, [q(v) for v in x])[0] + 128) / 256.0 > 0.5) == (y > 0.5)
                   for x, y in test) / len(test)
    with open(args.output, "wb") as f:
        f.write(data)
    print(f"{args.output}: {len(data)} bytes, 2-8-1, float accuracy {acc:.3f}, "
          f"int8 accuracy {int8_acc:.3f}")
    return 0 if int8_acc > 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
