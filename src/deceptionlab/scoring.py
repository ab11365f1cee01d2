"""Log-likelihood of an assistant reply given a chat prompt: the forced-choice stance reader.

The prompt is rendered with the model's chat template; the reply's tokens are those that the
template adds when the reply is appended as an assistant message (so the end-of-turn token counts:
the reply is read as the *whole* answer). Batches are left-padded so every reply ends at the last
position, and logits are computed only for the last positions that hold reply tokens: the
full-vocabulary projection at every prompt position is what makes the naive reader slow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from deceptionlab.errors import DataError

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Encoded:
    prompt_ids: list[int]
    reply_ids: list[int]


def encode_reply(tokenizer, messages: Messages, reply: str) -> Encoded:
    """Token ids of the rendered prompt and of the reply that follows it."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": reply}], tokenize=False
    )
    if not full.startswith(prompt):
        raise DataError("the chat template does not render the prompt as a prefix of prompt + reply")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # A token that merges across the prompt/reply boundary would make the split ambiguous.
        raise DataError("the prompt's tokens are not a prefix of the prompt + reply tokens")
    return Encoded(prompt_ids=prompt_ids, reply_ids=full_ids[len(prompt_ids) :])


def _batch_loglik(model, batch: Sequence[Encoded], pad_id: int) -> list[float]:
    lengths = [len(e.prompt_ids) + len(e.reply_ids) for e in batch]
    width = max(lengths)
    keep = max(len(e.reply_ids) for e in batch) + 1
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    reply_mask = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, (encoded, length) in enumerate(zip(batch, lengths, strict=True)):
        input_ids[row, width - length :] = torch.tensor(encoded.prompt_ids + encoded.reply_ids)
        attention_mask[row, width - length :] = 1
        reply_mask[row, width - len(encoded.reply_ids) :] = True
    # Explicit positions: left padding must not shift the rotary positions of the real tokens.
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        logits_to_keep=keep,
        use_cache=False,
    ).logits.float()
    # logits[:, j] predicts token (width - keep + j + 1); drop the last, which predicts nothing.
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    targets = input_ids[:, width - keep + 1 :].to(device)
    token_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mask = reply_mask[:, width - keep + 1 :].to(device)
    return (token_logprobs * mask).sum(dim=1).tolist()


@torch.inference_mode()
def reply_logliks(
    model,
    tokenizer,
    requests: Sequence[tuple[Messages, str]],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Summed log-likelihood of each (messages, reply) pair, in the order given."""
    encoded = [encode_reply(tokenizer, messages, reply) for messages, reply in requests]
    # Batch by length so that little compute goes to padding; results go back in input order.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].prompt_ids) + len(encoded[i].reply_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for index, value in zip(chunk, _batch_loglik(model, [encoded[i] for i in chunk], pad_id), strict=True):
            results[index] = value
        if progress is not None:
            progress(len(chunk))
    return results


@torch.inference_mode()
def reply_logliks_reference(model, tokenizer, requests: Sequence[tuple[Messages, str]]) -> list[float]:
    """The naive reader: one sequence at a time, full-vocabulary log-softmax at every position.

    Kept as the reference that the fast path is tested and benchmarked against.
    """
    device = next(model.parameters()).device
    results = []
    for messages, reply in requests:
        encoded = encode_reply(tokenizer, messages, reply)
        ids = torch.tensor([encoded.prompt_ids + encoded.reply_ids], device=device)
        logprobs = torch.log_softmax(model(input_ids=ids).logits.float()[0, :-1], dim=-1)
        targets = ids[0, 1:]
        token_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        results.append(token_logprobs[-len(encoded.reply_ids) :].sum().item())
    return results
