"""Running PostgreSQL's server programs (initdb, pg_ctl...) as another system user.

PostgreSQL refuses to run as root, so as root the programs run as a system user,
switched to by ``subprocess`` itself (no ``runuser`` or ``su`` needed on ``PATH``),
with that user's groups and home.  That user may be unable to reach the programs: a
clone or virtualenv under ``/root`` (mode 0700) holds pgserver's.  ``prepare()`` then
copies what the server needs (``bin``, ``lib``, ``share``, and the ``<package>.libs``
of a wheel repaired by auditwheel) into a temp dir every user can read, and
``remove_copy()`` removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from typing import Any, Dict, List, Optional, Tuple

COMMAND_TIMEOUT = 120.0
COPIED_DIRS = ("bin", "lib", "share")  # of the installation's prefix (not include, doc...)
NOT_COPIED = shutil.ignore_patterns("*.a")  # static libraries: for building, not running


class ProgramsUnreachable(Exception):
    """The run-as user cannot run the programs, nor a copy of them; says what to do."""


class ServerPrograms:
    """The programs in ``bindir``, run as the system user ``run_as`` (None: ourselves)."""

    def __init__(self, bindir: str, run_as: Optional[str] = None) -> None:
        self.source = bindir
        self.bindir = bindir  # the copy's, once prepare() made one
        self.run_as = run_as
        self.copy: Optional[str] = None

    def run(self, prog: str, *args: str, cwd: str = "/", timeout: float = COMMAND_TIMEOUT,
            as_self: bool = False) -> Tuple[int, str, str]:
        """Run ``prog`` with a clean environment (no ``PG*``, the C locale) in a process
        group of its own; its exit code, stdout and stderr.  ``as_self``: run the
        original as ourselves (for ``--version``, which PostgreSQL allows root)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        user = None if as_self else self.run_as
        bindir = self.source if as_self else self.bindir
        return _run_group([os.path.join(bindir, prog), *args], env, cwd, timeout, user)

    def prepare(self, base_dir: str, prefix: str) -> None:
        """Make sure the run-as user can run the programs, copying them into a new temp
        dir in ``base_dir`` when it cannot reach them where they are."""
        problem = self._problem()
        if problem is None:
            return
        if self.run_as is None:
            raise ProgramsUnreachable(f"cannot run the server programs in {self.source}: "
                                      f"{problem}")
        self.copy = tempfile.mkdtemp(prefix=prefix + "bin-", dir=base_dir)
        try:
            self.bindir = copy_installation(self.source, self.copy)
            problem_of_copy = self._problem()
        except OSError as exc:
            problem_of_copy = f"copying them failed: {exc}"
        if problem_of_copy is not None:
            self.remove_copy()
            raise ProgramsUnreachable(
                f"the {self.run_as!r} user, which runs the server (PostgreSQL refuses to run "
                f"as root), cannot run the server programs in {self.source} ({problem}), nor a "
                f"copy of them ({problem_of_copy}). Install PostgreSQL where every user can "
                "read it (e.g. apt-get install postgresql), or move these binaries (or the "
                "virtualenv that holds them) where that user can read them, not under /root, "
                "or run this as a normal user.")

    def _problem(self) -> Optional[str]:
        """Why the run-as user cannot run ``initdb --version``, or None when it can."""
        try:
            returncode, stdout, stderr = self.run("initdb", "--version")
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        if returncode != 0:
            return f"exit code {returncode}: {(stderr or stdout).strip()}"
        return None

    def remove_copy(self) -> None:
        if self.copy is not None:
            shutil.rmtree(self.copy, ignore_errors=True)
            self.copy = None
            self.bindir = self.source


def copy_installation(bindir: str, target: str) -> str:
    """Copy the installation ``bindir`` belongs to into ``target``, readable by every
    user, keeping the relative layout its programs find their files by; the copy's bindir.
    """
    bindir = os.path.abspath(bindir)
    prefix = os.path.dirname(bindir)
    sources = [os.path.join(prefix, name) for name in COPIED_DIRS]
    # An auditwheel-repaired wheel's programs find their libraries through an
    # $ORIGIN-relative rpath in <site-packages>/<package>.libs (pgserver.libs).
    ancestors = [prefix]
    while os.path.dirname(ancestors[-1]) != ancestors[-1]:
        ancestors.append(os.path.dirname(ancestors[-1]))
    sources += [path + ".libs" for path in ancestors[:-1]]
    sources = [path for path in sources if os.path.isdir(path)]
    root = os.path.commonpath([prefix, *sources])
    for source in sources:
        shutil.copytree(source, os.path.join(target, os.path.relpath(source, root)),
                        symlinks=True, ignore=NOT_COPIED)
    _readable_by_all(target)
    return os.path.join(target, os.path.relpath(bindir, root))


def _readable_by_all(top: str) -> None:
    """Directories 0755; files readable by all, executable by all if by their owner, and
    writable by their owner only (root: no other user may change what the server runs)."""
    for path, _, files in os.walk(top):
        os.chmod(path, 0o755)
        for name in files:
            file = os.path.join(path, name)
            if not os.path.islink(file):
                mode = stat.S_IMODE(os.lstat(file).st_mode)
                mode = (mode | 0o444 | (0o111 if mode & 0o100 else 0)) & ~0o022
                os.chmod(file, mode)


def _as_user(name: str, env: Dict[str, str]) -> Dict[str, Any]:
    """``Popen`` arguments that run the child as ``name``, with its groups (not ours) and
    its home, as ``runuser -u`` would."""
    import pwd

    entry = pwd.getpwnam(name)
    env.update(HOME=entry.pw_dir, USER=name, LOGNAME=name)
    return {"user": entry.pw_uid, "group": entry.pw_gid,
            "extra_groups": os.getgrouplist(name, entry.pw_gid)}


def _run_group(argv: List[str], env: Dict[str, str], cwd: str, timeout: float,
               user: Optional[str]) -> Tuple[int, str, str]:
    """Run ``argv`` in a process group of its own, killed whole if we are interrupted,
    so no half-made cluster runs on."""
    switch = _as_user(user, env) if user is not None else {}
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=os.name == "posix", **switch)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        if os.name == "posix":
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, stdout, stderr
