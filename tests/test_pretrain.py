"""Pretraining (chapter 02): the loss falls, resume is exact, DDP over gloo matches single-process training, a corrupt
checkpoint is reported by name, and the loader packs BOS-aligned rows that resume to the same next batch.

A byte-level tokenizer and small synthetic shards keep this independent of chapter 00 and fast (≈1 min on 2 cores)."""
import os, sys, json, math, random, subprocess
from pathlib import Path
import pytest
import torch
import pyarrow as pa, pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


class ByteTokenizer:
    "Bytes are tokens 0–255; <|bos|> is 256; 257 pads the vocabulary. The API of nanochat.tokenizer.Tokenizer."
    vocab_size = 258
    def get_bos_token_id(self): return 256
    # the chat specials the sampling engine looks up: none of them occurs in this data, so all share the unused id 257
    def encode_special(self, name): return 256 if name == "<|bos|>" else 257
    def _one(self, text, prepend): return ([prepend] if prepend is not None else []) + list(text.encode("utf-8"))
    def encode(self, text, prepend=None, append=None, num_threads=None):
        return self._one(text, prepend) if isinstance(text, str) else [self._one(t, prepend) for t in text]
    def decode(self, ids): return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
    @property
    def token_bytes(self): return torch.tensor([1] * 256 + [0, 0], dtype=torch.int32)


NAMES = ["Ada", "Bob", "Cleo", "Dan", "Eve", "Finn"]
def make_doc(rng):
    return " ".join(f"{rng.choice(NAMES)} has {rng.randint(1, 9)} apples and gives {rng.randint(1, 9)} to {rng.choice(NAMES)}."
                    for _ in range(rng.randint(1, 6)))

def write_shards(folder, n_shards=3, row_groups=4, docs_per_group=20, seed=0):
    "Shards like the real ones (column `text`, several row groups), small: the last one is the validation split."
    rng, docs = random.Random(seed), []
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        texts = [make_doc(rng) for _ in range(row_groups * docs_per_group)]
        name = f"shard_{s:05d}.parquet" if s < n_shards - 1 else "shard_01822.parquet"   # the pinned validation shard
        pq.write_table(pa.table({"text": texts}), folder/name, row_group_size=docs_per_group)
        docs.append(texts)
    return docs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("base")
    docs = write_shards(base/"base_data")
    old = os.environ.get("NANOCHAT_BASE_DIR")
    os.environ["NANOCHAT_BASE_DIR"] = str(base)
    yield base, docs
    if old is None: os.environ.pop("NANOCHAT_BASE_DIR", None)
    else: os.environ["NANOCHAT_BASE_DIR"] = old


def settings(run_dir, **kw):
    from nanochat.settings import chapter_setup
    o = dict(device="cpu", dtype="float32", depth=1, aspect_ratio=32, head_dim=16, max_seq_len=32, device_batch_size=4,
             total_batch_size=256, num_iterations=20, time_budget=100000, eval_every=10, eval_tokens=1024, checkpoint_every=5)
    o.update(kw)
    return chapter_setup("02_pretrain", "smoke", run_dir, o)


def losses(res): return [l for _, l in res["history"]["train"]]


def test_loss_goes_down(data, tmp_path):
    from nanochat.pretrain import pretrain
    res = pretrain(settings(tmp_path, num_iterations=25), ByteTokenizer(), quiet=True)
    l = losses(res)
    assert len(l) == 25 and abs(l[0] - math.log(258)) < 1e-3   # zero-initialised head: uniform prediction
    assert sum(l[-3:]) / 3 < l[0] - 1.5, l
    assert res["history"]["val"][-1][1] < res["history"]["val"][0][1]


def test_bpb_of_uniform_model_is_log2_vocab(data):
    "Known answer: an untrained model predicts uniformly; with one byte per token its bpb is log2(vocab)."
    from nanochat.loss_eval import evaluate_bpb, eval_batches
    from nanochat.model import GPT, GPTConfig
    tok = ByteTokenizer()
    model = GPT(GPTConfig(sequence_len=32, vocab_size=258, n_layer=1, n_head=2, n_kv_head=2, n_embd=32))
    bpb = evaluate_bpb(model, eval_batches(tok, 4, 32, 1024), tok.token_bytes, torch.device("cpu"), torch.float32)
    assert bpb == pytest.approx(math.log2(258), rel=1e-6)


