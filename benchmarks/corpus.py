"""Realistic model files of a chosen length, for the benchmarks (nanoGPT / HF / timm styles)."""

from __future__ import annotations

HEADER = '''\
"""Generated benchmark model file."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import functional as fn
'''

SNIPPETS = (
    '''
class CausalSelfAttention{i}(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
''',
    '''
class UnscaledAttention{i}(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        scores = torch.matmul(q, k.transpose(-1, -2))
        if mask is not None:
            scores = scores + mask
        weights = fn.softmax(scores, dim=-1)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)
''',
    '''
class MLP{i}(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(self.fc2(F.gelu(self.fc1(x))))
''',
    '''
class PreNormBlock{i}(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention{i}(dim, heads, 256)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = MLP{i}(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x
''',
    '''
class PostNormBlock{i}(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn = UnscaledAttention{i}(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.ff = MLP{i}(dim, 4 * dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x):
        h = self.attn(x)
        x = self.norm1(x + h)
        x = self.norm2(x + self.ff(x))
        return x
''',
    '''
class LlamaStyleLayer{i}(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(dim)
        self.self_attn = CausalSelfAttention{i}(dim, heads, 256)
        self.post_attention_layernorm = nn.RMSNorm(dim)
        self.mlp = MLP{i}(dim, 4 * dim)

    def forward(self, hidden_states):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


def build_encoder{i}(d_model=256):
    layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=8, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=12)
''',
)

TRAINING_LOOP = '''

def train(model, data, steps=1000, lr=3e-4):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    for step in range(steps):
        x, y = data[step]
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model
'''


def model_file(lines: int = 2000) -> str:
    parts = [HEADER]
    count = HEADER.count("\n") + TRAINING_LOOP.count("\n")
    index = 0
    while count < lines:
        snippet = SNIPPETS[index % len(SNIPPETS)].format(i=index // len(SNIPPETS))
        parts.append(snippet)
        count += snippet.count("\n")
        index += 1
    parts.append(TRAINING_LOOP)
    return "".join(parts)
