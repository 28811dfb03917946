"""Midtraining and SFT (`chat_train`, chapters 03–04) on a tiny real setup: a byte-level tokenizer, a small GPT saved as
the "base" (and "mid") checkpoint, and synthetic conversations (spelling, repeating, adding with the calculator) as the
mixture and as the held-out set. The loss and the held-out chat bpb fall; a stopped or SIGKILLed run resumes to exactly
the same losses; two gloo processes match one; the ConversationLoader's batches always have targets and its mask is −1
exactly outside the assistant's turns (and inside tool outputs).

Run: .venv/bin/pytest tests/test_midtrain.py -q   (≈30 s on 2 cores)
"""
import os, sys, json, random, signal, subprocess, time
from pathlib import Path
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WORDS = ["cat", "dog", "sun", "tree", "book", "fish", "bird", "milk", "rain", "star", "moon", "frog"]


def make_conversation(rng: random.Random) -> dict:
    "One short conversation (≤ 65 byte tokens rendered): spell a word, repeat it, or add two numbers with the calculator."
    kind, w, a, b = rng.randrange(3), rng.choice(WORDS), rng.randint(1, 9), rng.randint(1, 9)
    if kind == 0: user, reply = f"Spell {w}", "-".join(w)
    elif kind == 1: user, reply = f"Say {w} twice", f"{w} {w}"
    else:
        user = f"What is {a}+{b}?"
        reply = [{"type": "text", "text": "So "}, {"type": "python", "text": f"{a}+{b}"},
                 {"type": "python_output", "text": str(a + b)}, {"type": "text", "text": f" is {a + b}."}]
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}

TRAIN = [make_conversation(random.Random(f"train/{i}")) for i in range(400)]
HELD_OUT = [make_conversation(random.Random(f"val/{i}")) for i in range(64)]


def tokenizer():
    from nanochat.tokenizer import Tokenizer
    return Tokenizer([])   # byte-level: 256 bytes + 9 special tokens


def make_run(run_dir: Path, stages=("base",)):
    "A run folder with a freshly initialised small GPT (T = 64) saved as the newest checkpoint of each of `stages`."
    from nanochat.model import GPT, config_from_depth
    from nanochat.checkpoint import save_checkpoint, checkpoint_dir
    torch.manual_seed(0)
    model = GPT(config_from_depth(1, tokenizer().vocab_size, aspect_ratio=32, head_dim=16, max_seq_len=64))
    for stage in stages:
        save_checkpoint(checkpoint_dir(run_dir, stage), 0, model, [], dict(model_config=model.config.__dict__), [])
    return run_dir


def settings(run_dir, **kw):
    from nanochat.settings import chapter_setup
    o = dict(device="cpu", dtype="float32", device_batch_size=4, total_batch_size=256, eval_every=10, eval_tokens=1024,
             checkpoint_every=5)
    o.update(kw)
    return chapter_setup("03_midtrain", "smoke", run_dir, o)


def use_held_out(monkeypatch=None):
    "The validation set of chat_train (`chat_val_batches`, SmolTalk test upstream): our held-out conversations instead."
    import nanochat.midtrain as M
    if monkeypatch is not None: monkeypatch.setattr(M, "SmolTalk", lambda split: HELD_OUT)
    else: M.SmolTalk = lambda split: HELD_OUT   # a subprocess of ours


def mid(run_dir, steps=12, stop_after=None, on_eval=None, **kw):
    "Midtrain as chapter 03 does (from 'base', warmdown 0.2), on TRAIN, for `steps` steps."
    from nanochat.midtrain import chat_train
    return chat_train(settings(run_dir, **kw), TRAIN, "base", "mid", steps, 1e9, 1.0, warmdown_ratio=0.2,
                      tokenizer=tokenizer(), stop_after=stop_after, on_eval=on_eval, quiet=True)


def losses(res): return [l for _, l in res["history"]["train"]]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    "12 steps of midtraining in one go: the reference for the resume tests."
    import nanochat.midtrain as M
    old = M.SmolTalk
    use_held_out()
    try: yield mid(make_run(tmp_path_factory.mktemp("straight")))
    finally: M.SmolTalk = old


