"""Which AWS API operations a Lambda binary's Rust code calls.

The IAM test compares this with the function's policy in template.yaml, so a
new SDK call without a matching permission fails CI instead of failing in the
account at 2 am.

How it works, deliberately simple and conservative:

1. The SDK operation names come from the SDK crates themselves
   (``src/client/<op>.rs`` defines ``pub fn <op>(&self) -> ...FluentBuilder``),
   located through ``cargo metadata``, so the list always matches Cargo.lock.
2. The sources a binary links: its own crate, plus the ``crates/aws`` modules
   it names (``etl_aws::module`` paths or the names ``lib.rs`` re-exports),
   plus the modules those name (``crate::x``, ``super::x``), transitively.
   ``#[cfg(test)]`` items, ``#[cfg(feature = ...)]``-gated modules, comments
   and string literals are removed first.
3. In a file that mentions ``aws_sdk_<service>``, every method call
   ``.op(`` whose name is an operation of that service counts as a call. Names
   that are also common Rust methods (``Iterator::scan``) count only when
   called on a plain identifier path (``client.scan()``, not ``iter.scan()``).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# SDK crate name -> IAM service prefix.
SDK_CRATES = {
    "aws-sdk-athena": "athena",
    "aws-sdk-comprehend": "comprehend",
    "aws-sdk-dynamodb": "dynamodb",
    "aws-sdk-glue": "glue",
    "aws-sdk-s3": "s3",
    "aws-sdk-sqs": "sqs",
}

# Operation names that are also methods of std types; see rule 3 above.
AMBIGUOUS_METHOD_NAMES = {"scan", "get", "query", "list", "describe"}

# Operations whose IAM action is not simply service:OperationName. Each maps to
# every action the call needs.
ACTION_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    # Batch variants are authorised by the single-message action.
    "sqs:SendMessageBatch": ("sqs:SendMessage",),
    "sqs:DeleteMessageBatch": ("sqs:DeleteMessage",),
    "sqs:ChangeMessageVisibilityBatch": ("sqs:ChangeMessageVisibility",),
    # Multipart uploads are authorised by s3:PutObject, except abort/list.
    "s3:CreateMultipartUpload": ("s3:PutObject",),
    "s3:UploadPart": ("s3:PutObject",),
    "s3:CompleteMultipartUpload": ("s3:PutObject",),
    "s3:ListParts": ("s3:ListMultipartUploadParts",),
    "s3:HeadObject": ("s3:GetObject",),
    "s3:HeadBucket": ("s3:ListBucket",),
    "s3:ListObjectsV2": ("s3:ListBucket",),
    "s3:ListObjects": ("s3:ListBucket",),
    "s3:DeleteObjects": ("s3:DeleteObject",),
    "s3:CopyObject": ("s3:GetObject", "s3:PutObject"),
    "s3:UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
}


@dataclass(frozen=True)
class Call:
    """One SDK operation call site."""

    service: str  # IAM prefix, e.g. "sqs"
    operation: str  # PascalCase, e.g. "SendMessageBatch"
    path: str  # relative to the workspace root
    line: int
    function: str  # the innermost enclosing `fn`, "" at module level

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


def iam_actions(call_name: str) -> tuple[str, ...]:
    """IAM actions needed by ``service:Operation``."""
    return ACTION_EXCEPTIONS.get(call_name, (call_name,))


# ---------------------------------------------------------------- SDK operations

_FLUENT_FN = re.compile(
    r"pub fn ([a-z0-9_]+)\(\s*&self,?\s*\)\s*->\s*crate::operation::[a-z0-9_]+::builders::([A-Za-z0-9]+)FluentBuilder"
)


def operations_in_sdk_crate(crate_dir: Path) -> dict[str, str]:
    """snake_case fluent method -> PascalCase operation, from an SDK crate's sources."""
    ops: dict[str, str] = {}
    for f in sorted((crate_dir / "src" / "client").glob("*.rs")):
        for m in _FLUENT_FN.finditer(f.read_text(encoding="utf-8")):
            ops[m.group(1)] = m.group(2)
    return ops


def sdk_crate_dirs(workspace: Path) -> dict[str, Path]:
    """IAM service prefix -> source directory of the SDK crate Cargo.lock selects."""
    out = None
    errors = []
    for extra in ([], ["--offline"]):
        proc = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", *extra],
            cwd=workspace,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            out = json.loads(proc.stdout)
            break
        errors.append(proc.stderr.strip())
    if out is None:
        raise RuntimeError("cargo metadata failed:\n" + "\n".join(errors))
    dirs = {}
    for pkg in out["packages"]:
        if pkg["name"] in SDK_CRATES:
            dirs[SDK_CRATES[pkg["name"]]] = Path(pkg["manifest_path"]).parent
    return dirs


# ------------------------------------------------------------------ Rust source

_RAW_STR = re.compile(r'b?r(#*)"')


