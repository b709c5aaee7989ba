"""Job spec: TOML -> frozen dataclasses. Every error names the file and the key.

Validation happens here, once; the rest of the code trusts these types.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tomllib
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args

from pipeline.emulator.config import knob_of, value_type
from pipeline.emulator.config import knobs as emulator_knobs
from pipeline.errors import SpecError

# The options that take one of a few values: each type is the one list of its values (the tuples below,
# read from the types, are what the spec checks and its errors name, in this order).
EndpointKind = Literal["embeddings", "chat", "completions", "transcription", "translation", "images", "speech",
                       "responses"]
Provider = Literal["azure", "openai", "emulator"]  # OpenAI-compatible servers are "openai" with a base_url
AuthMode = Literal["api-key", "entra", "none"]
ApiStyle = Literal["classic", "v1"]  # azure: classic deployment routes or the v1 API
Mode = Literal["online", "batch"]  # batch: the service's Batch API, half price, 24 h window
Fallback = Literal["resubmit", "online"]  # batch mode: what becomes of lines of expired or failed batches
Sidecar = Literal["txt", "srt", "vtt", "json"]

ENDPOINTS: tuple[EndpointKind, ...] = get_args(EndpointKind)
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
AUTH_MODES: tuple[AuthMode, ...] = get_args(AuthMode)
API_STYLES: tuple[ApiStyle, ...] = get_args(ApiStyle)
MODES: tuple[Mode, ...] = get_args(Mode)
FALLBACKS: tuple[Fallback, ...] = get_args(Fallback)
BATCH_ENDPOINTS: tuple[EndpointKind, ...] = ("chat", "embeddings", "completions", "responses")
SIDECARS: tuple[Sidecar, ...] = get_args(Sidecar)
SECRET_KEYS = ("api_key", "apikey", "key", "token", "password", "secret", "client_secret")
DEFAULT_API_VERSION = "2024-10-21"


@dataclass(frozen=True)
class InputSpec:
    path: Path
    id: str = "id"
    text: str | None = None  # embeddings / speech: column of text
    prompt: str | None = None  # chat / completions / images: column holding the prompt
    messages: str | None = None  # chat: column of [{role, content}]
    system: str | None = None  # chat: literal system message
    template: str | None = None  # chat/completions/images: "...{column}..."
    image: str | None = None  # chat vision: column of file paths or URLs
    file: str | None = None  # transcription from a table: column of file paths
    glob: str = "**/*"  # folders only
    uri: str | None = None  # an object in cloud storage (abfs://, az://, s3://, gs://); `path` is then not local

    @property
    def location(self) -> str:
        """Where the input is, for messages."""
        return self.uri or str(self.path)

    def is_folder(self) -> bool:
        """A folder of files: a local directory, or a cloud prefix (a cloud table is one .jsonl/.parquet object)."""
        if self.uri is not None:
            return not self.uri.lower().rstrip("/").endswith(CLOUD_TABLES)
        return self.path.is_dir()


@dataclass(frozen=True)
class OutputSpec:
    path: Path
    flush_rows: int = 1000
    flush_seconds: float = 10.0
    keep: tuple[str, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    uri: str | None = None  # a prefix in cloud storage (abfs://, az://, s3://, gs://); `path` is then not local

    @property
    def location(self) -> str:
        """Where the output is, for messages."""
        return self.uri or str(self.path)


@dataclass(frozen=True)
class EmulatorOptions:
    """[service.emulator]: the knobs a job spec may set on the in-process emulator behind provider = "emulator".

    Each is the EmulatorConfig field of the same name (pipeline/emulator/config.py), which declares its type,
    default and bounds; this list only says which of them a spec takes.
    """

    rpm: int | None
    tpm: int | None
    window_s: float
    latency_ms: float
    error_rate: float
    drop_rate: float
    truncate_rate: float
    burst429_rate: float
    seed: int


def default_emulator_options() -> EmulatorOptions:
    """What a spec without [service.emulator] sets: every knob at the emulator's own default."""
    return _parse_emulator(_Section({}, "[service.emulator] ", ""))


