"""Reading an OD API `pipeline.config`: parse it with odapi's own schema, and check it.

The file is protobuf text (`model { ssd { ... } } train_config { ... }`) parsed into
`odapi.protos.TrainEvalPipelineConfig`. What a user can act on is reported with the place in
the file: an unknown field or enum value (with the closest valid name), a tutorial placeholder
left in (`YOUR-...`, `PATH_TO_BE_CONFIGURED`). Each field the file sets is listed as a
`SetField` with its line, so the translation can say what became of every one of them.
"""

from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from odapi.errors import OdapiError

if TYPE_CHECKING:
    from google.protobuf.descriptor import FieldDescriptor
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message import Message

    from odapi.protos import pipeline_pb2

TOP_LEVEL_FIELDS = ("model", "train_config", "train_input_reader", "eval_config",
                    "eval_input_reader")
PLACEHOLDER = re.compile(r"YOUR[-_]|PATH_TO_BE_CONFIGURED|SAME-LABELMAP-AS-ABOVE")
_FIRST_FIELD = re.compile(rf"^\s*({'|'.join(TOP_LEVEL_FIELDS)})\s*[:{{]")
_LOCATION = re.compile(r"^\d+(:\d+)? : ")
_QUOTED_LINE = re.compile(r"^'[^\n]*?': ")  # some messages repeat the offending line
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')
_NO_ENUM_VALUE = re.compile(r'Enum type "([\w.]+)" has no value named (\w+)')
_TOKEN = re.compile(r"""\s+ | \#[^\n]* | "(?:[^"\\\n]|\\.)*" | '(?:[^'\\\n]|\\.)*'
                        | [^\s{}<>\[\]:,;#]+ | .""", re.VERBOSE)


def is_pipeline_config(path: Path) -> bool:
    """A `.config` file, or any file whose first field is one of a pipeline config's."""
    path = Path(path)
    if path.suffix == ".config":
        return True
    if path.suffix in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return False
    for line in head.splitlines():
        line = line.split("#", 1)[0]
        if line.strip():
            return bool(_FIRST_FIELD.match(line))
    return False


def _schema() -> ModuleType:
    """odapi's compiled pipeline schema, or how to compile it."""
    try:
        from odapi.protos import pipeline_pb2
    except ImportError as e:  # generated at install time
        raise OdapiError("odapi's protobuf schemas are not compiled; run `make setup` (or "
                         "`python -m odapi.protos.compile`) and try again") from e
    return pipeline_pb2


class EnumName(str):
    """An enum value (`RELU_6`), written without quotes."""


@dataclass(frozen=True)
class SetField:
    """One field the file sets: a scalar, a list of scalars, or an empty block (`{}`)."""

    path: str  # e.g. "train_config.data_augmentation_options[1].ssd_random_crop"
    value: Any
    line: int | None

    @property
    def key(self) -> str:
        """The path without list indices, for matching rules."""
        return re.sub(r"\[\d+\]", "", self.path)

    def shown(self) -> str:
        """The value as the file writes it."""
        return format_value(self.value)


def format_value(value: Any) -> str:
    """A field's value in the file's own syntax, for tables and messages."""
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and not isinstance(value, EnumName):
        return f'"{value}"'
    return str(value)


@dataclass
class PipelineFile:
    """A parsed pipeline.config: the message, and where in the text each field is."""

    path: Path
    message: pipeline_pb2.TrainEvalPipelineConfig
    lines: dict[str, int] = field(default_factory=dict)  # indexed path -> line

    def line_of(self, path: str) -> int | None:
        """Line of a field path; blocks count as index 0 unless the path says otherwise."""
        parts = path.split(".")
        indexed = [p if p.endswith("]") else f"{p}[0]" for p in parts[:-1]]
        for last in (parts[-1], f"{parts[-1]}[0]" if not parts[-1].endswith("]") else None):
            if last and ".".join([*indexed, last]) in self.lines:
                return self.lines[".".join([*indexed, last])]
        return None

    def where(self, path: str) -> str:
        """`file:line` of a field, for error messages; the file alone if it is not set."""
        line = self.line_of(path)
        return f"{self.path}:{line}" if line else str(self.path)

    def fields(self) -> list[SetField]:
        """Every field set in the file, in the order the file has them."""
        result: list[SetField] = []
        _walk(self.message, "", result, self)
        return sorted(result, key=lambda f: f.line or 0)


def _walk(message: Message, prefix: str, out: list[SetField], file: PipelineFile) -> None:
    from google.protobuf.descriptor import FieldDescriptor

    for descriptor, value in message.ListFields():
        path = prefix + descriptor.name
        is_message = descriptor.type == FieldDescriptor.TYPE_MESSAGE
        if descriptor.is_repeated:
            if is_message:
                for index, item in enumerate(value):
                    _walk_message(item, f"{path}[{index}]", out, file)
            else:
                values = [_python(descriptor, v) for v in value]
                out.append(SetField(path, values, file.line_of(path)))
        elif is_message:
            _walk_message(value, path, out, file)
        else:
            out.append(SetField(path, _python(descriptor, value), file.line_of(path)))


