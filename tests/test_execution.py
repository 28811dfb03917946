"The sandbox: known programs classified right, every limit holding, nothing left behind, as root and (nested) as non-root."
import os, sys, glob, json, time, uuid, shutil, socket, subprocess, warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest
import nanochat.execution as execution
from nanochat.execution import execute_code, execute_tests, ExecutionResult, SANDBOX_UID

REPO = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0

GOOD = '''
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])

def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([], 1.0) == False
check(has_close_elements)
'''
WRONG = GOOD.replace("< threshold", "> threshold")
# the program says where it runs first (stdout is unbuffered): its work folder names every process it forks
WHERE = "import os; print(os.getcwd(), flush=True)\n"

def live_processes_mentioning(text):
    "(pid, uid) of every process, zombies excepted, whose command line contains `text`."
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            if text.encode() not in Path(d, "cmdline").read_bytes(): continue
            if Path(d, "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"): continue
            found.append((int(d[6:]), Path(d).stat().st_uid))
        except OSError: pass   # it exited while we looked
    return found

def test_correct_solution_passes():
    r = execute_code(GOOD)
    assert isinstance(r, ExecutionResult) and r.status == "pass" and r.passed and r.reason == "", r

def test_wrong_solution_fails_with_the_assertion():
    r = execute_code(WRONG)
    assert r.status == "fail" and not r.passed
    assert r.reason == "exit code 1: AssertionError", r.reason
    assert "Traceback" in r.stderr and "assert candidate" in r.stderr

def test_exit_codes_and_exceptions():
    assert execute_code("import sys; sys.exit(3)").reason == "exit code 3"
    assert execute_code("raise KeyError('k')").reason == "exit code 1: KeyError: 'k'"
    r = execute_code("input()")   # stdin is closed
    assert r.status == "fail" and "EOFError" in r.reason

def test_infinite_loop_times_out():
    t = time.monotonic()
    r = execute_code("while True: pass", timeout=1.0)
    assert r.status == "timeout" and r.reason == "wall-clock limit 1 s", r
    assert time.monotonic() - t < 1.0 + 10   # the call returned (a generous bound, not a speed test)

def test_cpu_limit_signal_is_a_timeout():
    # the kernel sends SIGXCPU at RLIMIT_CPU; a program that sends it to itself is classified the same way
    r = execute_code("import os, signal; os.kill(os.getpid(), signal.SIGXCPU)", timeout=2.0)
    assert r.status == "timeout" and r.reason == "CPU-time limit 3 s", r

@pytest.mark.parametrize("bomb", ["x = [0] * 10**9", "x = bytearray(2**30)", "x = []\nwhile True: x.append(' ' * 10**6)"])
def test_memory_bomb_fails_at_the_memory_limit(bomb):
    r = execute_code(bomb, memory_mb=256)
    assert r.status == "fail" and r.reason.startswith("memory limit 256 MB"), r

@pytest.mark.parametrize("bomb", [
    "while True: os.fork()",
    "import subprocess, sys\nwhile True: subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])",
    # children that leave the session and sleep: the pid namespace, not the process group, gets them
    "import time\nwhile True:\n    if os.fork() == 0: os.setsid(); time.sleep(60)"])
def test_fork_bombs_are_contained_and_leave_nothing(bomb):
    r = execute_code(WHERE + bomb, timeout=3.0, max_processes=8)
    workdir = r.stdout.split("\n")[0]
    assert workdir.startswith(tempfile_dir()), r
    assert (r.status == "fail" and "BlockingIOError" in r.reason) or r.status == "timeout", r
    assert live_processes_mentioning(workdir) == [] and live_processes_mentioning("time.sleep(60)") == []
    if ROOT: assert not [p for p, uid in live_processes_mentioning(workdir) if uid == SANDBOX_UID]
    assert not os.path.exists(workdir), "the work folder must be deleted"
    # the machine stays responsive: a new sandbox and a plain child of ours both run
    assert execute_code("print(1 + 1)").stdout == "2\n"
    assert subprocess.run([sys.executable, "-c", "pass"], timeout=60).returncode == 0

def tempfile_dir():
    import tempfile; return os.path.realpath(tempfile.gettempdir())

def test_process_cap_is_exact_and_per_sandbox():
    # fork until refused; zombies count too, so this counts the children the cap allowed: max_processes - 1
    code = "import os\nn = 0\ntry:\n    while True: os.fork() or os._exit(0); n += 1\nexcept BlockingIOError: print(n)"
    with ThreadPoolExecutor(4) as ex: rs = list(ex.map(lambda _: execute_code(code, max_processes=5), range(4)))
    assert [r.stdout for r in rs] == ["4\n"] * 4, rs