def test_exact_resume(data, tmp_path):
    "k steps straight == j steps, stop, new objects, load, k − j more steps: the same loss at every step."
    from nanochat.pretrain import pretrain
    tok = ByteTokenizer()
    straight = losses(pretrain(settings(tmp_path/"a", num_iterations=12), tok, quiet=True))
    first = pretrain(settings(tmp_path/"b", num_iterations=12), tok, stop_after=7, quiet=True)
    assert first["step"] == 7 and not first["finished"]
    ckpts = sorted(p.name for p in (tmp_path/"b"/"base_checkpoints").glob("*.pt"))
    assert ckpts == ["step_000005.pt", "step_000007.pt"]   # every 5 steps and at the stop; the last two kept
    second = pretrain(settings(tmp_path/"b", num_iterations=12), tok, quiet=True)   # fresh model, optimizers, loader
    assert second["step"] == 12 and second["finished"]
    assert losses(second) == straight   # exactly: same data, same order, same optimizer state


def test_corrupt_checkpoint_names_the_file(data, tmp_path):
    from nanochat.pretrain import pretrain
    from nanochat.checkpoint import CheckpointError
    P = settings(tmp_path, num_iterations=4, checkpoint_every=2)
    pretrain(P, ByteTokenizer(), quiet=True)
    bad = tmp_path/"base_checkpoints"/"step_000004.pt"
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"step_000004\.pt is corrupt.*Delete"):
        pretrain(P, ByteTokenizer(), quiet=True)
    bad.unlink()   # the way out the message names: the previous checkpoint resumes
    assert pretrain(P, ByteTokenizer(), quiet=True)["step"] == 4


def test_changed_model_settings_refuse_to_resume(data, tmp_path):
    from nanochat.pretrain import pretrain
    from nanochat.checkpoint import CheckpointError
    pretrain(settings(tmp_path, num_iterations=2, checkpoint_every=1), ByteTokenizer(), quiet=True)
    with pytest.raises(CheckpointError, match="--restart"):
        pretrain(settings(tmp_path, num_iterations=2, depth=2), ByteTokenizer(), quiet=True)


def rows_of(batch): x, y = batch; return torch.cat([x, y[:, -1:]], 1)

def test_loader_packs_bos_aligned_rows_without_losing_tokens(data):
    from nanochat.dataloader import DataLoader
    base, docs = data
    tok = ByteTokenizer()
    loader = DataLoader(tok, B=4, T=32)
    rows = torch.cat([rows_of(next(loader)) for _ in range(60)])   # crosses several row groups
    loader.close()
    assert (rows[:, 0] == 256).all()
    stream = bytes(t for t in rows.flatten().tolist() if t != 256)
    train_docs = docs[0] + docs[1]   # shards 0 and 1 (shard 2 is validation), row groups in order
    expected = "".join(train_docs).encode()
    assert stream == expected[:len(stream)]   # every token once, in order: nothing dropped, nothing repeated


def test_loader_strides_row_groups_by_rank(data):
    from nanochat.dataloader import DataLoader
    base, docs = data
    tok = ByteTokenizer()
    loader = DataLoader(tok, B=2, T=32, rank=1, world_size=2)
    first = bytes(t for t in rows_of(next(loader)).flatten().tolist() if t != 256)
    loader.close()
    assert "".join(docs[0][20:40]).encode().startswith(first)   # rank 1 starts at row group 1


@pytest.mark.parametrize("n", [1, 7, 23, 41])
def test_loader_resume_gives_the_same_next_batch(data, n):
    from nanochat.dataloader import DataLoader
    tok = ByteTokenizer()
    a = DataLoader(tok, B=4, T=32)
    for _ in range(n): next(a)
    state = a.state_dict()
    expected = [rows_of(next(a)) for _ in range(3)]
    b = DataLoader(tok, B=4, T=32, state=state)
    got = [rows_of(next(b)) for _ in range(3)]
    a.close(); b.close()
    for e, g in zip(expected, got): assert torch.equal(e, g)


