"""`bash run.sh test` finds what the tests need before running them (`bash run.sh needs` is that step alone): Chrome
or Chromium from `$CHROME_PATH` or `PATH` (a snap stub does not count), else Debian's `chromium` with apt as root or
with passwordless sudo, else it stops naming the one command to run. Each case runs the real run.sh with a PATH of
fake programs, so nothing is installed: a fake apt-get "installs" a fake chromium."""
import os, shutil, stat, subprocess, tempfile
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0
NOBODY = 65534


def _exe(path: Path, body: str):
    path.write_text("#!/bin/sh\n" + body + "\n"); path.chmod(0o755)


@pytest.fixture
def box():
    """A world-readable folder (a dropped-privilege run must read it) holding run.sh, a bin/ of fake programs plus the
    few real ones run.sh's finder uses, and an os-release file."""
    d = Path(tempfile.mkdtemp(prefix="runsh-", dir="/tmp")); d.chmod(0o755)
    shutil.copy(REPO/"run.sh", d/"run.sh")
    b = d/"bin"; b.mkdir(); b.chmod(0o755)
    for tool in ("bash", "sh", "grep", "id", "cat", "dirname", "chmod"):
        os.symlink(shutil.which(tool), b/tool)
    _exe(b/"cargo", "echo cargo 1.0")
    (d/"os-release").write_text("ID=debian\n"); (d/"os-release").chmod(0o644)
    yield d
    shutil.rmtree(d)


def _needs(box: Path, as_nobody=False, **env):
    e = {"PATH": str(box/"bin"), "OS_RELEASE": str(box/"os-release"), "HOME": str(box), **env}
    cmd = ["bash", str(box/"run.sh"), "needs"]
    if as_nobody:   # what a learner without root sees: the same check as another user
        cmd = [shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=30)


def test_chrome_path_is_used(box):
    _exe(box/"mychrome", "echo 'Chromium 150.0 built on Debian'")
    r = _needs(box, CHROME_PATH=str(box/"mychrome"))
    assert r.returncode == 0 and f"browser for the browser tests: {box/'mychrome'}" in r.stdout, r.stdout + r.stderr


def test_bad_chrome_path_is_named(box):
    r = _needs(box, CHROME_PATH=str(box/"nothing-here"))
    assert r.returncode == 1 and f"CHROME_PATH={box/'nothing-here'} is not a working Chrome" in r.stderr, r.stderr


def test_snap_stub_is_passed_over(box):
    "Ubuntu's apt `chromium-browser` is a script asking for the snap: it is not a browser, the next candidate is."
    _exe(box/"bin"/"chromium-browser", "echo \"Command '/usr/bin/chromium-browser' requires the chromium snap to be installed.\" >&2; exit 1")
    _exe(box/"bin"/"google-chrome", "echo 'Google Chrome 150.0'")
    r = _needs(box)
    assert r.returncode == 0 and str(box/"bin"/"google-chrome") in r.stdout, r.stdout + r.stderr


def test_installs_chromium_with_apt_as_root_or_sudo(box):
    "No browser anywhere: apt-get installs Debian's chromium (as root, or through passwordless sudo), then it is used."
    fake_chromium = "#!/bin/sh\\necho Chromium 156.0\\n"
    _exe(box/"bin"/"apt-get", f'echo "apt-get $*" >> {box}/apt.log; case "$*" in *install*chromium*) '
                              f'printf "{fake_chromium}" > {box}/bin/chromium; chmod 755 {box}/bin/chromium;; esac')
    if not ROOT: _exe(box/"bin"/"sudo", '[ "$1" = -n ] && shift; [ "$1" = true ] && exit 0; exec "$@"')
    r = _needs(box)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "installing Chromium with apt" in r.stdout and str(box/"bin"/"chromium") in r.stdout, r.stdout
    assert "install -y -qq chromium" in (box/"apt.log").read_text()


def test_without_root_stops_naming_the_command(box):
    """Neither root nor sudo (as root, the nobody user via setpriv; otherwise this user, no sudo on PATH): it stops
    before the tests and names the one command."""
    r = _needs(box, as_nobody=ROOT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "run  sudo apt-get install -y chromium" in r.stderr and "bash run.sh test again" in r.stderr, r.stderr


def test_not_debian_names_what_to_install(box):
    (box/"os-release").write_text("ID=ubuntu\n")
    r = _needs(box)
    assert r.returncode == 1 and "not a snap" in r.stderr and "CHROME_PATH" in r.stderr, r.stderr


def test_missing_cargo_is_named(box):
    (box/"bin"/"cargo").unlink(); (box/"os-release").write_text("ID=fedora\n")
    r = _needs(box)
    assert r.returncode == 1 and "a Rust toolchain" in r.stderr and "rustup" in r.stderr, r.stderr


def test_ci_only_calls_the_readme_test_command():
    body = [l for l in (REPO/".ci"/"run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert body[-1] == "bash run.sh test" and not any("apt-get" in l for l in body), body
