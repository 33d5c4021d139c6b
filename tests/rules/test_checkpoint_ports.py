"""Ports of released checkpoints keep their published choices: reported at info, with the reason.

GPT-Neo's unscaled attention and BART's post-norm residuals are the models their weights were
trained as; a port must keep them. The same code written from scratch stays a warning.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import Severity

POST_NORM_BLOCK = """
import torch.nn as nn

class EncoderLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 8)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        x = self.norm(x + self.attn(x, x, x)[0])
        return x
"""

UNSCALED_ATTENTION = """
import torch
import torch.nn as nn

class LocalSelfAttention(nn.Module):
    def forward(self, query, key, value):
        weights = torch.matmul(query, key.transpose(-1, -2))
        return torch.softmax(weights, dim=-1) @ value
"""

PORTS = {
    "Hugging Face": "\nfrom transformers import PreTrainedModel\n\nclass BartPreTrainedModel(PreTrainedModel):\n    pass\n",
    "timm": "\nfrom timm.models._builder import build_model_with_cfg\n\ndef _create(variant, **kwargs):\n    return build_model_with_cfg(EncoderLayer, variant, **kwargs)\n",
    "from_pretrained": "\nclass Model(nn.Module):\n    @classmethod\n    def from_pretrained(cls, name):\n        return cls()\n",
}


def _findings(source: str, code: str):
    report = analyze_source(textwrap.dedent(source), "model.py")
    assert report.error is None
    return [finding for finding in report.findings if finding.code == code]


@pytest.mark.parametrize("code, body", [("LLM201", POST_NORM_BLOCK), ("LLM101", UNSCALED_ATTENTION)])
def test_written_from_scratch_is_a_warning(code, body):
    (finding,) = _findings(body, code)
    assert finding.severity is Severity.WARNING
    assert "released" not in finding.message


@pytest.mark.parametrize("port", sorted(PORTS))
@pytest.mark.parametrize("code, body", [("LLM201", POST_NORM_BLOCK), ("LLM101", UNSCALED_ATTENTION)])
def test_a_port_of_a_released_checkpoint_is_info_and_says_why(code, body, port):
    (finding,) = _findings(body + PORTS[port], code)
    assert finding.severity is Severity.INFO
    assert "released" in finding.message
    assert any("released" in related.message or "checkpoints" in related.message for related in finding.related)