def test_loader_errors():
    from nanochat.dataloader import DataLoader
    with pytest.raises(ValueError, match="T=0"): DataLoader(ByteTokenizer(), B=2, T=0, shards=[])
    with pytest.raises(ValueError, match="saved by rank 0 of 1"):
        DataLoader(ByteTokenizer(), 2, 8, rank=1, world_size=2, shards=[],
                   state=dict(epoch=0, shard=0, row_group=0, doc=0, offset=0, rank=0, world_size=1))


def test_newton_schulz_orthogonalises():
    from nanochat.optim import newton_schulz
    torch.manual_seed(0)
    G = torch.randn(48, 3) @ torch.randn(3, 96) * 3 + torch.randn(48, 96)
    sv = torch.linalg.svdvals(newton_schulz(G))
    assert 0.6 < sv.min() and sv.max() < 1.2, sv
    assert newton_schulz(G.T).shape == (96, 48)


def test_lr_schedule():
    from nanochat.optim import lr_multiplier
    assert lr_multiplier(0.0) == 1.0 and lr_multiplier(0.8) == 1.0
    assert lr_multiplier(0.9) == pytest.approx(0.5) and lr_multiplier(1.0) == 0.0
    assert lr_multiplier(1.0, final_lr_frac=0.1) == pytest.approx(0.1)


# ---- DDP: 2 processes over gloo vs the same global batch accumulated in one process -------------------------------

def ddp_worker(run_dir, accum):
    "Runs under torchrun: pretrain() with 2 ranks, each `accum` micro-batches of 4 rows per step (global batch 2 × accum × 4 × 32)."
    from nanochat.pretrain import pretrain
    import torch.distributed as dist
    res = pretrain(settings(run_dir, num_iterations=6, eval_every=100, checkpoint_every=100, total_batch_size=256 * accum),
                ByteTokenizer(), quiet=True)
    if dist.get_rank() == 0:
        Path(run_dir, "ddp.json").write_text(json.dumps(dict(losses=losses(res), world=res["world_size"], accum=res["grad_accum"])))
    dist.destroy_process_group()


def reference_losses(steps=6, accum=1):
    "What 2 ranks must compute together, in one process: rank k's `accum` micro-batches come from rank k's loader."
    from nanochat.dataloader import DataLoader
    from nanochat.optim import make_optimizers, lr_multiplier, muon_momentum, batch_lr_scale
    from nanochat.model import GPT, config_from_depth
    from nanochat.common import seed_everything
    from nanochat.settings import load_preset
    seed_everything(42)
    model = GPT(config_from_depth(1, 258, aspect_ratio=32, head_dim=16, max_seq_len=32))
    opts = make_optimizers(model)
    scale = batch_lr_scale(256 * accum, load_preset("smoke")["lr_ref_batch_size"])   # the rates follow the global batch
    assert (scale == 1) == (accum == 2)   # one case at the reference batch, one below it
    loaders = [DataLoader(ByteTokenizer(), 4, 32, rank=r, world_size=2) for r in range(2)]
    out = []
    for step in range(steps):
        for o in opts:
            for g in o.param_groups: g["lr"] = g["initial_lr"] * scale * lr_multiplier(step / steps)
        for g in opts[1].param_groups: g["momentum"] = muon_momentum(step)
        total = 0.0
        for ld in loaders:
            for _ in range(accum):
                x, y = next(ld); loss = model(x, y); (loss / (2 * accum)).backward(); total += loss.item() / (2 * accum)
        for o in opts: o.step()
        model.zero_grad(set_to_none=True); out.append(total)
    for ld in loaders: ld.close()
    return out


@pytest.mark.parametrize("accum", [1, 2])   # 2: DDP must skip the gradient sync on the first micro-batch (no_sync)
def test_ddp_two_processes_match_single_process(data, tmp_path, accum):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        __file__, "ddp-worker", str(tmp_path), str(accum)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads((tmp_path/"ddp.json").read_text())
    assert got["world"] == 2 and got["accum"] == accum
    ref = reference_losses(accum=accum)
    assert got["losses"] == pytest.approx(ref, rel=2e-4), (got["losses"], ref)
    assert got["losses"][-1] < got["losses"][0] - 0.5


if __name__ == "__main__" and sys.argv[1:2] == ["ddp-worker"]:
    ddp_worker(sys.argv[2], int(sys.argv[3]))
