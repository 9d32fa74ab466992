"""Running PostgreSQL's server programs (initdb, pg_ctl...) as another system user.

PostgreSQL refuses to run as root, so as root the programs run as a system user,
switched to by ``subprocess`` itself (no ``runuser`` or ``su`` needed on ``PATH``),
with that user's groups and home.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any, Dict, List, Optional, Tuple

COMMAND_TIMEOUT = 120.0


class ProgramsUnreachable(Exception):
    """The run-as user cannot run the programs; says why."""


class ServerPrograms:
    """The programs in ``bindir``, run as the system user ``run_as`` (None: ourselves)."""

    def __init__(self, bindir: str, run_as: Optional[str] = None) -> None:
        self.source = bindir
        self.bindir = bindir
        self.run_as = run_as

    def run(self, prog: str, *args: str, cwd: str = "/", timeout: float = COMMAND_TIMEOUT,
            as_self: bool = False) -> Tuple[int, str, str]:
        """Run ``prog`` with a clean environment (no ``PG*``, the C locale) in a process
        group of its own; its exit code, stdout and stderr.  ``as_self``: run the
        programs as ourselves (for ``--version``, which PostgreSQL allows root)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        user = None if as_self else self.run_as
        bindir = self.source if as_self else self.bindir
        return _run_group([os.path.join(bindir, prog), *args], env, cwd, timeout, user)

    def prepare(self) -> None:
        """Make sure the run-as user can run the programs."""
        problem = self._problem()
        if problem is not None:
            raise ProgramsUnreachable(f"cannot run the server programs in {self.source}: "
                                      f"{problem}")

    def _problem(self) -> Optional[str]:
        """Why the run-as user cannot run ``initdb --version``, or None when it can."""
        try:
            returncode, stdout, stderr = self.run("initdb", "--version")
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        if returncode != 0:
            return f"exit code {returncode}: {(stderr or stdout).strip()}"
        return None


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