@dataclass(frozen=True)
class ServiceSpec:
    provider: Provider = "emulator"
    base_url: str | None = None
    deployment: str | None = None
    model: str | None = None
    api_version: str | None = None
    api_style: ApiStyle = "classic"
    auth: AuthMode = "api-key"
    api_key_env: str | None = None
    managed_identity_client_id: str | None = None
    tenant_id: str | None = None
    organization: str | None = None
    project: str | None = None
    ca_bundle: Path | None = None
    emulator: EmulatorOptions = field(default_factory=default_emulator_options)
    mode: Mode = "online"
    poll_interval_s: float = 60.0  # batch mode: how often to poll a batch's status
    fallback: Fallback = "resubmit"
    deployments: tuple[DeploymentSpec, ...] = ()  # [[service.deployments]]: several quotas for one job

    @property
    def model_name(self) -> str:
        """The deployment (azure) or model (openai) the requests go to."""
        return self.deployment or self.model or ""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of several: its own service settings and quota."""

    name: str
    service: ServiceSpec
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class LimitsSpec:
    concurrency: int = 16
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_attempts: int = 6
    schema_attempts: int = 2  # attempts for an answer that misses the output schema (json_schema answers)
    timeout_s: float = 60.0
    batch_size: int = 256  # embeddings: inputs per request (<= 2048)
    batch_tokens: int = 32_000  # embeddings: estimated tokens per request
    max_retry_wait_s: float = 60.0  # the longest wait for one request, and for a 429's hold of all of them
    max_outage_s: float = 30.0  # no answer (or only 5xx) for this long stops the run, resumable; 0: never
    max_rows: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_answer_bytes: int | None = None  # None: the route's default (client/transport.py ANSWER_CAPS)


@dataclass(frozen=True)
class AudioSpec:
    """[audio]: how transcription and translation treat recordings (every key optional)."""

    max_chunk_seconds: float | None = None  # None: what the model accepts (every current model: 1380 s)
    compress: bool = True  # re-encode an upload when that makes it much smaller (Ogg/Opus, 16 kHz mono)


@dataclass(frozen=True)
class PricingSpec:
    input_per_1m: float | None = None
    output_per_1m: float | None = None
    per_image: float | None = None
    per_audio_minute: float | None = None
    cached_input_per_1m: float | None = None  # input tokens read from the prompt cache (default: the model's)


@dataclass(frozen=True)
class JobSpec:
    name: str
    endpoint: EndpointKind
    input: InputSpec
    output: OutputSpec
    service: ServiceSpec
    limits: LimitsSpec
    params: dict[str, Any]
    pricing: PricingSpec
    source_file: Path | None = None
    audio: AudioSpec = field(default_factory=AudioSpec)

    def deployments(self) -> list[DeploymentSpec]:
        """Where requests go: the [[service.deployments]] entries, or [service] itself as the only one."""
        if self.service.deployments:
            return [DeploymentSpec(d.name, d.service, d.requests_per_minute or self.limits.requests_per_minute,
                                   d.tokens_per_minute or self.limits.tokens_per_minute)
                    for d in self.service.deployments]
        return [DeploymentSpec(self.service.model_name or "default", self.service, self.limits.requests_per_minute,
                               self.limits.tokens_per_minute)]

    def fingerprint(self) -> str:
        """Hash of what changes results: a changed fingerprint makes resume refuse."""
        return hashlib.sha256(json.dumps(self.fingerprint_fields(), sort_keys=True).encode()).hexdigest()[:16]

    def fingerprint_fields(self) -> dict[str, Any]:
        i = self.input
        mapping = {
            "id": i.id, "text": i.text, "prompt": i.prompt, "messages": i.messages,
            "system": i.system, "template": i.template, "image": i.image, "file": i.file,
        }
        return {
            "endpoint": self.endpoint,
            "provider": self.service.provider,
            "model": self.service.model_name,
            "params": self.params,
            "input": mapping,
        }


# --------------------------------------------------------------------------- parsing


class _Section:
    """A TOML table being read: tracks which keys were used so leftovers are errors."""

    def __init__(self, data: dict[str, Any], where: str, source: str) -> None:
        self.data = dict(data)
        self.where = where
        self.source = source

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{self.source}: {self.where}{key}: {problem}")

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data.pop(key)
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise self.error(key, f"expected a number, got {value!r}")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise self.error(key, f"expected {_type_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def take_str(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> Any:
        value = self.take(key, str, default)
        if value is not None and choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def take_positive(self, key: str, kind: type, default: Any = None, minimum: float = 1) -> Any:
        value = self.take(key, kind, default)
        if value is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value!r}")
        return value

    def take_str_list(self, key: str) -> tuple[str, ...]:
        value = self.take(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.error(key, "expected a list of strings")
        return tuple(value)

    def sub(self, key: str) -> _Section:
        parent = self.where.strip("[] ")
        table = f"{parent}.{key}" if parent else key
        return _Section(self.take(key, dict, {}), f"[{table}] ", self.source)

    def finish(self) -> None:
        for key in self.data:
            raise self.error(key, "unknown key (check the spelling; see the README's spec reference)")


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, path: str, source: str, env: dict[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recursively."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else k, source, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path, source, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise SpecError(f"{source}: {path}: environment variable {name} is not set; export it or "
                        f"write ${{{name}:-default}}")

    return _ENV_REF.sub(replace, value)


def _refuse_literal_secrets(data: dict[str, Any], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        if isinstance(value, dict) and key != "params":
            _refuse_literal_secrets(value, source, f"{where}.")
        elif key.lower() in SECRET_KEYS and isinstance(value, str):
            raise SpecError(
                f"{source}: {where}: a literal secret in a job spec is refused; put the key in the "
                "environment (AZURE_OPENAI_API_KEY or OPENAI_API_KEY) or name its variable with "
                "api_key_env = \"NAME\"")


def load_spec(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> JobSpec:
    """Read and validate a job spec. Raises SpecError with a one-line message."""
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{source}: no such job spec file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{source}: cannot read the job spec: {exc}") from None
    return parse_spec(raw, source, env)


def parse_spec(raw: dict[str, Any], source: Path, env: dict[str, str] | None = None) -> JobSpec:
    """Validate an already-decoded TOML document (relative paths resolve against its folder)."""
    src = str(source)
    _refuse_literal_secrets(raw, src)
    data = _expand_env(raw, "", src, dict(os.environ) if env is None else env)
    top = _Section(data, "", src)
    name = top.take("name", str)
    if not name:
        raise top.error("name", "required: a short name for the job")
    endpoint = top.take_str("endpoint", None, ENDPOINTS)
    if endpoint is None:
        raise top.error("endpoint", f"required: one of {', '.join(ENDPOINTS)}")
    base = source.parent if source.name else Path(".")
    input_spec = _parse_input(top.sub("input"), endpoint, base)
    output_spec = _parse_output(top.sub("output"), endpoint, base, name)
    service = _parse_service(top.sub("service"), env if env is not None else dict(os.environ), base)
    timeout_given = "timeout_s" in (top.data.get("limits") or {})
    limits = _parse_limits(top.sub("limits"), endpoint)
    if service.mode == "batch" and endpoint not in BATCH_ENDPOINTS:
        raise SpecError(f"{src}: [service] mode: the Batch API does not take endpoint = \"{endpoint}\"; "
                        f"batch mode supports {', '.join(BATCH_ENDPOINTS)}; use mode = \"online\"")
    _check_cloud(input_spec, output_spec, endpoint, service, src)
    params = _with_schema_file(top.take("params", dict, {}), endpoint, base, top)
    _check_params(params, endpoint, top)
    if params.get("service_tier") == "flex" and not timeout_given:
        limits = dataclasses.replace(limits, timeout_s=FLEX_TIMEOUT_S)
    pricing = _parse_pricing(top.sub("pricing"))
    audio = _parse_audio(top, endpoint)
    top.finish()
    return JobSpec(name, endpoint, input_spec, output_spec, service, limits, params, pricing, source, audio)


def _resolve(base: Path, value: str) -> Path:
    """Relative paths are taken from the working directory, else from the spec's folder."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    here = Path.cwd() / path
    return here if here.exists() or not (base / path).exists() else base / path


