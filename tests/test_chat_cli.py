"""`python -m nanochat.chat_cli` against a real model trained at smoke size (the `chat_run` fixture): one answer with -p,
an interactive session in a pseudo-terminal (history, clear, trimming, a message too long, quit, Ctrl-D), Ctrl-C during
a reply, a reader that goes away (`| head`), a missing model, a mistyped preset and bad flags."""
import io, os, signal, subprocess, sys, time
import pexpect, pytest
from nanochat.chat import Chat
from nanochat.chat_cli import repl

def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "nanochat.chat_cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})

def test_prompt_prints_one_answer(chat_run):
    r = cli("--run-dir", str(chat_run), "-p", "Tell me a joke", "--max-tokens", "16", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), (r.stdout, r.stderr)
    assert r.stdout.endswith("\n") and "Traceback" not in r.stderr

def test_default_run_is_the_newest(chat_run):
    "Without --preset / --run-dir the newest run with an sft checkpoint answers; --stage base names another model."
    env = dict(NANOCHAT_BASE_DIR=str(chat_run.parent.parent))
    r = cli("-p", "hi", "-t", "0", "--max-tokens", "8", env=env)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = cli("--preset", "smoke", "--stage", "base", "-p", "hi", "-t", "0", "--max-tokens", "8", env=env)
    assert r.returncode == 0, r.stderr