def strip_comments_and_strings(src: str) -> str:
    """Blank out comments, string and char literals, keeping newlines (line numbers)."""
    out: list[str] = []
    i, n = 0, len(src)

    def blank(text: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in text)

    while i < n:
        c = src[i]
        nxt = src[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(src[i:j]))
            i = j
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
        elif (m := _RAW_STR.match(src, i)) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + blank(src[i + 2 : j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + blank(src[i + 2 : j + 1]))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[i:])):
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _matching_brace(src: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(src) - 1


_CFG_ITEM = re.compile(r"#\[cfg\((test|feature\s*=[^\]]*|all\([^\]]*test[^\]]*\))\)\]")


def strip_cfg_gated_items(src: str) -> str:
    """Blank out items under ``#[cfg(test)]`` / ``#[cfg(feature = ..)]`` (test and optional code)."""
    while m := _CFG_ITEM.search(src):
        start = m.start()
        # The item ends at its first `;` (e.g. `mod x;`, `use ..;`) or its
        # body's closing brace, whichever comes first.
        semi = src.find(";", m.end())
        brace = src.find("{", m.end())
        if brace >= 0 and (semi < 0 or brace < semi):
            end = _matching_brace(src, brace)
        else:
            end = semi if semi >= 0 else len(src) - 1
        src = src[:start] + "".join("\n" if c == "\n" else " " for c in src[start : end + 1]) + src[end + 1 :]
    return src


def clean_rust(src: str) -> str:
    return strip_cfg_gated_items(strip_comments_and_strings(src))


_METHOD_CALL = re.compile(r"\.\s*([a-z][a-z0-9_]*)\s*(?:::\s*<[^>]*>\s*)?\(")
_FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def fn_spans(text: str) -> list[tuple[int, int, str]]:
    """(body start, body end, name) of every fn with a body."""
    spans = []
    for m in _FN.finditer(text):
        depth, j = 0, m.end()
        while j < len(text):
            c = text[j]
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif depth == 0 and c in "{;":
                break
            j += 1
        if j < len(text) and text[j] == "{":  # `;` first: a declaration without a body
            spans.append((j, _matching_brace(text, j), m.group(1)))
    return spans


def enclosing_fn(spans: list[tuple[int, int, str]], pos: int) -> str:
    inner = [s for s in spans if s[0] <= pos <= s[1]]
    return max(inner, key=lambda s: s[0])[2] if inner else ""


def calls_in_source(
    text: str, path: str, sdk_ops: dict[str, dict[str, str]]
) -> list[Call]:
    """SDK calls in one (cleaned) Rust file."""
    services = [s for s in sdk_ops if re.search(rf"\baws_sdk_{s}\b", text)]
    spans = fn_spans(text) if services else []
    calls = []
    for m in _METHOD_CALL.finditer(text):
        name = m.group(1)
        owners = [s for s in services if name in sdk_ops[s]]
        if not owners:
            continue
        if name in AMBIGUOUS_METHOD_NAMES:
            before = text[: m.start()].rstrip()
            if not before or not (before[-1].isalnum() or before[-1] == "_"):
                continue  # called on an expression (iter().scan(..)), not a client
        if len(owners) > 1:
            raise ValueError(
                f"{path}: `.{name}(` is an operation of {owners}; keep one SDK service per file "
                "so its calls can be attributed"
            )
        service = owners[0]
        line = text.count("\n", 0, m.start()) + 1
        calls.append(Call(service, sdk_ops[service][name], path, line, enclosing_fn(spans, m.start())))
    return calls


# ----------------------------------------------------------- what a binary links


@dataclass
class AwsCrate:
    """The crates/aws library: its modules and re-exports."""

    root: Path
    modules: dict[str, list[Path]] = field(default_factory=dict)
    reexports: dict[str, str] = field(default_factory=dict)  # exported name -> module

    @classmethod
    def load(cls, root: Path) -> "AwsCrate":
        crate = cls(root)
        lib = clean_rust((root / "src" / "lib.rs").read_text(encoding="utf-8"))
        for m in re.finditer(r"\bmod\s+([a-z0-9_]+)\s*;", lib):
            name = m.group(1)
            files = [root / "src" / f"{name}.rs"]
            sub = root / "src" / name
            if sub.is_dir():
                files += sorted(sub.rglob("*.rs"))
            crate.modules[name] = [f for f in files if f.exists()]
        for m in re.finditer(r"\bpub\s+use\s+([a-z0-9_]+)::(\{[^}]*\}|[A-Za-z0-9_]+)\s*;", lib):
            module, names = m.group(1), m.group(2).strip("{}")
            for name in names.split(","):
                name = name.strip().split(" as ")[-1].strip()
                if name:
                    crate.reexports[name] = module
        return crate

    def modules_named_in(self, text: str, inside: str | None = None) -> set[str]:
        found = set()
        for module in self.modules:
            pats = [rf"\betl_aws::{module}\b"]
            if inside is not None:
                pats += [rf"\bcrate::{module}\b", rf"\bsuper::{module}\b"]
            if any(re.search(p, text) for p in pats):
                found.add(module)
        for name, module in self.reexports.items():
            if re.search(rf"\b{name}\b", text) and (inside is None or module != inside):
                found.add(module)
        return found


def linked_sources(binary_crate: Path, aws: AwsCrate) -> list[Path]:
    """The binary's own sources plus the crates/aws sources it reaches."""
    own = sorted((binary_crate / "src").rglob("*.rs"))
    todo: set[str] = set()
    for f in own:
        todo |= aws.modules_named_in(clean_rust(f.read_text(encoding="utf-8")))
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for f in aws.modules[module]:
            todo |= aws.modules_named_in(clean_rust(f.read_text(encoding="utf-8")), inside=module) - seen
    aws_files = [aws.root / "src" / "lib.rs"] + [f for m in sorted(seen) for f in aws.modules[m]]
    return own + aws_files


def sdk_calls(binary_crate: Path, aws_crate: Path, sdk_ops: dict[str, dict[str, str]], base: Path) -> list[Call]:
    """Every SDK call the binary's linked sources make."""
    aws = AwsCrate.load(aws_crate)
    calls: list[Call] = []
    for f in linked_sources(binary_crate, aws):
        text = clean_rust(f.read_text(encoding="utf-8"))
        calls += calls_in_source(text, str(f.relative_to(base)), sdk_ops)
    return calls
