"""The repository URL, written once in ``_config.yml`` (``repository.url``) and checked everywhere.

Usage (from the repository root)::

    python -m tools.repository check                        # exit 1 if a copy disagrees
    python -m tools.repository set-repository https://github.com/OWNER/NAME   # for a fork

Some copies must stay literal: ``course_lib.REPOSITORY_URL`` (Colab installs ``course_lib``
without ``_config.yml``), ``pyproject.toml``'s ``[project.urls]``, the setup cell of every
notebook (written by ``python -m tools.student``), and the clone and Colab links in the README
and the setup page. ``check`` reads each of them and reports every one that is missing or
names another repository; ``set-repository`` rewrites all of them, in every file git tracks,
then regenerates the notebooks and runs ``check``.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["Repository", "check", "parse_url", "read_repository", "set_repository"]

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "_config.yml"
_NAME = r"[A-Za-z0-9_.-]+"
_URL = re.compile(rf"https://github\.com/(?P<owner>{_NAME})/(?P<name>{_NAME})")


@dataclass(frozen=True)
class Repository:
    """A GitHub repository: ``owner/name`` and the branch the book is published from."""

    owner: str
    name: str
    branch: str = "main"

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.slug}"

    @property
    def pages_url(self) -> str:
        """Where the deploy workflow publishes the book (GitHub Pages of the repository)."""
        return f"https://{self.owner.lower()}.github.io/{self.name}/"


def parse_url(url: str, branch: str = "main") -> Repository:
    """``https://github.com/OWNER/NAME`` (no ``.git``, no trailing slash) as a Repository."""
    match = _URL.fullmatch(url)
    if match is None or match.group("name").endswith(".git"):
        raise ValueError(
            f"url must look like https://github.com/OWNER/NAME (no .git, no trailing slash), "
            f"got {url!r}"
        )
    return Repository(match.group("owner"), match.group("name"), branch)


def read_repository(root: Path = ROOT) -> Repository:
    """The repository named by ``_config.yml`` (``repository.url`` and ``repository.branch``)."""
    import yaml

    path = Path(root) / CONFIG
    if not path.is_file():
        raise ValueError(f"root must be the repository's folder (with {CONFIG}), got {root}")
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    section = config.get("repository") or {}
    if "url" not in section:
        raise ValueError(f"{path}: needs repository.url")
    return parse_url(str(section["url"]), str(section.get("branch", "main")))


@dataclass(frozen=True)
class _Copy:
    """Where a literal copy must be: files (a glob) and a pattern with owner and name groups."""

    files: str
    pattern: str
    what: str


# Every place that must hold a copy. Each file matched by ``files`` must contain the pattern at
# least once, and every match must name the configured repository.
_COPIES = (
    _Copy(
        "pyproject.toml",
        rf'^Repository = "https://github\.com/(?P<owner>{_NAME})/(?P<name>{_NAME})"$',
        "[project.urls] Repository",
    ),
    _Copy(
        "pyproject.toml",
        rf'^Issues = "https://github\.com/(?P<owner>{_NAME})/(?P<name>{_NAME})/issues"$',
        "[project.urls] Issues",
    ),
    _Copy(
        "pyproject.toml",
        rf'^Documentation = "https://(?P<owner>{_NAME})\.github\.io/(?P<name>{_NAME})/"$',
        "[project.urls] Documentation (the published book)",
    ),
    _Copy(
        "course_lib/__init__.py",
        rf'^REPOSITORY_URL = "https://github\.com/(?P<owner>{_NAME})/(?P<name>{_NAME})"$',
        "course_lib.REPOSITORY_URL",
    ),
    _Copy(
        "book/*.ipynb",  # fnmatch: * also matches "/", so this is every notebook
        rf'REPOSITORY_URL = \\"https://github\.com/(?P<owner>{_NAME})/(?P<name>{_NAME})\\"',
        "the notebook's setup cell (python -m tools.student)",
    ),
    _Copy(
        "README.md",
        rf"colab\.research\.google\.com/github/(?P<owner>{_NAME})/(?P<name>{_NAME})/blob/",
        "Colab links",
    ),
    _Copy(
        "book/appendix/setup.md",
        rf"git clone https://github\.com/(?P<owner>{_NAME})/(?P<name>{_NAME})\.git",
        "the clone command",
    ),
    _Copy(
        "book/appendix/setup.md",
        rf"colab\.research\.google\.com/github/(?P<owner>{_NAME})/(?P<name>{_NAME})/blob/",
        "Colab links",
    ),
)

