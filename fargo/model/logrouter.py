"""EKS Fargate's log router (a Fluent Bit that AWS runs beside each pod), as fargo runs it:
the `aws-logging` ConfigMap of namespace `aws-observability`, read when a pod starts, gives
each of its containers routes to CloudWatch Logs.

What runs: [OUTPUT] cloudwatch_logs (and the older cloudwatch plugin) with Match/Match_Regex,
region, log_group_name, log_stream_prefix or a plain log_stream_name, auto_create_group and
log_key; [FILTER] grep (Regex/Exclude on a record key) and parser (Key_Name, one Parser,
Reserve_Data, Preserve_Key); [PARSER]s of Format regex or json with Time_Key, Time_Format and
Time_Keep. Every line of a container's k8s-file log is one record {"log": LINE}, as Fargate's
tail input reads it (partial lines are not joined, there is no multiline parser). Whatever EKS
refuses is refused in its words; whatever else EKS would run and fargo does not (other
outputs and filters, other options) disables logging for the pod with an event naming it:
never a configuration half honoured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

from .logconfig import FilterStep, LogRoute, compile_pattern

NAMESPACE = "aws-observability"
CONFIGMAP = "aws-logging"
MAX_CHARS = 5300  # EKS refuses a bigger ConfigMap
KEYS = ("output.conf", "filters.conf", "parsers.conf", "flb_log_cw")
EKS_OUTPUTS = ("es", "firehose", "kinesis_firehose", "cloudwatch", "cloudwatch_logs", "kinesis")
EKS_FILTERS = ("grep", "parser", "record_modifier", "rewrite_tag", "throttle", "nest", "modify",
               "kubernetes")
_OUTPUT_KEYS = frozenset({"name", "match", "match_regex", "region", "log_group_name",
                          "log_stream_prefix", "log_stream_name", "auto_create_group", "log_key",
                          "workers", "retry_limit"})
_ON = {"on": True, "true": True, "yes": True, "1": True,
       "off": False, "false": False, "no": False, "0": False}

ENABLED = "LoggingEnabled"
NOT_FOUND = "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
INVALID = "LoggingDisabled: LOGGING_CONFIGMAP_INVALID"


class ConfigError(Exception):
    """What is wrong with the ConfigMap, in the words an event says it."""


@dataclass
class Section:
    kind: str  # OUTPUT | FILTER | PARSER, upper case
    entries: list[tuple[str, str]] = field(default_factory=list)  # keys lower case, in order

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.entries if k == key), None)

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.entries if k == key]


@dataclass(frozen=True)
class Logging:
    """A pod's logging as its start resolved it."""

    routes: list[LogRoute]
    annotation: str  # the pod's `Logging` annotation
    problem: str | None = None  # why logging is disabled (an event says it); None: enabled


def sections(text: str, where: str) -> list[Section]:
    """Fluent Bit's classic configuration: [SECTION] headers, `key value` lines, # comments."""
    out: list[Section] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            raise ConfigError(f"{where}: the directive {line.split()[0]} is not supported by "
                              "fargo")
        if line.startswith("[") and line.endswith("]"):
            out.append(Section(line[1:-1].strip().upper()))
            continue
        if not out:
            raise ConfigError(f"{where}: '{line[:64]}' is outside of any section")
        key, _, value = line.partition(" ")
        out[-1].entries.append((key.lower(), value.strip()))
    return out


def _flag(section: Section, key: str, default: bool) -> bool:
    value = section.get(key)
    if value is None:
        return default
    if value.lower() not in _ON:
        raise ConfigError(f"{key} '{value[:32]}' is not On or Off")
    return _ON[value.lower()]


