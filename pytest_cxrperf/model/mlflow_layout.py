"""MLflow model folders (an ``MLmodel`` file at the root), as the Azure ML registry ships them.

CXRReportGen is published only this way: a ``python_function`` flavor whose loader is a
cloudpickled ``python_model.pkl`` plus a ``code/`` folder, with the weights in an artifact folder
(``artifacts/checkpoints``) whose inner layout is not documented. Loading such a folder the MLflow
way means unpickling, i.e. running code from the folder, which this project never does. So the
``MLmodel`` file is read as data only (PyYAML's safe loader where it is installed, else a small
parser for the nested ``key: value`` mappings it needs) and the artifact folders are searched for
a layout :mod:`.loader` already reads: this project's own format or a Hugging Face layout with a
supported ``model_type``. If there is none, the error reports what the artifacts hold (file names
and sizes, safetensors headers: 8-byte little-endian length + JSON, never the tensor data) so the
user can convert the weights. Pickle files (``*.pkl``, ``*.bin``, ...) are only listed, never read.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .formats import PICKLE_SUFFIXES, SUPPORTED_MODEL_TYPES

MLMODEL_FILE = "MLmodel"
OWN_CONFIG_FILE = "cxrperf_config.json"  # loader.CONFIG_FILE (loader imports torch; this does not)
HF_CONFIG_FILE = "config.json"
README_SECTION = 'README.md, section "Your own model and studies"'
_LISTED_FILES = 10
_LISTED_PREFIXES = 6
_HEADER_LIMIT = 100 * 1024 * 1024  # a safetensors JSON header larger than this is not one


@dataclass(frozen=True)
class MLflowModel:
    """What an ``MLmodel`` file says, as far as this project cares."""

    folder: Path
    flavors: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def pyfunc(self) -> dict[str, Any]:
        flavor = self.flavors.get("python_function")
        return flavor if isinstance(flavor, dict) else {}

    def describe(self) -> str:
        """'an MLflow pyfunc model (base_model_name CxrReportGen) whose loader is ...'"""
        flavors = ", ".join(sorted(self.flavors)) or "none"
        named = self.metadata.get("base_model_name")
        what = f" (base_model_name {named})" if named else ""
        pyfunc = self.pyfunc
        if not pyfunc:
            return f"an MLflow model{what} with the flavors {flavors}"
        pickled = pyfunc.get("python_model")
        loader = pyfunc.get("loader_module", "?")
        how = f"the pickled {pickled}" if pickled else f"the module {loader}"
        return f"an MLflow pyfunc model{what} whose loader is {how} (loader_module {loader})"

    def artifact_folders(self) -> list[Path]:
        """Where weights may be: the declared artifacts (relative paths inside the folder; a
        ``uri`` is usually a path on the machine that built it), then ``artifacts/*``."""
        found: list[Path] = []
        root = self.folder.resolve()
        declared = self.pyfunc.get("artifacts")
        for entry in declared.values() if isinstance(declared, dict) else []:
            for key in ("path", "uri"):
                value = entry.get(key) if isinstance(entry, dict) else None
                if not isinstance(value, str) or not value or Path(value).is_absolute():
                    continue
                candidate = (self.folder / value).resolve()
                if candidate.is_relative_to(root) and candidate not in found:
                    found.append(candidate)
        artifacts = self.folder / "artifacts"
        if artifacts.is_dir():
            for child in sorted(artifacts.iterdir()):
                candidate = child.resolve()
                if child.is_dir() and candidate.is_relative_to(root) and candidate not in found:
                    found.append(candidate)
        return found

    def declared_artifacts(self) -> list[str]:
        declared = self.pyfunc.get("artifacts")
        if not isinstance(declared, dict):
            return []
        return [
            f"{name} at {entry.get('path') or entry.get('uri')}"
            for name, entry in declared.items()
            if isinstance(entry, dict)
        ]


def is_mlflow_folder(folder: Path) -> bool:
    """An MLflow model folder that is not also a checkpoint folder in its own right."""
    return (
        folder.is_dir()
        and (folder / MLMODEL_FILE).is_file()
        and not (folder / OWN_CONFIG_FILE).is_file()
        and not (folder / HF_CONFIG_FILE).is_file()
    )


# ---- reading MLmodel as data ---------------------------------------------------------------------
_KEY_LINE = re.compile(r"^( *)([A-Za-z0-9_.\-]+):(?: +(.*))?$")


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return {"null": None, "~": None, "true": True, "false": False}.get(text.lower(), text)


def parse_minimal(text: str) -> dict[str, Any]:
    """Nested ``key: value`` mappings by indentation, which is all of MLmodel this project reads;
    lists and multi-line values (the signature) are skipped. For environments without PyYAML."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    continuation = None  # lines indented deeper than a scalar's key belong to that scalar
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if continuation is not None and indent > continuation:
            continue
        continuation = None
        if line.lstrip() == "-" or line.lstrip().startswith("- "):
            continuation = indent  # a list item (and what is nested in it): not needed here
            continue
        match = _KEY_LINE.match(line.rstrip())
        if match is None:
            raise ValueError(f"line {number} is not 'key: value': {line.strip()[:60]!r}")
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        key, value = match.group(2), match.group(3)
        if value is None or value.strip() == "":
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = _scalar(value)
            continuation = indent
    return root


def read_mlmodel(folder: Path) -> MLflowModel:
    """The ``MLmodel`` file as data; anything else in it is a clear error, never a traceback."""
    path = folder / MLMODEL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not a readable MLmodel file: {exc}") from exc
    try:
        data = _load_yaml(text)
    except ValueError as exc:
        raise _malformed(path, str(exc)) from exc
    if not isinstance(data, dict):
        raise _malformed(path, f"it holds a {type(data).__name__}, not a mapping")
    flavors = data.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise _malformed(path, "it has no 'flavors' mapping")
    metadata = data.get("metadata")
    return MLflowModel(folder, flavors, metadata if isinstance(metadata, dict) else {})


def _load_yaml(text: str) -> Any:
    """PyYAML's safe loader (no Python objects are ever constructed), else :func:`parse_minimal`;
    a syntax error is a ValueError either way."""
    try:
        import yaml
    except ImportError:  # not a dependency of this project: MLmodel needs little of YAML
        return parse_minimal(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from exc


def _malformed(path: Path, detail: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path} is not a valid MLflow MLmodel file ({detail}); --cxr-model takes an MLflow "
        "folder only to find a supported checkpoint in its artifacts: pass that checkpoint "
        f"folder itself, or fix the file (supported layouts: {README_SECTION})"
    )


# ---- finding a supported layout in the artifacts -------------------------------------------------
def _layout(folder: Path) -> tuple[str | None, str | None]:
    """(layout name, None) if :mod:`.loader` reads ``folder``; else (None, why not or None)."""
    if (folder / OWN_CONFIG_FILE).is_file():
        return "this project's format (cxrperf_config.json)", None
    config = folder / HF_CONFIG_FILE
    if not config.is_file():
        return None, None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{config.name} is not readable JSON ({exc})"
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type in SUPPORTED_MODEL_TYPES:
        return f"the Hugging Face layout (config.json model_type {model_type!r})", None
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    return None, f"{config.name} has model_type {model_type!r} (supported: {supported})"


def resolve(folder: Path) -> tuple[Path, str]:
    """The checkpoint folder inside an MLflow folder and a notice saying so; or the error."""
    model = read_mlmodel(folder)
    reasons: list[str] = []
    for candidate in model.artifact_folders():
        if not candidate.is_dir():
            continue
        layout, why = _layout(candidate)
        if layout is not None:
            inner = candidate.relative_to(folder.resolve())
            notice = (
                f"--cxr-model={folder} is {model.describe()}; its code is not run: the weights "
                f"in {inner} were loaded as {layout}"
            )
            return candidate, notice
        if why:
            reasons.append(f"{candidate.relative_to(folder.resolve())}/{why}")
    raise ModelLoadError(_refusal(model, reasons))


def _refusal(model: MLflowModel, reasons: list[str]) -> str:
    folder = model.folder
    parts = [
        f"--cxr-model={folder} is {model.describe()}. pytest-cxrperf never executes code from a "
        "model folder (no unpickling, no imports from code/), and its artifacts hold no "
        "checkpoint layout this project reads."
    ]
    declared = model.declared_artifacts()
    if declared:
        parts.append(f"MLmodel declares the artifact {'; '.join(declared)}.")
    root = folder.resolve()
    files: set[Path] = set()
    for entry in model.artifact_folders():
        if entry.is_dir():
            files.update(p for p in entry.rglob("*") if p.is_file())
        elif entry.is_file():
            files.add(entry)
        else:
            parts.append(f"{entry.relative_to(root)} does not exist.")
    listed = sorted(files)
    if listed:
        shown = ", ".join(
            f"{p.relative_to(root)} ({_size(p.stat().st_size)}"
            + (", pickle: not opened)" if p.suffix in PICKLE_SUFFIXES else ")")
            for p in listed[:_LISTED_FILES]
        )
        more = f" and {len(listed) - _LISTED_FILES} more" if len(listed) > _LISTED_FILES else ""
        parts.append(f"Found: {shown}{more}.")
    elif not model.artifact_folders():
        parts.append("No artifact files were found (none declared, no folder under artifacts/).")
    parts += [f"{reason}." for reason in reasons]
    safetensors = [p for p in listed if p.suffix == ".safetensors"]
    if safetensors:
        parts.append(_safetensors_summary(safetensors))
    parts.append(
        "To use it, convert the weights to a supported layout, this project's "
        f"{OWN_CONFIG_FILE} + model.safetensors or MAIRA-2's Hugging Face layout (config.json "
        "with model_type maira2, safetensors shards with their index, tokenizer.json), and pass "
        f"that folder; see {README_SECTION}."
    )
    return " ".join(parts)


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def safetensors_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file's JSON header; the tensor data is never read."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise ValueError("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > _HEADER_LIMIT:
            raise ValueError(f"claims a {length}-byte header")
        header = json.loads(handle.read(length).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    return sorted(k for k in header if k != "__metadata__")


def name_prefix(name: str) -> str:
    """'text_decoder.model.layers.3.mlp.up.weight' -> 'text_decoder.model': at most two leading
    parts, never the tensor's own (last) part, and no layer numbers."""
    parts = name.split(".")[:-1] or [name]
    kept: list[str] = []
    for part in parts[:2]:
        if part.isdigit():
            break
        kept.append(part)
    return ".".join(kept) or name


def _safetensors_summary(files: list[Path]) -> str:
    names: list[str] = []
    unreadable: list[str] = []
    for path in files:
        try:
            names += safetensors_names(path)
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
            unreadable.append(f"{path.name} ({exc})")
    prefixes = list(dict.fromkeys(name_prefix(n) for n in sorted(names)))
    text = f"{len(files)} safetensors file(s) hold {len(names)} tensors"
    if prefixes:
        shown = ", ".join(f"{p}.*" for p in prefixes[:_LISTED_PREFIXES])
        hidden = len(prefixes) - _LISTED_PREFIXES
        more = f" (+{hidden} more)" if hidden > 0 else ""
        text += f", named {shown}{more}"
    if unreadable:
        text += f"; header unreadable: {', '.join(unreadable)}"
    return text + "."