def test_loss_and_held_out_bpb_fall(straight):
    import math
    l, val = losses(straight), straight["history"]["val"]
    assert straight["step"] == 12 and straight["finished"] and len(l) == 12
    assert abs(l[0] - math.log(265)) < 1e-3   # zero-initialised head: uniform over the 265 tokens
    assert sum(l[-3:]) / 3 < l[0] - 1.5, l
    assert [s for s, _ in val] == [0, 10, 12]
    assert val[-1][1] < val[0][1] - 1.0, val   # held-out conversations, assistant tokens only, in bits per byte
    assert [s for s, _ in straight["history"]["samples"]] == [0, 10, 12]   # replies to CHAT_PROMPTS at each evaluation


def test_chat_batch_size_sets_the_tokens_of_a_step(tmp_path, monkeypatch):
    "chat_batch_size: the chat stages' tokens per optimizer step (one forward pass of 4 × 64 here, not total_batch_size's 4)."
    use_held_out(monkeypatch)
    res = mid(make_run(tmp_path), steps=12, chat_batch_size=256, total_batch_size=1024)
    assert res["tokens"] == 12 * 256 and res["grad_accum"] == 1
    l = losses(res)
    assert sum(l[-3:]) / 3 < l[0] - 1.0, l   # 12 single-pass steps learn too


def test_stop_after_then_resume_is_exact(straight, tmp_path, monkeypatch):
    "7 steps, stop; a fresh call (new model, optimizers, loader) continues from the checkpoint: the same loss at every step."
    use_held_out(monkeypatch)
    run = make_run(tmp_path)
    first = mid(run, stop_after=7)
    assert first["step"] == 7 and not first["finished"]
    assert sorted(p.name for p in (run/"mid_checkpoints").glob("*.pt")) == ["step_000005.pt", "step_000007.pt"]
    second = mid(run)
    assert second["step"] == 12 and second["finished"]
    assert losses(second) == losses(straight)   # exactly: same conversations, same order, same optimizer state
    assert second["history"]["val"] == straight["history"]["val"]


def kill_worker(run_dir):
    "Subprocess: midtrain 12 steps (checkpoints every 4) and hang at the step-10 evaluation, to be SIGKILLed there."
    torch.set_num_threads(1)
    use_held_out()
    def on_eval(history):
        if history["val"][-1][0] == 10:
            Path(run_dir, "at_step_10").write_text("")
            time.sleep(600)   # killed here: after the step-8 checkpoint, mid-run
    mid(run_dir, checkpoint_every=4, on_eval=on_eval)
    Path(run_dir, "finished").write_text("")   # never reached


