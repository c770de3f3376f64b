"""Caption parsing, the offline generator and the OpenAI-compatible path against a real loopback server."""

from __future__ import annotations

import pytest

from model.synth.captions import (
    CAPTION_INSTRUCTION,
    LLMCaptions,
    OfflineCaptions,
    OpenAIChat,
    deduplicate,
    parse_caption,
    parse_captions,
)

RECORDED_REPLY = """Here are your captions:
1. A photo of a green ceramic teapot, standing on a wooden desk in a sunlit study
2. A photo of an orange backpack, lying on a rocky riverbank
- "A photo of a leather hiking boot, placed in front of a log cabin."
A photo of a [object], [positioning] [scene]
3. A photo of a green ceramic teapot, standing on a wooden desk in a sunlit study
A photo of two cats and a dog, in a park
A photo of a brass telescope, on top of a rooftop terrace at night
"""


def test_parse_caption_extracts_object_and_normalizes() -> None:
    caption = parse_caption('  2) "A photo of an  orange backpack,   lying on a rocky riverbank."  ')
    assert caption is not None
    assert caption.text == "A photo of an orange backpack, lying on a rocky riverbank"
    assert caption.object == "orange backpack"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Sure! Here are 50 captions:",
        "A photo of a [object], [positioning] [scene]",
        "A photo of a red backpack",  # no placement or scene
        "A photo of a red backpack, here",  # scene of one word
        "A photo of a very big old shiny red leather travel backpack, on a table",  # object too long
        "An image of a red backpack, on a table",
        "A photo of a red backpack, on a table (in a kitchen)",
        "A photo of a " + "red " * 60 + "backpack, on a table",
    ],
)
def test_parse_caption_rejects_malformed_lines(line: str) -> None:
    assert parse_caption(line) is None


def test_parse_captions_counts_malformed_and_deduplicate_drops_repeats() -> None:
    captions, malformed = parse_captions(RECORDED_REPLY)
    assert [c.object for c in captions] == [
        "green ceramic teapot",
        "orange backpack",
        "leather hiking boot",
        "green ceramic teapot",
        "brass telescope",
    ]
    assert malformed == 3  # the preamble, the template echo, the "two cats and a dog" line
    unique = deduplicate(captions)
    assert len(unique) == 4 and [c.object for c in unique].count("green ceramic teapot") == 1
    seen = {c.key for c in unique}
    assert deduplicate([c.__class__(c.text.upper(), c.object) for c in unique], seen) == []


def test_offline_captions_parse_are_unique_and_reproducible() -> None:
    captions = OfflineCaptions(seed=3).generate(500)
    assert len(captions) == 500
    assert len({c.key for c in captions}) == 500
    for caption in captions:
        assert parse_caption(caption.text) == caption
    assert OfflineCaptions(seed=3).generate(500) == captions
    assert OfflineCaptions(seed=3).generate(200) == captions[:200]  # a bigger run extends a smaller one
    assert OfflineCaptions(seed=4).generate(200) != captions[:200]
    assert len({c.object for c in captions}) > 100


def test_offline_captions_refuse_more_than_the_lists_can_give() -> None:
    with pytest.raises(ValueError, match="at most"):
        OfflineCaptions().generate(OfflineCaptions.capacity())


def test_llm_captions_from_an_openai_compatible_endpoint(chat_server) -> None:
    chat_server.reply_with(RECORDED_REPLY)
    chat_server.reply_with(
        "A photo of a brass telescope, on top of a rooftop terrace at night\n"  # already seen
        "A photo of a wicker basket, next to a garden path\n"
        "A photo of a red toy robot, sitting on a classroom desk\n"
    )
    chat = OpenAIChat(chat_server.url, "test-model", "sk-test", temperature=0.7)
    try:
        captions = LLMCaptions(chat, captions_per_request=5).generate(6)
    finally:
        chat.close()
    assert [c.object for c in captions] == [
        "green ceramic teapot",
        "orange backpack",
        "leather hiking boot",
        "brass telescope",
        "wicker basket",
        "red toy robot",
    ]
    assert len(chat_server.requests) == 2
    first, second = chat_server.requests
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "test-model" and first["body"]["temperature"] == 0.7
    assert first["body"]["messages"][0] == {"role": "system", "content": CAPTION_INSTRUCTION}
    assert "5" in first["body"]["messages"][1]["content"]
    assert "2" in second["body"]["messages"][1]["content"]  # asks only for what is still missing


def test_llm_captions_give_up_with_a_clear_error_when_output_is_unusable(chat_server) -> None:
    for _ in range(3):
        chat_server.reply_with("I cannot help with that.")
    chat = OpenAIChat(chat_server.url, "test-model")
    with pytest.raises(RuntimeError, match="only 0 of 4 usable captions in 3 requests"):
        LLMCaptions(chat, max_requests=3).generate(4)
    assert chat_server.requests[0]["auth"] is None  # no key: no Authorization header


def test_openai_chat_reports_client_errors(chat_server) -> None:
    chat_server.replies.append((401, {"error": {"message": "bad key"}}))
    chat = OpenAIChat(chat_server.url, "test-model", "wrong")
    with pytest.raises(RuntimeError, match="401.*bad key"):
        chat.complete([{"role": "user", "content": "hi"}])
    with pytest.raises(RuntimeError, match="404"):
        OpenAIChat(chat_server.url + "/extra", "m").complete([{"role": "user", "content": "hi"}])


def test_local_causal_lm_is_prompted_with_its_chat_template(tmp_path) -> None:
    """A tiny random GPT-2 writes gibberish: the path runs end to end and the gibberish is refused."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from model.synth.captions import LocalChat, caption_request
    from model.tokenizer import build_clip_tokenizer

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=49408, n_positions=512, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer = build_clip_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}"
    )
    tokenizer.save_pretrained(tmp_path)

    chat = LocalChat(str(tmp_path), max_new_tokens=6, temperature=0.0, local_files_only=True)
    prompt = chat.prompt_text(caption_request(3))
    assert prompt.startswith("<system> You write captions") and prompt.endswith("<assistant> ")
    assert "Write 3 new captions." in prompt
    reply = chat.complete(caption_request(3))
    assert isinstance(reply, str) and reply == chat.complete(caption_request(3))  # greedy: repeatable
    with pytest.raises(RuntimeError, match="0 of 2 usable captions in 1 requests"):
        LLMCaptions(chat, max_requests=1).generate(2)
