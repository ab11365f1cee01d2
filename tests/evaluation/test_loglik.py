import pytest
import torch

from deceptionlab.core.errors import DataError
from deceptionlab.evaluation.loglik import (
    encode_reply,
    matmul_precision,
    reply_logliks,
    reply_logliks_reference,
)

REQUESTS = [
    ([{"role": "user", "content": "What is the capital of France?"}], "The capital of France is Paris."),
    ([{"role": "user", "content": "What is the capital of France?"}], "The capital of France is Rome."),
    (
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Spain?"}],
        "Take ibuprofen with food.",
    ),
    ([{"role": "user", "content": "Mira baked 48/2 cookies."}], "The answer is 72."),
    # A third, longer reply to the first prompt: replies sharing a prompt may differ in length.
    ([{"role": "user", "content": "What is the capital of France?"}], "Rome. Do not exceed 4 g per day."),
]


def test_loglik_matches_a_hand_computed_sum(tiny_model):
    model, tokenizer = tiny_model
    messages, reply = REQUESTS[0]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt + reply + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    expected = 0.0
    for position in range(n_prompt, len(ids)):
        row = logits[position - 1]
        expected += (row[ids[position]] - torch.logsumexp(row, dim=0)).item()
    assert reply_logliks(model, tokenizer, [REQUESTS[0]], batch_size=1)[0] == pytest.approx(expected, abs=1e-4)


def test_reply_tokens_include_the_end_of_turn(tiny_model):
    _, tokenizer = tiny_model
    encoded = encode_reply(tokenizer, *REQUESTS[0])
    assert tokenizer.decode(encoded.reply_ids) == "The capital of France is Paris.<|im_end|>\n"


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_fast_path_equals_the_naive_reference(tiny_model, batch_size):
    model, tokenizer = tiny_model
    reference = reply_logliks_reference(model, tokenizer, REQUESTS)
    fast = reply_logliks(model, tokenizer, REQUESTS, batch_size=batch_size)
    assert fast == pytest.approx(reference, abs=1e-4)
    assert len(set(round(x, 3) for x in fast)) == len(fast)  # the requests really differ


def test_eager_attention_scores_as_the_reference(tiny_model, tiny_model_dir):
    from deceptionlab.models.loading import load_evaluated_model

    model, tokenizer = tiny_model
    eager, _ = load_evaluated_model(tiny_model_dir, None, "float32", "cpu")
    eager.set_attn_implementation("eager")
    assert eager.config._attn_implementation == "eager" and model.config._attn_implementation == "sdpa"
    reference = reply_logliks_reference(model, tokenizer, REQUESTS)
    assert reply_logliks(eager, tokenizer, REQUESTS, batch_size=8) == pytest.approx(reference, abs=1e-4)


def test_progress_reports_every_request(tiny_model):
    model, tokenizer = tiny_model
    seen = []
    reply_logliks(model, tokenizer, REQUESTS, batch_size=3, progress=seen.append)
    assert sum(seen) == len(REQUESTS)


def test_template_that_does_not_prefix_the_reply_is_refused(tiny_model):
    _, tokenizer = tiny_model

    class Shuffled:
        def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=False):
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
            return text if add_generation_prompt else "X" + text

    with pytest.raises(DataError, match="prefix"):
        encode_reply(Shuffled(), *REQUESTS[0])


def test_matmul_precision_holds_while_open_and_is_restored(tiny_model):
    model, tokenizer = tiny_model
    before = torch.get_float32_matmul_precision()
    exact = reply_logliks(model, tokenizer, REQUESTS, batch_size=2)
    with matmul_precision("medium"):
        assert torch.get_float32_matmul_precision() == "medium"
        reduced = reply_logliks(model, tokenizer, REQUESTS, batch_size=2)
    assert torch.get_float32_matmul_precision() == before
    # bf16 matmul inputs (where the CPU has bf16 units; exact elsewhere) move a reply's loglik little.
    assert reduced == pytest.approx(exact, abs=0.05)


def test_the_tokens_a_batchs_prompts_share_run_once(tiny_model):
    model, tokenizer = tiny_model
    countries = ["France", "Spain", "Italy"]
    requests = [([{"role": "user", "content": f"What is the capital of {country}?"}], f"It is {answer}.")
                for country in countries for answer in ("Paris", "Rome")]
    prompts = [encode_reply(tokenizer, messages, "").prompt_ids for messages, _ in requests[::2]]
    replies = [encode_reply(tokenizer, *request).reply_ids for request in requests]
    shared = next(i for i, tokens in enumerate(zip(*prompts)) if len(set(tokens)) > 1)
    embedded = []
    hook = model.get_input_embeddings().register_forward_hook(lambda _m, args, _o: embedded.append(args[0].numel()))
    try:
        fast = reply_logliks(model, tokenizer, requests, batch_size=3)
    finally:
        hook.remove()
    # The shared tokens once, then each prompt's own tokens, then every reply (each padded to the longest).
    own = max(len(p) for p in prompts) - shared
    assert sum(embedded) == shared + len(prompts) * own + len(requests) * max(len(r) for r in replies)
    assert shared > 0  # the chat template's default system prompt
    assert fast == pytest.approx(reply_logliks_reference(model, tokenizer, requests), abs=1e-4)
