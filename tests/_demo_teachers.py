"""Small torch teachers with the reference teachers' contracts (2 s @ 16 kHz audio; RGB image),
for a fast end-to-end test of `hai-edge demo` that needs no trained weights."""

import torch
from torch import nn

class Aud(nn.Module):
    sample_rate = 16000
    window_samples = 32000
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Sequential(nn.Conv1d(1, 32, 400, 160), nn.ReLU(), nn.Conv1d(32, 64, 5, 2), nn.ReLU(),
                               nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, 128))
    def forward(self, x):
        return self.c(x[:, None] * 10)

class Img(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Sequential(nn.Conv2d(3, 32, 5, 4), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 128))
    def forward(self, x):
        return self.c(x)

def audio(): return Aud().eval()
def image(): return Img().eval()