# Any other mention of the repository, in any tracked file: a GitHub, Colab or GitHub Pages
# address with the configured repository name must name the configured owner too (a copy left
# behind by a fork). Other repositories of the same owner may be mentioned freely.
_MENTION = re.compile(
    rf"(?:github\.com/|colab\.research\.google\.com/github/)(?P<owner>{_NAME})/(?P<name>{_NAME})"
    rf"|(?P<pages_owner>{_NAME})\.github\.io/(?P<pages_name>{_NAME})"
)


def _tracked_text_files(root: Path) -> Dict[str, str]:
    """Every file git tracks under ``root`` that reads as UTF-8 text, by relative path."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise ValueError(f"root must be a git checkout, got {root}: {listing.stderr.strip()}")
    texts = {}
    for relative in filter(None, listing.stdout.split("\0")):
        path = root / relative
        if not path.is_file():
            continue
        try:
            texts[relative] = path.read_bytes().decode("utf-8")  # line endings kept
        except UnicodeDecodeError:
            continue
    return texts


def _strip_git(name: str) -> str:
    return name[: -len(".git")] if name.endswith(".git") else name


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def check(root: Path = ROOT) -> List[str]:
    """Every copy of the repository URL that is missing or disagrees with ``_config.yml``."""
    root = Path(root)
    repository = read_repository(root)
    texts = _tracked_text_files(root)
    problems: List[str] = []
    for copy in _COPIES:
        paths = sorted(path for path in texts if fnmatch.fnmatchcase(path, copy.files))
        if not paths:
            problems.append(f"{copy.files}: not found (should hold {copy.what})")
        for path in paths:
            matches = list(re.finditer(copy.pattern, texts[path], flags=re.MULTILINE))
            if not matches:
                problems.append(f"{path}: has no {copy.what} naming {repository.url}")
            for match in matches:
                slug = f"{match.group('owner')}/{match.group('name')}"
                if slug.lower() != repository.slug.lower():
                    where = f"{path}:{_line(texts[path], match.start())}"
                    problems.append(f"{where}: {copy.what} names {slug}, not {repository.slug}")
    for path, text in sorted(texts.items()):
        for match in _MENTION.finditer(text):
            owner = match.group("owner") or match.group("pages_owner")
            name = _strip_git(match.group("name") or match.group("pages_name"))
            if name == repository.name and owner.lower() != repository.owner.lower():
                line = _line(text, match.start())
                problems.append(f"{path}:{line}: {match.group(0)} is not {repository.slug}")
    return problems


def _rewrite(text: str, old: Repository, new: Repository) -> str:
    """``text`` with every address of ``old`` (GitHub, Colab, Pages, clone folder) made ``new``."""
    end = r"(?=\.git\b|[^\w.-]|$)"
    owner, name = re.escape(old.owner), re.escape(old.name)
    text = re.sub(
        rf"(github\.com/|colab\.research\.google\.com/github/){owner}/{name}{end}",
        lambda match: f"{match.group(1)}{new.slug}",
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        rf"\b{owner}\.github\.io/{name}{end}",
        f"{new.owner.lower()}.github.io/{new.name}",
        text,
        flags=re.MULTILINE | re.IGNORECASE,
    )
    return re.sub(rf"^cd {name}$", f"cd {new.name}", text, flags=re.MULTILINE)


def set_repository(url: str, root: Path = ROOT) -> List[str]:
    """Make ``url`` the repository everywhere (for a fork); returns the files changed.

    Rewrites every tracked file that names the current repository (``_config.yml`` first),
    regenerates the notebooks' setup cells, and raises ValueError if ``check`` still fails.
    """
    from tools import student

    root = Path(root)
    old = read_repository(root)
    new = parse_url(url, old.branch)
    changed = []
    for path, text in sorted(_tracked_text_files(root).items()):
        rewritten = _rewrite(text, old, new)
        if rewritten != text:
            (root / path).write_bytes(rewritten.encode("utf-8"))
            changed.append(path)
    regenerated = student.sync(root / "book")
    changed += [Path(path).relative_to(root).as_posix() for path in regenerated]
    problems = check(root)
    if problems:
        raise ValueError("copies left over after the rewrite:\n  " + "\n  ".join(problems))
    return sorted(set(changed))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.repository",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's folder")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="exit 1 if a copy of the URL disagrees with _config.yml")
    rename = commands.add_parser("set-repository", help="rewrite every copy of the URL")
    rename.add_argument("url", help="the new repository, https://github.com/OWNER/NAME")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            problems = check(args.root)
            if problems:
                print(
                    f"copies of the repository URL that disagree with {CONFIG}:\n  "
                    + "\n  ".join(problems)
                    + "\n(fix them, or run `python -m tools.repository set-repository URL`)"
                )
                return 1
            print(f"every copy names {read_repository(args.root).url}")
            return 0
        changed = set_repository(args.url, args.root)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"now {args.url}; changed:\n  " + "\n  ".join(changed) if changed else "nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
