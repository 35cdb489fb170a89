"""Which shell commands only read the agent's project, and which only talk through the hub:
the `readonly` preset lets both run.

Claude Code searches with its shell (`grep`, `rg`, `find`, `ls`, `git status`), so a preset that
lets an agent read and search its project must recognise those commands, and nothing more. A
command is read-only when all of this holds:

- it is one simple command, or a pipeline of them (`|`); no other operator (`;`, `&&`, `||`,
  `&`, redirections, subshells), no `$` expansion, no backquote, no line break;
- each program is on the list below, with none of the options that write or run something
  else (`find -exec`, `find -delete`, `rg --pre`, `git diff --output`, `git -c …`);
- every argument that names a place outside the project (an absolute path not under `cwd`, a
  `..` that climbs out of it, a `~`) is absent, so reading stays inside the project.

A pattern that looks like an absolute path (`grep /api/v1`) therefore asks a person: refusing
too much is the safe side.

A hub message is one `repowire` command of those the hub tells agents to run (`notify`, `ask`,
`ack`, `answer`, `inbox`, `peers`, `asks`, `trace`, `whoami`), with no operator or expansion and
no `--attach` (which would send a file of the agent's choosing).
"""

from __future__ import annotations

import posixpath
import shlex

# program -> options that write, or run another program
READERS: dict[str, tuple[str, ...]] = {
    "grep": (), "egrep": (), "fgrep": (), "rg": ("--pre", "--pre-glob"), "ls": (), "cat": (), "head": (), "tail": (),
    "wc": (), "pwd": (), "echo": (), "tree": ("-o",), "file": ("-C", "--compile"), "stat": (), "du": (),
    "realpath": (),
    "find": ("-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"),
}
GIT_READERS = ("status", "log", "diff", "show", "branch", "ls-files", "blame", "rev-parse", "describe")
GIT_WRITING_OPTIONS = ("--output", "--ext-diff", "--textconv", "--exec")
HUB_MESSAGES = ("whoami", "peers", "inbox", "notify", "ask", "ack", "answer", "asks", "trace")
ATTACH = "--attach"   # argparse takes any unambiguous start of it too (`--att`)
PIPE = "|"
READS, HUB_MESSAGE = "reads", "hub-messages"   # the kinds a policy rule's `shell` may ask for


def _words(command: str) -> list[str] | None:
    """The command's words and operators (`|` alone), or None when it cannot be read safely."""
    if any(c in command for c in ("$", "`", "\n", "\r", "\0")):
        return None
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:   # an unclosed quote
        return None


def _inside(cwd: str, word: str) -> bool:
    """A word that names no place outside the project (it may be no path at all)."""
    value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
    if value.startswith("~"):
        return False
    if not value.startswith("/") and ".." not in value.split("/"):
        return True
    root = posixpath.normpath(cwd)
    path = posixpath.normpath(posixpath.join(root, value))
    return path == root or path.startswith(root.rstrip("/") + "/")


def _reads_only(argv: list[str], cwd: str) -> bool:
    program, args = argv[0], argv[1:]
    if program == "git":
        if not args or args[0] not in GIT_READERS:
            return False
        if any(a.startswith(GIT_WRITING_OPTIONS) for a in args):
            return False
    elif program in READERS:
        if any(a == bad or a.startswith(bad + "=") for a in args for bad in READERS[program]):
            return False
    else:
        return False
    return all(_inside(cwd, a) for a in args)


def _stages(command: object) -> list[list[str]] | None:
    """A pipeline's commands, each as its words; None for anything else."""
    words = _words(command) if isinstance(command, str) else None
    if not words:
        return None
    stages: list[list[str]] = [[]]
    for word in words:
        if word == PIPE:
            stages.append([])
        elif word and set(word) <= set("();<>|&"):
            return None   # any other operator
        else:
            stages[-1].append(word)
    return stages if all(stages) else None


def read_only_command(command: object, cwd: str | None) -> bool:
    if not cwd or not cwd.startswith("/"):
        return False
    stages = _stages(command)
    return stages is not None and all(_reads_only(stage, cwd) for stage in stages)


def hub_message_command(command: object) -> bool:
    stages = _stages(command)
    if stages is None or len(stages) != 1:
        return False
    argv = stages[0]
    if argv[0] != "repowire" or len(argv) < 2 or argv[1] not in HUB_MESSAGES:
        return False
    return not any(len(w.split("=")[0]) > 4 and ATTACH.startswith(w.split("=")[0]) for w in argv[2:])


def shell_matches(kind: str, command: object, cwd: str | None) -> bool:
    return read_only_command(command, cwd) if kind == READS else kind == HUB_MESSAGE and hub_message_command(command)