def test_sigkill_then_resume(straight, tmp_path, monkeypatch):
    run = make_run(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, __file__, "kill-worker", str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180   # a guard against a hang, not a speed requirement
        while not (run/"at_step_10").exists():
            if proc.poll() is not None: pytest.fail(f"worker exited with {proc.returncode}: {proc.stdout.read().decode()[-3000:]}")
            if time.monotonic() > deadline: pytest.fail("worker did not reach step 10 in 180 s")
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()
    assert not (run/"finished").exists()
    assert sorted(p.name for p in (run/"mid_checkpoints").glob("*.pt")) == ["step_000004.pt", "step_000008.pt"]
    use_held_out(monkeypatch)
    res = mid(run, checkpoint_every=4)   # a fresh process's view: resumes from step 8
    assert res["step"] == 12 and res["finished"]
    assert losses(res) == losses(straight)   # the killed process's steps 1–8 and this one's 9–12


# ---- 2 processes over gloo vs the same global batch in one process (an SFT step: from 'mid', warmdown 1.0) --------

SFT_STEPS, SFT_LR_SCALE = 5, 0.5

def sft_run(run_dir, total_batch_size):
    from nanochat.midtrain import chat_train
    return chat_train(settings(run_dir, total_batch_size=total_batch_size, eval_every=100, checkpoint_every=100),
                      TRAIN, "mid", "sft", SFT_STEPS, 1e9, SFT_LR_SCALE, warmdown_ratio=1.0, tokenizer=tokenizer(), quiet=True)

def gloo_worker(rank, run_dir, port):
    "torch.multiprocessing.spawn target: rank `rank` of 2, one micro-batch of 4 × 64 per rank per step."
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    import torch.distributed as dist
    use_held_out()
    res = sft_run(run_dir, total_batch_size=512)
    if rank == 0:
        Path(run_dir, "ddp.json").write_text(json.dumps(dict(losses=losses(res), world=res["world_size"], accum=res["grad_accum"],
                                                             val=res["history"]["val"])))
    dist.destroy_process_group()

def reference_losses(run_dir):
    "What the 2 ranks must compute together, in one process: a step = rank 0's micro-batch + rank 1's, averaged."
    from nanochat.checkpoint import load_model, checkpoint_dir
    from nanochat.dataloader import ConversationLoader
    from nanochat.optim import make_optimizers, lr_multiplier, muon_momentum
    model, _ = load_model(checkpoint_dir(run_dir, "mid"))
    model.train()
    opts = make_optimizers(model)
    for o in opts:
        for g in o.param_groups: g["initial_lr"] *= SFT_LR_SCALE
    loaders = [ConversationLoader(tokenizer(), TRAIN, 4, 64, rank=r, world_size=2) for r in range(2)]
    out = []
    for step in range(SFT_STEPS):
        for o in opts:
            for g in o.param_groups: g["lr"] = g["initial_lr"] * lr_multiplier(step / SFT_STEPS, 0.0, 1.0)
        for g in opts[1].param_groups: g["momentum"] = muon_momentum(step)
        total = 0.0
        for ld in loaders:
            x, y = next(ld); loss = model(x, y); (loss / 2).backward(); total += loss.item() / 2
        for o in opts: o.step()
        model.zero_grad(set_to_none=True); out.append(total)
    return out

def free_port() -> int:
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def test_two_gloo_processes_match_one(tmp_path, monkeypatch):
    import torch.multiprocessing as mp
    run = make_run(tmp_path/"ddp", stages=("mid",))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    mp.spawn(gloo_worker, args=(str(run), free_port()), nprocs=2, join=True)
    got = json.loads((run/"ddp.json").read_text())
    assert got["world"] == 2 and got["accum"] == 1
    ref = reference_losses(run)
    assert got["losses"] == pytest.approx(ref, rel=2e-4), (got["losses"], ref)
    assert got["losses"][-1] < got["losses"][0] - 0.5
    # one process with 2 micro-batches per step reads other data (one loader over every conversation, not two strided
    # ones): the reference above is that process, with each rank's loader, as in test_pretrain


# ---- the ConversationLoader: targets in every row, and the mask exactly ---------------------------------------------

def reference_targets(row: list[int], tok) -> list[int]:
    """The targets of a packed row of T + 1 tokens, from the chat format alone (issue 9, item 3): a token is trained on
    inside an assistant turn — after `<|assistant_start|>`, up to and including `<|assistant_end|>` — except a tool's
    output with its `<|output_start|>` / `<|output_end|>`; never BOS, user turns or padding. −1 where not trained on."""
    S = tok.encode_special
    trained, in_assistant, in_output = [], False, False
    for t in row:
        if t == tok.get_bos_token_id(): in_assistant = in_output = False; trained.append(False)
        elif t == S("<|assistant_start|>"): in_assistant = True; trained.append(False)
        elif t == S("<|output_start|>"): in_output = True; trained.append(False)
        elif t == S("<|output_end|>"): in_output = False; trained.append(False)
        elif t == S("<|assistant_end|>"): trained.append(in_assistant); in_assistant = False
        else: trained.append(in_assistant and not in_output)
    return [t if ok else -1 for t, ok in zip(row[1:], trained[1:])]

def test_mask_is_exactly_the_assistant_turns():
    from nanochat.dataloader import ConversationLoader
    tok = tokenizer()
    first = [{"role": "user", "content": "Tell me about the sea"}, {"role": "assistant", "content": "Fish swim."}]
    long_reply = {"messages": first + [{"role": "user", "content": "And more?"}, {"role": "assistant", "content": "Waves. " * 9}]}
    system = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                           {"role": "assistant", "content": "Bye."}]}
    convs = TRAIN[:40] + [long_reply, system] * 5
    loader = ConversationLoader(tok, convs, B=4, T=64)
    # longer than T + 1 = 65 tokens: cut after its last whole reply, never inside one
    assert loader.render(40) == tok.render_conversation({"messages": first})
    n_assistant = 0
    for _ in range(20):
        x, y = next(loader)
        assert x.shape == y.shape == (4, 64) and x.dtype == y.dtype == torch.long
        for b in range(4):
            targets = y[b].tolist()
            # the row's T + 1 tokens: x, and the last one from y when it is a target (when it is not, y does not say it)
            row = x[b].tolist() + ([targets[-1]] if targets[-1] >= 0 else [])
            ref = reference_targets(row, tok)
            assert targets[:len(ref)] == ref, (tok.decode(row), targets, ref)
            S = tok.encode_special   # every reply in the row is whole (the missing last token, if any, is neither)
            assert row.count(S("<|assistant_start|>")) == row.count(S("<|assistant_end|>")), tok.decode(row)
            n_assistant += sum(t >= 0 for t in targets)
    assert n_assistant > 1000

