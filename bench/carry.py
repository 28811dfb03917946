"""Prepare `carry/`: what a GPU machine with no package index and no internet needs to run the whole course.

    .venv/bin/python bench/carry.py                 # → carry/whl (wheels), carry/mirror (trimmed data); prints the sizes
    .venv/bin/python bench/carry.py --check         # only measure what would travel

The lent GPU machines (device README: /work/.library/device) run Python 3.12 with torch, numpy, pyarrow, tiktoken,
tokenizers, matplotlib, requests, pyyaml and tqdm installed, but not the notebook machinery. So this script gathers:

- **wheels** (`carry/whl`): papermill, ipykernel, ipywidgets, fastcore, cffi, rustbpe and every dependency the machine
  lacks, pinned to the versions of this repository's `.venv`, as cp312 manylinux wheels (`pip download`, the device
  README's recipe); and our Rust tokenizer `nanochat_bpe`, built from `rust/` (`pip wheel`, or the wheel in
  `rust/target/wheels` when it is newer than every source): its wheel is `py3-none`, a cffi library that any Python 3
  loads, so building it here serves the machine's Python (seen working there on Python 3.12.3).
- **data** (`carry/mirror`): the offline mirror's files the course downloads, laid out as the mirror is
  (`<host>/<path>`), trimmed where a short GPU run cannot use them all: two training shards (~50M characters, more than
  a short run reads once) and the validation shard, SmolTalk's training split cut to its first 12,000 conversations,
  MMLU's test split to 2,000 questions, and each CORE task of the eval bundle to its first 300 examples. Everything
  else is copied whole.

Everything that travels — the working tree and `carry/` — must stay under the device's 64 MiB; the script says how
much it is and fails if it is over. On the machine: `bash bench/gpu_course.sh` installs the wheels and runs the course.
"""
import argparse, io, shutil, subprocess, sys, zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20

# the closure of papermill, ipykernel, ipywidgets, fastcore, cffi and rustbpe on Python 3.12 / Linux, minus what the
# machine has (packaging, psutil, pygments, python-dateutil, typing-extensions, tqdm, requests, pyyaml, attrs, click,
# aiohttp: the device README's package list), at the versions this repository's .venv runs
WHEELS = """papermill==2.7.0 nbclient==0.11.0 nbformat==5.11.1 fastjsonschema==2.22.3 jsonschema==4.26.0
jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 entrypoints==0.4.2 tenacity==9.2.1
ipykernel==7.4.0 jupyter-client==8.10.0 jupyter-core==5.9.1 platformdirs==4.14.8 traitlets==5.16.1 pyzmq==27.3.0
tornado==6.6.1 comm==0.2.3 debugpy==1.8.22 nest-asyncio2==1.7.4 matplotlib-inline==0.2.2 ipython==9.18.1
ipython-pygments-lexers==1.1.1 jedi==0.20.1 parso==0.8.7 pexpect==4.9.0 ptyprocess==0.7.0 prompt-toolkit==3.0.53
wcwidth==0.9.4 stack-data==0.6.3 executing==2.3.0 asttokens==3.0.2 pure-eval==0.2.4
ipywidgets==8.1.9 jupyterlab-widgets==3.0.17 widgetsnbextension==4.0.16
fastcore==2.2.41 cffi==2.1.1 pycparser==3.12 rustbpe==0.1.0""".split()
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64"]

HF = "huggingface.co/datasets"
COPY = [*(f"{HF}/karpathy/fineweb-edu-100b-shuffle/resolve/main/shard_{i:05d}.parquet" for i in (0, 1, 1822)),
        f"{HF}/HuggingFaceTB/smol-smoltalk/resolve/main/data/test-00000-of-00001.parquet",
        *(f"{HF}/allenai/ai2_arc/resolve/main/{s}/{p}-00000-of-00001.parquet"
          for s in ("ARC-Easy", "ARC-Challenge") for p in ("train", "validation", "test")),
        *(f"{HF}/cais/mmlu/resolve/main/all/{p}-00000-of-00001.parquet" for p in ("auxiliary_train", "dev", "validation")),
        *(f"{HF}/openai/gsm8k/resolve/main/main/{p}-00000-of-00001.parquet" for p in ("train", "test")),
        f"{HF}/openai/openai_humaneval/resolve/main/openai_humaneval/test-00000-of-00001.parquet",
        "raw.githubusercontent.com/dwyl/english-words/refs/heads/master/words_alpha.txt"]