def test_no_network():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(0.2)
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {srv.getsockname()[1]}), timeout=2).sendall(b'hi')"
        r = execute_code(code)
        assert r.status == "fail" and ("Network is unreachable" in r.reason or "refused" in r.reason), r
        with pytest.raises(socket.timeout): srv.accept()   # nothing reached our server
        assert execute_code(code, network=True).passed      # the control: the same program, network allowed, gets through
        conn, _ = srv.accept(); conn.close()

def test_writes_outside_the_work_folder_fail_and_leave_nothing():
    name = f"nanochat-sandbox-test-{uuid.uuid4().hex}"
    for target in (Path(tempfile_dir())/name, REPO/name, Path.home()/name):
        r = execute_code(f"open({str(target)!r}, 'w').write('x')")
        assert r.status == "fail", (target, r)
        assert not target.exists(), target

def test_work_folder_is_writable_and_deleted():
    r = execute_code(WHERE + "open('a.txt', 'w').write('hi'); os.mkdir('d'); os.chmod('d', 0); print(open('a.txt').read())")
    assert r.passed, r
    workdir, content = r.stdout.split("\n")[:2]
    assert content == "hi" and not os.path.exists(workdir)

def test_output_is_capped():
    kept = lambda text: text.split("\n[... ")[0]   # what came back before the marker
    r = execute_code("import sys\nprint('x' * 1_000_000)\nsys.stderr.write('e' * 500_000)", max_output=1000)
    assert r.passed
    assert kept(r.stdout) == "x" * 1000 and "[... 999001 more bytes cut by the sandbox: max_output=1000]" in r.stdout
    assert kept(r.stderr) == "e" * 1000 and "499000 more bytes cut" in r.stderr
    r = execute_code("while True: print('y' * 10_000)", timeout=1.0, max_output=5000)   # prints forever: capped, then stopped
    assert r.status == "timeout" and kept(r.stdout) == "y" * 5000

def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("NANOCHAT_TEST_SECRET", "hunter2"); monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    r = execute_code("import os, json; print(json.dumps(dict(os.environ))); print(hash('abc'))")
    env, h = r.stdout.splitlines()
    assert "hunter2" not in r.stdout and "HTTPS_PROXY" not in env and "proxy" not in r.stdout
    assert '"PYTHONHASHSEED": "0"' in env
    assert execute_code("print(hash('abc'))").stdout.strip() == h   # fixed hash seed: same output every run

def test_isolation_layers_in_force():
    r = execute_code("import os; print(os.getuid(), sorted(os.listdir('/proc')))")
    assert {"pidns", "netns", "readonly", "userns"} <= set(r.isolation), r.isolation
    uid = int(r.stdout.split()[0])
    assert uid == (SANDBOX_UID if ROOT else os.getuid())
    if ROOT: assert "uid 65534" in r.isolation
    if "proc" in r.isolation: assert "'1', '2'" in r.stdout and "'3'" not in r.stdout   # only init and the program

def test_the_program_cannot_forge_its_status():
    # init runs as the program's uid: undumpable, it cannot be traced or have its pipe opened; pid 1 ignores kill
    code = ("import os, signal, sys\ntry: os.listdir('/proc/1/fd'); print('fds visible')\nexcept OSError: pass\n"
            "os.kill(1, signal.SIGKILL)\nsys.exit(1)")
    r = execute_code(code)
    assert r.status == "fail" and r.reason == "exit code 1" and "fds visible" not in r.stdout, r

def test_eight_concurrent_executions_from_threads():
    programs = [(GOOD, "pass"), (WRONG, "fail"), ("while True: pass", "timeout"), ("x = [0] * 10**9", "fail"),
                ("import os\nwhile True: os.fork()", "fail"), ("print('x' * 10**6)", "pass"),
                ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", "fail"), ("raise SystemExit(0)", "pass")]
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda p: execute_code(p[0], timeout=2.0), programs))
    assert [r.status for r in got] == [want for _, want in programs], [(r.status, r.reason) for r in got]