def test_mask_of_a_known_conversation():
    "Hand-written: the conversation with a tool call, rendered alone in a row, and its targets."
    from nanochat.dataloader import ConversationLoader
    tok = tokenizer()
    conv = {"messages": [{"role": "user", "content": "2+3?"},
                         {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "python", "text": "2+3"},
                                                           {"type": "python_output", "text": "5"}, {"type": "text", "text": "B"}]}]}
    S, e = tok.encode_special, tok.encode
    ids = [tok.get_bos_token_id(), S("<|user_start|>"), *e("2+3?"), S("<|user_end|>"), S("<|assistant_start|>"), *e("A"),
           S("<|python_start|>"), *e("2+3"), S("<|python_end|>"), S("<|output_start|>"), *e("5"), S("<|output_end|>"), *e("B"),
           S("<|assistant_end|>")]
    x, y = next(ConversationLoader(tok, [conv], B=1, T=len(ids) - 1))
    assert x[0].tolist() == ids[:-1]
    expected = [-1] * 7 + [*e("A"), S("<|python_start|>"), *e("2+3"), S("<|python_end|>"), -1, -1, -1, *e("B"), S("<|assistant_end|>")]
    assert y[0].tolist() == expected   # targets: 'A', the call, 'B', <|assistant_end|>; not the user turn or the tool's output

def test_every_row_has_a_target():
    "Conversations cut before the assistant speaks (a user turn longer than T + 1) are skipped: no row, so no batch, without a target."
    from nanochat.dataloader import ConversationLoader
    tok = tokenizer()
    too_long = {"messages": [{"role": "user", "content": "x" * 100}, {"role": "assistant", "content": "ok"}]}
    just_fits = {"messages": [{"role": "user", "content": "x" * 58}, {"role": "assistant", "content": "ok"}]}   # 62 tokens to <|assistant_start|>, 65 in all
    convs = [too_long] * 30 + [just_fits] + [too_long] * 30 + TRAIN[:3]
    loader = ConversationLoader(tok, convs, B=2, T=64)
    for _ in range(50):
        x, y = next(loader)
        assert ((y >= 0).sum(1) > 0).all()
    with pytest.raises(ValueError, match=r"no conversation has a whole assistant reply within T \+ 1 = 65 tokens: raise T"):
        next(ConversationLoader(tok, [too_long] * 3, B=2, T=64))

def test_loader_resume_gives_the_same_next_batch():
    from nanochat.dataloader import ConversationLoader
    tok = tokenizer()
    a = ConversationLoader(tok, TRAIN, B=4, T=64, rank=1, world_size=2, buffer_size=16)
    for _ in range(9): next(a)
    b = ConversationLoader(tok, TRAIN, B=4, T=64, rank=1, world_size=2, buffer_size=16, state=a.state_dict())
    for _ in range(5):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(ValueError, match="saved by rank 1 of 2"):
        ConversationLoader(tok, TRAIN, B=4, T=64, state=a.state_dict())


# ---- bad input -----------------------------------------------------------------------------------------------------

def test_bad_conversation_in_the_mixture_is_named():
    from nanochat.dataloader import ConversationLoader
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}
    with pytest.raises(ValueError, match=r"message 1: expected role 'assistant', got 'user'"):
        next(ConversationLoader(tokenizer(), TRAIN[:5] + [bad], B=2, T=64))

def test_chat_train_errors(tmp_path, monkeypatch):
    from nanochat.checkpoint import CheckpointError
    use_held_out(monkeypatch)
    with pytest.raises(ValueError, match="stage must be one of base, mid, sft, got 'pre'"):
        from nanochat.midtrain import chat_train
        chat_train(settings(make_run(tmp_path)), TRAIN, "pre", "mid", 2, 1e9, 1.0, tokenizer=tokenizer(), quiet=True)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*mid_checkpoints: run the chapter .*\(03_midtrain\)"):
        chat_train(settings(tmp_path/"empty"), TRAIN, "mid", "sft", 2, 1e9, 1.0, tokenizer=tokenizer(), quiet=True)


if __name__ == "__main__" and sys.argv[1:2] == ["kill-worker"]:
    kill_worker(sys.argv[2])