def _parse_input(sec: _Section, endpoint: str, base: Path) -> InputSpec:
    path = sec.take("path", str)
    if not path:
        raise sec.error("path", "required: the input file or folder")
    uri = _storage_uri(sec, path)
    spec = InputSpec(
        path=Path(uri) if uri else _resolve(base, path),
        id=sec.take("id", str, "id"),
        text=sec.take("text", str),
        prompt=sec.take("prompt", str),
        messages=sec.take("messages", str),
        system=sec.take("system", str),
        template=sec.take("template", str),
        image=sec.take("image", str),
        file=sec.take("file", str),
        glob=sec.take("glob", str, "**/*"),
        uri=uri,
    )
    sec.finish()
    _check_input_mapping(spec, endpoint, sec)
    return spec


def _check_input_mapping(spec: InputSpec, endpoint: str, sec: _Section) -> None:
    if endpoint in ("embeddings", "speech") and not spec.text:
        raise sec.error("text", f"required for endpoint = \"{endpoint}\": the column holding the text")
    if endpoint in ("chat", "responses") and not (spec.prompt or spec.messages or spec.template):
        raise sec.error("prompt", f"{endpoint} needs prompt = \"column\", messages = \"column\" "
                        "or template = \"...{column}...\"")
    if endpoint in ("completions", "images") and not (spec.prompt or spec.template):
        raise sec.error("prompt", f"{endpoint} needs prompt = \"column\" or template = \"...{{column}}...\"")
    if spec.messages and (spec.prompt or spec.template):
        raise sec.error("messages", "use either messages or prompt/template, not both")
    if spec.template:
        try:
            spec.template.format_map(_FieldProbe())
        except (ValueError, IndexError) as exc:
            raise sec.error("template", f"not a valid template ({exc}); use {{column}} placeholders "
                            "and {{ }} for literal braces") from None


