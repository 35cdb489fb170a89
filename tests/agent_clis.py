"""The real agent CLIs for tests, Claude Code and Codex: installed by the README's test command
into tests/agents/node_modules (npm, exact versions from tests/agents/package-lock.json), run
against a `ModelStandIn` with a private HOME in which `repowire hooks install` put the hooks
and the MCP server, exactly as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.model_standin import ModelStandIn

AGENTS = Path(__file__).parent / "agents" / "node_modules" / ".bin"
CLAUDE = AGENTS / "claude"
CODEX = AGENTS / "codex"
RUN_TIMEOUT_S = 120


def installed(binary: Path) -> str:
    if not os.access(binary, os.X_OK):
        raise AssertionError(f"the agent CLI is not installed at {binary}: run the README's test command "
                             "(it runs `npm ci --prefix tests/agents`)")
    return str(binary)


def claude_binary() -> str:
    return installed(CLAUDE)


def base_env(home: Path, hub_home: Path) -> dict[str, str]:
    """This process's environment without anything of the agents' or the hub's, and with this
    Python's scripts first on PATH (where `repowire` is)."""
    bin_dir = str(Path(sys.executable).parent)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("REPOWIRE_", "TMUX", "CLAUDE", "ANTHROPIC", "CODEX", "OPENAI"))}
    return {**base, "PATH": f"{bin_dir}:{base.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
            "REPOWIRE_HOME": str(hub_home)}


@dataclass
class ClaudeCode:
    """One user's Claude Code: a HOME with onboarding done and the repowire hooks installed,
    pointed at `model` and at the hub whose home is `hub_home`."""
    home: Path
    hub_home: Path
    model: ModelStandIn

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {**base_env(self.home, self.hub_home), "ANTHROPIC_BASE_URL": self.model.url,
                "ANTHROPIC_API_KEY": "dummy", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **extra}

    def install_hooks(self, *args: str) -> str:
        """`repowire hooks install` as the user runs it; returns what it printed."""
        done = subprocess.run([sys.executable, "-m", "hub.cli.main", "hooks", "install", *args],
                              env=self.env(), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def trust(self, project: Path) -> None:
        """What the first interactive start asks once (onboarding, the folder's trust, the key)."""
        path = self.home / ".claude.json"
        data = orjson.loads(path.read_bytes()) if path.exists() else {}
        data.update({"hasCompletedOnboarding": True, "customApiKeyResponses": {"approved": ["dummy"], "rejected": []}})
        data.setdefault("projects", {})[str(project)] = {"hasTrustDialogAccepted": True,
                                                         "hasCompletedProjectOnboarding": True}
        path.write_bytes(orjson.dumps(data))

    def print_mode(self, prompt: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
        """`claude -p PROMPT` in `cwd`, to the end."""
        return subprocess.run([claude_binary(), "-p", prompt], cwd=cwd, env=self.env(**extra), capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)

    def start_print_mode(self, prompt: str, cwd: Path, **extra: str) -> subprocess.Popen:
        """`claude -p PROMPT` in the background (the test decides its questions meanwhile)."""
        return subprocess.Popen([claude_binary(), "-p", prompt], cwd=cwd, env=self.env(**extra), text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@dataclass
class Codex:
    """One user's Codex: a CODEX_HOME whose config.toml points at `model` (a custom provider on
    the Responses API) and in which `repowire hooks install --agent codex` put the hooks."""
    home: Path
    hub_home: Path
    model: ModelStandIn

    def __post_init__(self) -> None:
        self.codex_home.mkdir(parents=True, exist_ok=True)
        (self.codex_home / "config.toml").write_text(
            'model_provider = "standin"\nmodel = "gpt-5-standin"\napproval_policy = "never"\n'
            'sandbox_mode = "danger-full-access"\n\n[model_providers.standin]\nname = "standin"\n'
            f'base_url = "{self.model.url}/v1"\nenv_key = "STANDIN_KEY"\nwire_api = "responses"\n')

    @property
    def codex_home(self) -> Path:
        return self.home / ".codex"

    def env(self) -> dict[str, str]:
        return {**base_env(self.home, self.hub_home), "CODEX_HOME": str(self.codex_home), "STANDIN_KEY": "dummy"}

    def install_hooks(self) -> str:
        done = subprocess.run([sys.executable, "-m", "hub.cli.main", "hooks", "install", "--agent", "codex"],
                              env=self.env(), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def exec(self, prompt: str, cwd: Path) -> subprocess.CompletedProcess:
        """`codex exec PROMPT` to the end. Codex runs a new or changed hook only once the user
        trusted it (its /hooks screen); a test has no screen, so it passes Codex's own flag for
        hooks checked outside Codex."""
        return subprocess.run([installed(CODEX), "exec", "--dangerously-bypass-hook-trust", "--skip-git-repo-check",
                               prompt], cwd=cwd, env=self.env(), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)

    def trust(self, project: Path) -> None:
        """What the first interactive start in a folder asks once: whether to trust it."""
        with open(self.codex_home / "config.toml", "a") as config:
            config.write(f'\n[projects."{project}"]\ntrust_level = "trusted"\n')

    def interactive_argv(self) -> list[str]:
        return [installed(CODEX), "--dangerously-bypass-hook-trust"]