def _glob(pattern: str, tag: str) -> bool:
    """Fluent Bit's Match: `*` stands for any run of characters, nothing else is special."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == tag
    if not tag.startswith(parts[0]) or not tag.endswith(parts[-1]):
        return False
    pos = len(parts[0])
    end = len(tag) - len(parts[-1])
    for part in parts[1:-1]:
        found = tag.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return pos <= end


def _matches(section: Section, tag: str) -> bool:
    regex = section.get("match_regex")
    if regex is not None:
        return _compile(regex, "Match_Regex").search(tag) is not None
    return _glob(section.get("match") or "", tag)


def _compile(pattern: str, what: str) -> Any:
    try:
        return compile_pattern(pattern)
    except re2.error as err:
        detail = err.args[0].decode("utf-8", "replace") if err.args and isinstance(
            err.args[0], bytes) else str(err)
        raise ConfigError(f"{what} '{pattern[:64]}' is not a regular expression fargo can "
                          f"run (RE2 syntax): {detail}") from None


def tag_of(pod_ns: str, pod: str, container: str, container_id: str) -> str:
    """The tag Fargate's tail input gives a container's log file."""
    return f"kube.var.log.containers.{pod}_{pod_ns}_{container}-{container_id}.log"


def resolve(data: dict[str, str] | None, *, task_id: str, pod_ns: str, pod: str,
            containers: list[str]) -> Logging:
    """The pod's logging from the ConfigMap's data (None: there is none)."""
    if data is None:
        return Logging([], NOT_FOUND)
    try:
        return Logging(_routes(data, task_id, pod_ns, pod, containers), ENABLED)
    except ConfigError as err:
        return Logging([], INVALID, f"Disabled logging for pod due to invalid configmap. {err}. "
                                    "Please fix the logging configmap")


def _routes(data: dict[str, str], task_id: str, pod_ns: str, pod: str,
            containers: list[str]) -> list[LogRoute]:
    if sum(len(k) + len(v) for k, v in data.items()) > MAX_CHARS:
        raise ConfigError(f"the ConfigMap exceeds {MAX_CHARS} characters")
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"{key} is not a supported key of the logging ConfigMap")
    if _ON.get(str(data.get("flb_log_cw", "false")).lower(), False):
        raise ConfigError("flb_log_cw (the log router's own logs in CloudWatch) is not "
                          "supported by fargo")
    outputs = sections(data.get("output.conf", ""), "output.conf")
    filters = sections(data.get("filters.conf", ""), "filters.conf")
    parsers = {p.get("name") or "": p for p in sections(data.get("parsers.conf", ""),
                                                         "parsers.conf")}
    if not outputs:
        raise ConfigError("output.conf has no [OUTPUT] section")
    for kind, secs in (("OUTPUT", outputs), ("FILTER", filters),
                       ("PARSER", list(parsers.values()))):
        for sec in secs:
            if sec.kind != kind:
                raise ConfigError(f"[{sec.kind}] sections are not allowed where [{kind}] "
                                  "sections go")
    for out in outputs:
        _check_output(out)
    routes: list[LogRoute] = []
    for name in containers:
        tag = tag_of(pod_ns, pod, name, f"{task_id}-{name}")
        steps = [step for f in filters if _matches(f, tag) for step in _steps(f, parsers)]
        for out in (o for o in outputs if _matches(o, tag)):
            n = sum(1 for r in routes if r.container == name)
            routes.append(LogRoute(
                container=name, source=f"{task_id}/{name}" + (f"/{n}" if n else ""),
                region=out.get("region") or "", group=out.get("log_group_name") or "",
                stream=out.get("log_stream_name") or (out.get("log_stream_prefix") or "") + tag,
                create_group=_flag(out, "auto_create_group", False), router=True,
                filters=steps, log_key=out.get("log_key") or None))
    return routes


def _check_output(out: Section) -> None:
    name = (out.get("name") or "").lower()
    if name not in EKS_OUTPUTS:
        raise ConfigError(f"{name or '(no Name)'} is not a supported output plugin")
    if name not in ("cloudwatch_logs", "cloudwatch"):
        raise ConfigError(f"the output plugin {name} is not supported by fargo (it runs "
                          "cloudwatch_logs)")
    for key, _ in out.entries:
        if key not in _OUTPUT_KEYS:
            raise ConfigError(f"the {name} option '{key}' is not supported by fargo")
    for key in ("region", "log_group_name"):
        if not out.get(key):
            raise ConfigError(f"the {name} output needs '{key}'")
    stream, prefix = out.get("log_stream_name"), out.get("log_stream_prefix")
    if stream and prefix:
        raise ConfigError(f"the {name} output takes log_stream_name or log_stream_prefix, "
                          "not both")
    if not stream and not prefix:
        raise ConfigError(f"the {name} output needs log_stream_name or log_stream_prefix")
    for key in ("log_stream_name", "log_group_name"):
        if "$" in (out.get(key) or ""):
            raise ConfigError(f"templates in {key} are not supported by fargo")
    if out.get("match") is None and out.get("match_regex") is None:
        raise ConfigError(f"the {name} output needs Match")
    _flag(out, "auto_create_group", False)


def _steps(f: Section, parsers: dict[str, Section]) -> list[FilterStep]:
    name = (f.get("name") or "").lower()
    if name not in EKS_FILTERS:
        raise ConfigError(f"{name or '(no Name)'} is not a supported filter")
    if name not in ("grep", "parser"):
        raise ConfigError(f"the filter {name} is not supported by fargo (it runs grep and "
                          "parser)")
    if f.get("match") is None and f.get("match_regex") is None:
        raise ConfigError(f"the {name} filter needs Match")
    steps: list[FilterStep] = []
    if name == "grep":
        for key, value in f.entries:
            if key in ("name", "match", "match_regex"):
                continue
            if key not in ("regex", "exclude"):
                raise ConfigError(f"the grep option '{key}' is not supported by fargo")
            field_name, _, pattern = value.partition(" ")
            pattern = pattern.strip()
            if not pattern or field_name.startswith("$"):
                raise ConfigError(f"grep {key} '{value[:64]}' is not KEY REGEX with a plain key")
            _compile(pattern, f"grep {key}")
            steps.append(FilterStep("grep" if key == "regex" else "exclude", field_name,
                                    pattern))
        return steps
    for key, _ in f.entries:
        if key not in ("name", "match", "match_regex", "key_name", "parser", "reserve_data",
                       "preserve_key"):
            raise ConfigError(f"the parser filter option '{key}' is not supported by fargo")
    names = f.all("parser")
    if len(names) != 1:
        raise ConfigError("a parser filter takes one Parser here (fargo runs no fallbacks)")
    parser = parsers.get(names[0])
    if parser is None:
        raise ConfigError(f"the parser {names[0]} is not defined in parsers.conf")
    key_name = f.get("key_name")
    if not key_name:
        raise ConfigError("the parser filter needs Key_Name")
    return [_parser_step(parser, key_name, _flag(f, "reserve_data", False),
                         _flag(f, "preserve_key", False))]


def _parser_step(p: Section, key: str, reserve: bool, preserve: bool) -> FilterStep:
    for k, _ in p.entries:
        if k not in ("name", "format", "regex", "time_key", "time_format", "time_keep"):
            raise ConfigError(f"the parser option '{k}' is not supported by fargo")
    fmt = (p.get("format") or "").lower()
    if fmt not in ("regex", "json"):
        raise ConfigError(f"the parser format '{fmt}' is not supported by fargo (it runs "
                          "regex and json)")
    pattern = p.get("regex") or ""
    if fmt == "regex":
        if not pattern:
            raise ConfigError(f"the parser {p.get('name')} needs a Regex")
        _compile(pattern, f"the parser {p.get('name')}'s Regex")
    return FilterStep("parser", key, pattern, format=fmt, time_key=p.get("time_key"),
                      time_format=p.get("time_format"), time_keep=_flag(p, "time_keep", False),
                      reserve_data=reserve, preserve_key=preserve)