HEAD = {f"{HF}/HuggingFaceTB/smol-smoltalk/resolve/main/data/train-00000-of-00001.parquet": 12_000,   # rows kept
        f"{HF}/cais/mmlu/resolve/main/all/test-00000-of-00001.parquet": 2_000}
BUNDLE, BUNDLE_ROWS = "karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip", 300


def head_parquet(src: Path, dst: Path, rows: int):
    "The first `rows` rows of parquet file `src` into `dst`, same schema, zstd."
    import pyarrow.parquet as pq
    table = pq.read_table(src)
    pq.write_table(table.slice(0, rows), dst, compression="zstd", row_group_size=1000)


def trim_bundle(src: Path, dst: Path, rows: int):
    "The eval bundle zip with each task's .jsonl cut to its first `rows` lines (the rest of the bundle as it is)."
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".jsonl"): data = b"".join(io.BytesIO(data).readlines()[:rows])
            zout.writestr(info.filename, data)


def tree_bytes() -> int:
    "Bytes of the working tree that travels: tracked files and untracked files git does not ignore."
    names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True).stdout
    return sum((REPO/n).stat().st_size for n in names.decode().split("\0") if n and (REPO/n).is_file())


def folder_bytes(d: Path) -> int: return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", default=str(REPO.parent/"shared"/"data"/"mirror"), help="the offline mirror folder")
    ap.add_argument("--out", default=str(REPO/"carry"), help="the folder to fill (replaced)")
    ap.add_argument("--check", action="store_true", help="only measure the working tree and an existing carry folder")
    a = ap.parse_args()
    out, mirror = Path(a.out), Path(a.mirror)
    if not a.check:
        if not mirror.is_dir(): raise SystemExit(f"error: mirror folder {mirror} not found (--mirror DIR)")
        if out.exists(): shutil.rmtree(out)
        whl, data = out/"whl", out/"mirror"
        whl.mkdir(parents=True); data.mkdir()
        print(f"== {len(WHEELS)} wheels for CPython 3.12, manylinux x86-64")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                        "--implementation", "cp", *(x for p in PLATFORMS for x in ("--platform", p)), "-d", str(whl), *WHEELS], check=True)
        built = sorted((REPO/"rust"/"target"/"wheels").glob("nanochat_bpe-*.whl"))
        sources = [p for d in ("src", "python") for p in (REPO/"rust"/d).rglob("*") if p.is_file()]
        sources += [REPO/"rust"/f for f in ("Cargo.toml", "Cargo.lock", "pyproject.toml")]
        if built and built[-1].stat().st_mtime > max(p.stat().st_mtime for p in sources):
            print(f"== our Rust tokenizer: {built[-1].name}, newer than every source in rust/")
            shutil.copy(built[-1], whl)
        else:
            print("== our Rust tokenizer, built from rust/ (cargo)")
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(whl), str(REPO/"rust")], check=True)
        print("== data, trimmed")
        for rel in COPY:
            (data/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(mirror/rel, data/rel)
        for rel, rows in HEAD.items():
            (data/rel).parent.mkdir(parents=True, exist_ok=True); head_parquet(mirror/rel, data/rel, rows)
        (data/BUNDLE).parent.mkdir(parents=True, exist_ok=True); trim_bundle(mirror/BUNDLE, data/BUNDLE, BUNDLE_ROWS)
    sizes = {"working tree": tree_bytes(), "carry/whl": folder_bytes(out/"whl"), "carry/mirror": folder_bytes(out/"mirror")}
    for k, v in sizes.items(): print(f"{k:<14}{v / 2**20:8.1f} MiB")
    total = sum(sizes.values())
    print(f"{'total':<14}{total / 2**20:8.1f} MiB of {LIMIT / 2**20:.0f} MiB")
    if total > LIMIT: raise SystemExit(f"error: {total / 2**20:.1f} MiB would travel, over the device's {LIMIT / 2**20:.0f} MiB")


if __name__ == "__main__": main()
