"""Trimming a long conversation to the model's context (`nanochat.chat.fit_to_context`, used by the CLI, the web API
and the widget alike): the oldest exchanges go, the system message never does."""
import pytest
from nanochat.tokenizer import Tokenizer
from nanochat.chat import fit_to_context, ContextError

TOK = Tokenizer([])   # byte-level: one token per byte, so lengths are easy to reason about
SYSTEM = {"role": "system", "content": "You are Nano, made by the course."}
LONG = [m for i in range(8) for m in ({"role": "user", "content": f"question {i} " * 4}, {"role": "assistant", "content": "answer " * 6})]
LAST = {"role": "user", "content": "What is your name?"}


def test_trimming_keeps_the_system_message():
    msgs, dropped = fit_to_context(TOK, [SYSTEM, *LONG, LAST], context=200, reserve=32)
    assert dropped >= 2 and dropped % 2 == 0, dropped
    assert msgs[0]["role"] == "user" and msgs[0]["content"].startswith(SYSTEM["content"]), msgs[0]
    assert msgs[-1] == LAST
    prompt = TOK.render_for_completion({"messages": msgs})
    assert SYSTEM["content"] in TOK.decode(prompt) and len(prompt) + 32 <= 200


def test_untrimmed_conversation_is_unchanged():
    msgs, dropped = fit_to_context(TOK, [SYSTEM, LAST], context=512, reserve=32)
    assert dropped == 0 and msgs[0]["content"].startswith(SYSTEM["content"]) and LAST["content"] in msgs[0]["content"]


def test_system_message_that_leaves_no_room_is_refused():
    with pytest.raises(ContextError, match=r"with the system message is \d+ tokens long.*context of 128 tokens"):
        fit_to_context(TOK, [{"role": "system", "content": "x" * 120}, *LONG[:2], LAST], context=128, reserve=16)