def _walk_message(message: Message, path: str, out: list[SetField],
                  file: PipelineFile) -> None:
    if message.ListFields():
        _walk(message, path + ".", out, file)
    else:
        out.append(SetField(path, {}, file.line_of(path)))


def _python(descriptor: FieldDescriptor, value: Any) -> Any:
    """A field's value as Python: enums by name, floats as the file wrote them."""
    from google.protobuf.descriptor import FieldDescriptor

    if descriptor.type == FieldDescriptor.TYPE_ENUM:
        return EnumName(descriptor.enum_type.values_by_number[value].name)
    if descriptor.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return float(f"{value:.7g}")  # the float32 the file meant, without its noise
    return value


def _field_lines(text: str) -> dict[str, int]:
    """Each field's line, keyed by path with every block indexed: `model[0].ssd[0].num_classes`.

    A small scanner over text that protobuf already accepted: names before `:` or `{` are
    fields, `{`/`<` open a block, `}`/`>` close it, `[...]` is a list of values.
    """
    starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
    tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(text)
              if not m.group().isspace() and not m.group().startswith("#")]
    lines: dict[str, int] = {}
    stack: list[str] = []
    counts: dict[str, int] = {}
    i = 0
    while i < len(tokens):
        token, offset = tokens[i]
        if token in ("}", ">"):
            if stack:
                stack.pop()
            i += 1
            continue
        if not re.match(r"^[A-Za-z_]\w*$", token):
            i += 1
            continue
        line = bisect.bisect_right(starts, offset)
        nxt = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        after = tokens[i + 2][0] if i + 2 < len(tokens) else ""
        parent = ".".join(stack)
        if nxt in ("{", "<") or (nxt == ":" and after in ("{", "<")):
            key = f"{parent}.{token}" if parent else token
            index = counts.get(key, 0)
            counts[key] = index + 1
            stack.append(f"{token}[{index}]")
            lines.setdefault(".".join(stack), line)
            i += 2 if nxt != ":" else 3
            continue
        if nxt == ":":
            lines.setdefault(f"{parent}.{token}" if parent else token, line)
            i += 2
            if i < len(tokens) and tokens[i][0] == "[":
                while i < len(tokens) and tokens[i][0] != "]":
                    i += 1
            i += 1
            continue
        i += 1
    return lines


def _suggestion(error_text: str, pool: DescriptorPool) -> str:
    """`; did you mean "num_classes"?` for an unknown field or enum value, if one is close."""
    match = _NO_FIELD.search(error_text)
    if match:
        try:
            names = [f.name for f in pool.FindMessageTypeByName(match.group(1)).fields]
        except KeyError:
            return ""
        close = difflib.get_close_matches(match.group(2), names, n=1, cutoff=0.6)
        if close:
            return f'; did you mean "{close[0]}"?'
        return f" (valid here: {', '.join(sorted(names))})"
    match = _NO_ENUM_VALUE.search(error_text)
    if match:
        try:
            names = [v.name for v in pool.FindEnumTypeByName(match.group(1)).values]
        except KeyError:
            return ""
        close = difflib.get_close_matches(match.group(2), names, n=1, cutoff=0.5)
        return f"; did you mean {close[0]}?" if close else f" (valid: {', '.join(names)})"
    return ""


def read_pipeline_config(path: Path) -> PipelineFile:
    """Parse `path`; a syntax error or unknown name is reported as `file:line:column`."""
    from google.protobuf import text_format

    schema = _schema()
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OdapiError(f"cannot read the pipeline config: {e}", where=str(path)) from None
    message = schema.TrainEvalPipelineConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        detail = _QUOTED_LINE.sub("", _LOCATION.sub("", str(e))).replace("odapi.protos.", "")
        hint = _suggestion(str(e), message.DESCRIPTOR.file.pool)
        where = f"{path}:{e.GetLine()}:{e.GetColumn()}" if e.GetLine() else str(path)
        raise OdapiError(f"not a pipeline config odapi can read: {detail.rstrip('.')}{hint}",
                         where=where) from None
    if not message.HasField("model"):
        raise OdapiError("the pipeline config has no `model { ... }` block", where=str(path))
    return PipelineFile(path=path, message=message, lines=_field_lines(text))


def check_placeholders(file: PipelineFile, skip: tuple[str, ...] = ()) -> None:
    """The tutorial's and the samples' `YOUR-...` / `PATH_TO_BE_CONFIGURED` values, all named."""
    left = [f for f in file.fields() if not f.key.startswith(skip) and any(
        isinstance(v, str) and PLACEHOLDER.search(v)
        for v in (f.value if isinstance(f.value, list) else [f.value]))]
    if left:
        listed = "\n".join(f"  line {f.line}: {f.path} = {f.shown()}" for f in left)
        raise OdapiError(f"the config still holds the tutorial's placeholders; replace each "
                         f"with a real path (relative to the config file or the --data "
                         f"folder):\n{listed}", where=str(file.path))