class _FieldProbe(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _parse_output(sec: _Section, endpoint: str, base: Path, name: str) -> OutputSpec:
    path = sec.take("path", str) or f"out/{name}"
    uri = _storage_uri(sec, path)
    local = Path(path).expanduser() if Path(path).is_absolute() else Path.cwd() / path
    spec = OutputSpec(
        path=Path(uri) if uri else local,
        flush_rows=sec.take_positive("flush_rows", int, 1000),
        flush_seconds=sec.take_positive("flush_seconds", float, 10.0, minimum=0.05),
        keep=sec.take_str_list("keep"),
        sidecars=_take_sidecars(sec),
        uri=uri,
    )
    if spec.sidecars and endpoint not in ("transcription", "translation"):
        raise sec.error("sidecars", "sidecar files are written for transcription and translation only")
    sec.finish()
    return spec


def _take_sidecars(sec: _Section) -> tuple[Sidecar, ...]:
    sidecars: list[Sidecar] = []
    for name in sec.take_str_list("sidecars"):
        if not _is_sidecar(name):
            raise sec.error("sidecars", f"unknown sidecar {name!r}; choose from {', '.join(SIDECARS)}")
        sidecars.append(name)
    return tuple(sidecars)


def _is_sidecar(name: str) -> TypeGuard[Sidecar]:
    return name in SIDECARS


def _storage_uri(sec: _Section, value: str) -> str | None:
    """A cloud storage URI as written, or None for a local path."""
    from pipeline.storage import check_uri, is_uri  # here: reading a spec should not load pyarrow

    if not is_uri(value):
        return None
    problem = check_uri(value)
    if problem:
        raise sec.error("path", problem)
    return value


CLOUD_TABLES = (".jsonl", ".jsonl.gz", ".ndjson", ".json.gz", ".ndjson.gz", ".parquet", ".pq")


def _check_cloud(inp: InputSpec, out: OutputSpec, endpoint: str, service: ServiceSpec, src: str) -> None:
    """What cloud storage does not take: folders for endpoints other than audio, audio paths in a cloud table,
    batch state out. Audio folders in and files (images, audio, sidecars) out are read and written as objects."""
    audio = endpoint in ("transcription", "translation")
    if inp.uri and inp.is_folder() and not audio:
        raise SpecError(f"{src}: [input] path: a cloud input must be one .jsonl, .jsonl.gz or .parquet object for "
                        f"{endpoint}; folders of files in cloud storage are read by transcription and translation "
                        f"only (got {inp.uri})")
    if inp.uri and not inp.is_folder() and audio:
        raise SpecError(f"{src}: [input] path: {endpoint} from a cloud table is not supported; point it at the "
                        "folder (prefix) holding the audio files, or use a local table")
    if out.uri and service.mode == "batch":
        raise SpecError(f"{src}: [output] path: batch mode keeps its batch files in a local output folder; "
                        "use a local [output] path or mode = \"online\"")


def _parse_service(sec: _Section, env: dict[str, str], base: Path) -> ServiceSpec:
    provider = sec.take_str("provider", "emulator", PROVIDERS)
    emu = _parse_emulator(sec.sub("emulator"))
    ca = sec.take("ca_bundle", str)
    spec = ServiceSpec(
        provider=provider,
        base_url=sec.take("base_url", str),
        deployment=sec.take("deployment", str),
        model=sec.take("model", str),
        api_version=sec.take("api_version", str),
        api_style=sec.take_str("api_style", "classic", API_STYLES),
        auth=sec.take_str("auth", "none" if provider == "emulator" else "api-key", AUTH_MODES),
        api_key_env=sec.take("api_key_env", str),
        managed_identity_client_id=sec.take("managed_identity_client_id", str),
        tenant_id=sec.take("tenant_id", str),
        organization=sec.take("organization", str),
        project=sec.take("project", str),
        ca_bundle=_resolve(base, ca) if ca else None,
        emulator=emu,
        mode=sec.take_str("mode", "online", MODES),
        poll_interval_s=sec.take_positive("poll_interval_s", float, 60.0, minimum=0.01),
        fallback=sec.take_str("fallback", "resubmit", FALLBACKS),
    )
    entries = sec.take("deployments", list, [])
    sec.finish()
    if entries and spec.mode == "batch":
        raise sec.error("deployments", "several deployments are for online mode; use one in batch mode")
    deployments = tuple(_parse_deployment(entry, index, spec, sec, env) for index, entry in enumerate(entries))
    names = [d.name for d in deployments]
    if len(set(names)) != len(names):
        raise sec.error("deployments", f"names must be unique; got {', '.join(names)}")
    if deployments:
        spec = replace(spec, base_url=spec.base_url or deployments[0].service.base_url,
                       deployment=spec.deployment or deployments[0].service.deployment,
                       model=spec.model or deployments[0].service.model)
    return replace(_complete_service(spec, sec, env), deployments=deployments)


DEPLOYMENT_KEYS = ("provider", "base_url", "deployment", "model", "api_version", "api_style", "auth", "api_key_env",
                   "managed_identity_client_id", "tenant_id")


def _parse_deployment(entry: Any, index: int, parent: ServiceSpec, sec: _Section,
                      env: dict[str, str]) -> DeploymentSpec:
    """A [[service.deployments]] entry: what it leaves out comes from [service]."""
    if not isinstance(entry, dict):
        raise sec.error(f"deployments[{index}]", "each entry must be a table")
    part = _Section(entry, f"[service.deployments][{index}] ", sec.source)
    overrides: dict[str, Any] = {}
    for key in DEPLOYMENT_KEYS:
        choices = {"provider": PROVIDERS, "api_style": API_STYLES, "auth": AUTH_MODES}.get(key, ())
        value = part.take_str(key, None, choices)
        if value is not None:
            overrides[key] = value
    name = part.take("name", str) or overrides.get("deployment") or overrides.get("model") or f"deployment-{index}"
    rpm = part.take_positive("requests_per_minute", int)
    tpm = part.take_positive("tokens_per_minute", int)
    part.finish()
    service = _complete_service(replace(parent, **overrides), part, env)
    return DeploymentSpec(name, service, rpm, tpm)


def _complete_service(spec: ServiceSpec, sec: _Section, env: dict[str, str]) -> ServiceSpec:
    """Fill defaults from the openai package's environment variables; check URL shape."""
    if spec.provider == "azure":
        base_url = spec.base_url or env.get("AZURE_OPENAI_ENDPOINT")
        if not base_url:
            raise sec.error("base_url", "required for azure: set base_url or AZURE_OPENAI_ENDPOINT")
        version = spec.api_version or env.get("OPENAI_API_VERSION")
        if spec.api_style == "classic" and not version:
            raise sec.error("api_version", f"required for azure classic routes (e.g. \"{DEFAULT_API_VERSION}\"); "
                            "or set api_style = \"v1\"")
        if not spec.deployment:
            raise sec.error("deployment", "required for azure: the deployment name")
        spec = replace(spec, base_url=base_url, api_version=version)
    elif spec.provider == "openai":
        base_url = spec.base_url or env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        if not (spec.model or spec.deployment):
            raise sec.error("model", "required for openai: the model name")
        spec = replace(spec, base_url=base_url, model=spec.model or spec.deployment,
                       organization=spec.organization or env.get("OPENAI_ORG_ID"),
                       project=spec.project or env.get("OPENAI_PROJECT_ID"))
    else:
        if not (spec.deployment or spec.model):
            spec = replace(spec, deployment="emulated")
        spec = replace(spec, api_version=spec.api_version or DEFAULT_API_VERSION)
    if spec.base_url and not re.match(r"^https?://[^/\s]+", spec.base_url):
        raise sec.error("base_url", f"not an http(s) URL: {spec.base_url!r}")
    if spec.provider == "azure" and spec.base_url and "/openai/deployments/" in spec.base_url:
        raise sec.error("base_url", "give the resource endpoint (https://NAME.openai.azure.com), "
                        "not a deployment URL; the deployment goes in deployment = \"...\"")
    return spec


def _parse_emulator(sec: _Section) -> EmulatorOptions:
    knobs = emulator_knobs()
    opts = EmulatorOptions(**{f.name: _take_knob(sec, knobs[f.name]) for f in fields(EmulatorOptions)})
    sec.finish()
    return opts


def _take_knob(sec: _Section, config_field: Field[Any]) -> Any:
    """One [service.emulator] key, checked by what its EmulatorConfig field declares."""
    knob, kind = knob_of(config_field), value_type(config_field)
    default: Any = config_field.default
    assert kind is not None and kind is not set, f"a job spec cannot set {config_field.name}"  # TOML: no sets
    if knob.probability:
        return _rate(sec, config_field.name, default)
    if knob.minimum is not None:
        return sec.take_positive(config_field.name, kind, default, minimum=knob.minimum)
    return sec.take(config_field.name, kind, default)


def _rate(sec: _Section, key: str, default: float = 0.0) -> float:
    value = sec.take(key, float, default)
    if not 0.0 <= value <= 1.0:
        raise sec.error(key, f"a probability between 0 and 1, got {value!r}")
    return value


def _parse_limits(sec: _Section, endpoint: str) -> LimitsSpec:
    spec = LimitsSpec(
        concurrency=sec.take_positive("concurrency", int, 16),
        requests_per_minute=sec.take_positive("requests_per_minute", int),
        tokens_per_minute=sec.take_positive("tokens_per_minute", int),
        max_attempts=sec.take_positive("max_attempts", int, 6),
        schema_attempts=sec.take_positive("schema_attempts", int, 2),
        timeout_s=sec.take_positive("timeout_s", float, 60.0, minimum=0.01),
        batch_size=sec.take_positive("batch_size", int, 256),
        batch_tokens=sec.take_positive("batch_tokens", int, 32_000),
        max_retry_wait_s=sec.take_positive("max_retry_wait_s", float, 60.0, minimum=0),
        max_outage_s=sec.take_positive("max_outage_s", float, 30.0, minimum=0),
        max_rows=sec.take_positive("max_rows", int),
        max_tokens=sec.take_positive("max_tokens", int),
        max_cost=sec.take_positive("max_cost", float, minimum=0),
        max_answer_bytes=sec.take_positive("max_answer_bytes", int, minimum=1024),
    )
    if spec.batch_size > 2048:
        raise sec.error("batch_size", f"at most 2048 inputs per embeddings request, got {spec.batch_size}")
    if spec.concurrency > 4096:
        raise sec.error("concurrency", f"at most 4096, got {spec.concurrency}")
    sec.finish()
    return spec


# Flex processing answers slowly when capacity is short; OpenAI suggests waiting up to 15 minutes for one.
FLEX_TIMEOUT_S = 900.0


def json_schema_format(params: dict[str, Any], endpoint: str) -> tuple[str, dict[str, Any] | None]:
    """Where a json_schema answer format sits in [params] (its key, for messages) and the object holding its
    name and schema; None when the answer format is not json_schema. Chat: response_format.json_schema;
    Responses: text.format."""
    if endpoint == "responses":
        text = params.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
        found = fmt if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
        return "params.text.format", found
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        inner = fmt.get("json_schema")
        return "params.response_format.json_schema", inner if isinstance(inner, dict) else {}
    return "params.response_format", None


def _with_schema_file(params: dict[str, Any], endpoint: str, base: Path, top: _Section) -> dict[str, Any]:
    """A json_schema answer format may name its schema in a file (`schema_file = "ticket.schema.json"`, from
    the spec's folder): read it here, so that the request carries the schema itself."""
    key, holder = json_schema_format(params, endpoint)
    if holder is None or "schema_file" not in holder:
        return params
    if "schema" in holder:
        raise top.error(f"{key}.schema_file", "give the schema inline (schema) or in a file (schema_file), not both")
    path = _resolve(base, str(holder.pop("schema_file")))
    try:
        holder["schema"] = json.loads(path.read_text())
    except OSError as exc:
        raise top.error(f"{key}.schema_file", f"cannot read {path} ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise top.error(f"{key}.schema_file", f"{path} is not JSON ({exc})") from None
    return params


# The Responses API's own `prompt` (a stored prompt template) is a parameter like any other there.
RESPONSES_RESERVED = frozenset({"input", "model", "instructions"})  # instructions: [input] system


def _check_params(params: dict[str, Any], endpoint: str, top: _Section) -> None:
    reserved = set(RESPONSES_RESERVED) if endpoint == "responses" else {"input", "messages", "prompt", "file", "model"}
    if endpoint in ("transcription", "translation"):
        reserved.discard("prompt")  # Whisper's prompt is one hint for the whole job, not a row's text
    for key in params:
        if key in reserved:
            raise top.error(f"params.{key}", "is filled from the input rows / [service]; remove it from [params]")
    if endpoint == "embeddings" and "encoding_format" in params:
        raise top.error("params.encoding_format", "is always base64 (decoded to float32); remove it")
    if endpoint == "responses" and params.get("background"):
        raise top.error("params.background", "background responses must be polled for, which jobs do not do; "
                        "remove it (batch mode, mode = \"batch\", is the way to run a job in the background)")
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens", "n", "dimensions"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise top.error(f"params.{key}", f"must be a positive integer, got {value!r}")
    temperature = params.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        raise top.error("params.temperature", f"must be a number from 0 to 2, got {temperature!r}")


def _parse_audio(top: _Section, endpoint: str) -> AudioSpec:
    if "audio" in top.data and endpoint not in ("transcription", "translation"):
        raise top.error("audio", f"is read by transcription and translation only, not endpoint = \"{endpoint}\"; "
                        "remove the section")
    sec = top.sub("audio")
    spec = AudioSpec(max_chunk_seconds=sec.take_positive("max_chunk_seconds", float, minimum=10),
                     compress=sec.take("compress", bool, True))
    sec.finish()
    return spec


def _parse_pricing(sec: _Section) -> PricingSpec:
    spec = PricingSpec(**{f.name: sec.take_positive(f.name, float, minimum=0) for f in fields(PricingSpec)})
    sec.finish()
    return spec