def test_interactive_session(chat_run):
    "A real terminal session: replies stream, a long conversation is trimmed with a notice, clear, a refused message, quit."
    p = pexpect.spawn(sys.executable, ["-m", "nanochat.chat_cli", "--run-dir", str(chat_run), "--max-tokens", "24", "--seed", "0"],
                      encoding="utf-8", timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        p.expect("context of 64 tokens")
        p.expect("you> "); p.sendline("hi")
        p.expect("nanochat> "); p.expect("you> ")
        # each exchange adds ~10–30 tokens; the context (64) minus the reply's room (24) is soon exceeded
        trimmed = False
        for i in range(8):
            p.sendline(f"tell me more about number {i}")
            p.expect("nanochat> ")
            k = p.expect([r"the oldest \d+ messages were left out", "you> "])
            if k == 0: trimmed = True; p.expect("you> "); break
        assert trimmed, "a long conversation was never trimmed"
        p.sendline("clear"); p.expect_exact("[new conversation]"); p.expect("you> ")
        p.sendline("word " * 80); p.expect("error: the message is \\d+ tokens long"); p.expect("you> ")
        p.sendline("still there?"); p.expect("nanochat> "); p.expect("you> ")   # the loop goes on after the error
        p.sendline("quit"); p.expect(pexpect.EOF)
    finally: p.close()
    assert p.exitstatus == 0, (p.exitstatus, p.before)

def test_ctrl_d_exits(chat_run):
    p = pexpect.spawn(sys.executable, ["-m", "nanochat.chat_cli", "--run-dir", str(chat_run)], encoding="utf-8", timeout=60)
    try:
        p.expect("you> "); p.sendeof(); p.expect(pexpect.EOF)
    finally: p.close()
    assert p.exitstatus == 0

def test_ctrl_c_stops_the_reply_not_the_loop(chat_run):
    "KeyboardInterrupt raised inside a real reply (as Ctrl-C does) stops that reply; the conversation continues."
    from nanochat.checkpoint import load_chat_model
    model, tok, _ = load_chat_model(run_dir=chat_run)
    class CtrlC(Chat):
        calls = 0
        def stream(self, *a, **kw):
            CtrlC.calls += 1
            for i, piece in enumerate(super().stream(*a, **kw)):
                if CtrlC.calls == 1 and i == 1: raise KeyboardInterrupt
                yield piece
    lines = iter(["hi", "and now?", "quit"])
    out, note = io.StringIO(), io.StringIO()
    msgs = repl(CtrlC(model, tok, temperature=0.0, max_tokens=16), lambda _: next(lines), out, note)
    assert note.getvalue().count("[stopped]") == 1, note.getvalue()
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[2]["content"] == "and now?" and CtrlC.calls == 2

@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.0])   # 3 s: answering, or done and exiting
def test_ctrl_c_while_starting_or_answering_is_one_line(chat_run, delay):
    "Ctrl-C at any moment of `-p` (importing torch, loading the model, answering): no traceback; 130, or 0 if it had finished."
    p = subprocess.Popen([sys.executable, "-m", "nanochat.chat_cli", "--run-dir", str(chat_run), "-p", "hi"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay); p.send_signal(signal.SIGINT)
    try: err = p.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired: p.kill(); pytest.fail(f"still running 30 s after a SIGINT at {delay} s: {p.communicate()[1]}")
    assert "Traceback" not in err and p.returncode in (130, 0), (p.returncode, err)
    if p.returncode == 130: assert err.splitlines()[-1] == "interrupted: quitting", err

def test_missing_model_names_the_chapter(tmp_path):
    r = cli("--run-dir", str(tmp_path), "-p", "hi")
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "04_sft" in r.stderr, r.stderr
    r = cli("--run-dir", str(tmp_path), "--stage", "mid", "-p", "hi")
    assert r.returncode == 1 and "03_midtrain" in r.stderr, r.stderr
    r = cli("-p", "hi", env=dict(NANOCHAT_BASE_DIR=str(tmp_path)))   # no run at all
    assert r.returncode == 1 and "04_sft" in r.stderr and "Traceback" not in r.stderr, r.stderr

def test_reader_that_goes_away_ends_it_quietly(chat_run):
    "`chat_cli -p … | head -c 5`: the reader closes the pipe before the reply is written; no traceback, status 141 (SIGPIPE's)."
    p = subprocess.Popen([sys.executable, "-m", "nanochat.chat_cli", "--run-dir", str(chat_run), "-p", "Tell me a story"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()   # gone before the model has even loaded: the first write of the reply meets a closed pipe
    err = p.stderr.read(); p.wait(timeout=120)
    assert p.returncode == 141 and err == "", (p.returncode, err)
    r = subprocess.run(f"set -o pipefail; {sys.executable} -m nanochat.chat_cli --run-dir {chat_run} -p hi -t 0 | head -c 5",
                       shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert len(r.stdout) <= 5 and "Traceback" not in r.stderr and r.returncode in (0, 141), r

def test_mistyped_preset_says_so(tmp_path):
    r = cli("--preset", "quickstrat", "-p", "hi", env=dict(NANOCHAT_BASE_DIR=str(tmp_path)))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "unknown preset 'quickstrat' (did you mean 'quickstart'?)" in r.stderr and "04_sft" not in r.stderr, r.stderr

def test_temperature_has_the_web_servers_range():
    r = cli("--temperature", "100", "-p", "hi", "--run-dir", "/nonexistent")
    assert r.returncode == 2 and "argument --temperature/-t: must be from 0 to 2 (0 = greedy), got 100" in r.stderr, r.stderr
    from nanochat.chat_web import LIMITS
    from nanochat.chat_cli import MAX_TEMPERATURE
    assert MAX_TEMPERATURE == LIMITS["temperature"]   # one range, whichever front end you talk to

def test_bad_flags_are_refused():
    for args, msg in [(["--temperature", "-1"], "argument --temperature/-t: must be from 0 to 2 (0 = greedy), got -1"),
                      (["--top-k", "-3"], "argument --top-k/-k: must be ≥ 0 (0 = off), got -3"),
                      (["--max-tokens", "0"], "argument --max-tokens/-m: must be ≥ 1, got 0"),
                      (["--top-k", "many"], "must be an integer, got 'many'"),
                      (["--stage", "rl"], "argument --stage: invalid choice: 'rl'")]:
        r = cli(*args, "-p", "hi")
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