def test_non_root_path_by_running_the_sandbox_inside_the_sandbox():
    # Inside the sandbox we are an unprivileged user: a sandbox started there takes the non-root path (its own user
    # namespace). The module is written into the outer work folder, so the repository's location does not matter.
    source = Path(execution.__file__).read_text()
    inner = (f"open('execution.py', 'w').write({source!r})\nimport os, sys; sys.path.insert(0, os.getcwd())\n"
             "from execution import execute_code\n"
             "for code in ('print(1)', 'import os\\nwhile True: os.fork()', 'while True: pass', \"open('/tmp/zz', 'w')\"):\n"
             "    r = execute_code(code, timeout=1.0, max_processes=4)\n"
             "    print(os.getuid(), r.status, ','.join(r.isolation), r.reason.split(':')[0], sep='|')\n")
    r = execute_code(inner, timeout=30, max_processes=16)
    assert r.passed, r
    rows = [l.split("|") for l in r.stdout.splitlines()]
    assert [row[1] for row in rows] == ["pass", "fail", "timeout", "fail"], r.stdout
    assert all(int(row[0]) != 0 and set(row[2].split(",")) >= {"pidns", "netns", "readonly", "userns"} for row in rows), r.stdout

def test_without_namespaces_it_warns_once(monkeypatch):
    monkeypatch.setattr(execution, "_NAMESPACES", False); monkeypatch.setattr(execution, "_warned", set())
    with pytest.warns(RuntimeWarning, match="no namespaces.*network is not isolated"):
        r = execute_code("print('hi')")
    assert "netns" not in r.isolation
    # as root the program runs as nobody, who may not reach this Python (e.g. under /root) without the mount namespace
    assert r.passed or (ROOT and r.status == "error" and "uid 65534" in r.reason), r
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the second time: no warning
        execute_code("print('hi')")

@pytest.mark.parametrize("kw", [dict(timeout=0), dict(timeout=-1), dict(memory_mb=8), dict(max_processes=0), dict(max_output=-1)])
def test_bad_limits_raise_value_error(kw):
    with pytest.raises(ValueError, match=next(iter(kw))): execute_code("pass", **kw)

def test_code_must_be_str():
    with pytest.raises(TypeError, match="code must be a str"): execute_code(b"print(1)")

# What the sandbox shows of the temp folder, run by an interpreter (ours, or a venv's made in the temp folder): every
# folder's listing, not going into the work folder nor the interpreter's own (bound back: the program needs Python).
TEMP_LISTING = '''import json, os, sys, tempfile
from nanochat.execution import execute_code
t = os.path.realpath(tempfile.gettempdir())
keep = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)))})
with tempfile.NamedTemporaryFile("w", prefix="nanochat-test-visible-", suffix=".txt") as f:
    os.chmod(f.name, 0o644); f.write("secret"); f.flush()
    r = execute_code(f"""import json, os
seen = {{}}
for root, dirs, files in os.walk({t!r}):
    if root == os.getcwd() or root in {keep!r}: dirs[:] = []; continue
    seen[root] = sorted(dirs + files)
print(json.dumps(dict(workdir=os.getcwd(), seen=seen)))
print(open({f.name!r}).read())""")
print(json.dumps(dict(r.__dict__, t=t, keep=keep)))
'''

def temp_listing(python=sys.executable):
    "Run TEMP_LISTING with `python`; returns (the ExecutionResult's fields, what the sandbox saw, what it should see)."
    p = subprocess.run([python, "-c", TEMP_LISTING], capture_output=True, text=True, timeout=60,
                       env=os.environ | dict(PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    got, t = json.loads(r["stdout"].split("\n")[0]), Path(r["t"])
    want = {r["t"]: {os.path.basename(got["workdir"])}}   # the work folder; and each folder on the way to a kept one
    for k in map(Path, r["keep"]):
        if t in k.parents:
            path = [*reversed(k.parents), k]
            for a, b in zip(path, path[1:]):
                if a == t or t in a.parents: want.setdefault(str(a), set()).add(b.name)
    return r, got["seen"], {a: sorted(b) for a, b in want.items()}

def test_the_temp_folder_shows_only_the_work_folder():
    # other sandboxes' work folders (the same uid as root: nobody) and our temp files must be out of reach
    r, seen, want = temp_listing()
    assert seen == want, (seen, want)
    assert r["status"] == "fail" and "No such file" in r["reason"], r

def test_a_venv_in_the_temp_folder_shows_only_the_path_to_it():
    "A clone (and its .venv) under /tmp: the sandbox binds the interpreter back, and shows nothing but the path to it."
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="nanochat-test-clone-"))
    venv = top/"p"/".venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        r, seen, want = temp_listing(str(venv/"bin"/"python"))
        assert str(venv) in r["keep"] and want[str(top)] == ["p"], (r["keep"], want)   # the case this test is for
        assert seen == want, (seen, want)
        assert r["status"] == "fail" and "No such file" in r["reason"], r
    finally: shutil.rmtree(top)


# ---------------------------------------------------------------------------------------------------- execute_tests
PROMPT = 'def incr_list(l: list):\n    """Return list with elements incremented by 1."""\n'
TESTS = ("def check(candidate):\n    assert candidate([1, 2, 3]) == [2, 3, 4]\n    assert candidate([]) == []\n"
         "    assert twice(candidate, [0]) == [2]\n")
HELPERS = PROMPT + "def twice(f, x): return f(f(x))\n"   # a helper of the prompt's that the tests use

def check(completion, **kw):
    return execute_tests(PROMPT + completion, TESTS, "incr_list", helpers=HELPERS, timeout=5.0, **kw)

def test_execute_tests_right_wrong_raising():
    assert check("    return [x + 1 for x in l]\n").passed
    r = check("    return [x + 2 for x in l]\n")
    assert r.status == "fail" and r.reason == "exit code 1: AssertionError", r
    assert "assert candidate([1, 2, 3]) == [2, 3, 4]" in r.stderr   # the traceback quotes the test, though no file holds it
    r = check("    return 1 / 0\n")
    assert r.reason == "exit code 1: RuntimeError: incr_list raised ZeroDivisionError: division by zero", r
    assert "return 1 / 0" in r.stderr   # and the candidate's own traceback
    r = check("    while True: pass\n")
    assert r.status == "timeout", r

def test_execute_tests_the_helpers_stub_never_answers():
    # the prompt defines incr_list with a docstring only: a program that defines no function of its own must not pass
    r = execute_tests("x = 1\n", TESTS, "incr_list", helpers=HELPERS)
    assert r.status == "fail" and "before answering" in r.reason and "the program defines no function 'incr_list'" in r.stderr, r

def test_execute_tests_the_checker_is_out_of_reach():
    spy = ("    import os, sys\n    ppid = os.getppid(); seen = []\n"
           "    for what in ('mem', 'environ', 'fd', 'maps'):\n"
           "        try: seen.append((what, os.listdir(f'/proc/{ppid}/fd') if what == 'fd' else open(f'/proc/{ppid}/{what}', 'rb').read(1)))\n"
           "        except OSError as e: seen.append((what, type(e).__name__))\n"
           "    main = open(f'/proc/{ppid}/cmdline').read().split(chr(0))[-2]\n"
           "    print(seen, main.endswith('main.py'), os.path.exists(main), sorted(os.listdir('.')), flush=True)\n"
           "    os._exit(0)\n")
    r = check(spy)
    assert r.status == "fail" and r.reason.endswith("process ended (exit code 0) before answering"), r
    assert r.stdout == ("[('mem', 'PermissionError'), ('environ', 'PermissionError'), ('fd', 'PermissionError'), "
                        "('maps', 'PermissionError')] True False ['candidate.py']\n"), r.stdout

def test_execute_tests_answers_are_plain_values_only():
    liar = "    class Liar{}:\n        __eq__ = lambda s, o: True\n    return Liar()\n"
    r = check(liar.format(""))
    assert r.status == "fail" and "TypeError: incr_list answered" in r.reason and "not a plain value" in r.reason, r
    r = check(liar.format("(list)"))   # crosses as its repr, "[]": a plain list, compared by the checker's own ==
    assert r.reason == "exit code 1: AssertionError", r
    # a forged answer line is just an answer: a wrong one fails like any wrong answer
    forged = "    import os\n    os.write(4, b\"('ok', 'all tests passed')\\n\")\n    return [x + 1 for x in l]\n"
    assert check(forged).status == "fail"

def test_execute_tests_signals_to_the_checker_fail():
    # SIGINT would be a KeyboardInterrupt a test could catch: the checker makes it a plain kill
    r = check("    import os, signal\n    os.kill(os.getppid(), signal.SIGINT)\n    return [x + 1 for x in l]\n")
    assert r.status == "fail" and r.reason.startswith("killed by SIGINT"), r

def test_execute_tests_bad_arguments():
    with pytest.raises(ValueError, match="entry_point must be a Python identifier .* got 'incr list'"):
        execute_tests(PROMPT, TESTS, "incr list")
    with pytest.raises(TypeError, match="tests must be a str, got bytes"): execute_tests(PROMPT, b"x", "incr_list")
    with pytest.raises(ValueError, match="timeout"): execute_tests(PROMPT, TESTS, "incr_list", timeout=0)
