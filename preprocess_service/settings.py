"""All configuration, read once from the environment (prefix ``OCR_``).

The Helm chart's values map onto these one to one. Nothing else in the package reads the
environment.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .model_sets import DEFAULT_MODEL_SET, MODEL_SETS, ModelFolders

PROJECT_ROOT = Path(__file__).resolve().parent.parent

class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OCR_", extra="ignore", frozen=True)

    # --- models and backend ---
    backend: Literal["onnxruntime", "triton", "openvino"] = "onnxruntime"
    model_repository: Path = PROJECT_ROOT / "model_repository"
    model_set: str = Field(default=DEFAULT_MODEL_SET, json_schema_extra={"enum": sorted(MODEL_SETS)})  # type: ignore[dict-item]
    det_model: str | None = None  # overrides the set's detection folder
    rec_model: str | None = None
    cls_model: str | None = None
    use_textline_orientation: bool | None = None  # None: the model set's default

    # onnxruntime (embedded backend)
    ort_providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    ort_intra_op_threads: int = Field(default=0, ge=0, description="threads per model run (0: cores / workers)")
    ort_inference_workers: int = Field(
        default=0, ge=0, le=64, description="model runs in parallel (0: one per core, at most 4)"
    )
    ort_det_intra_op_threads: int = Field(
        default=0, ge=0, description="threads of a detection run (0: all usable cores: one big run per image)"
    )
    ort_det_busy_intra_op_threads: int = Field(
        default=0, ge=0, description="threads of a detection run that starts while other model runs are in "
        "progress (0: OCR_ORT_INTRA_OP_THREADS's share of the cores)"
    )
    ort_allow_cpu_fallback: bool = Field(
        default=False, description="serve on CPU when the GPU provider asked for is not there (else: refuse to start)"
    )
    ort_graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    ort_cpu_mem_arena: bool = Field(
        default=False, description="onnxruntime's CPU memory arena (off: RSS follows the work, no measured speed cost)"
    )
    ort_execution_mode: Literal["sequential", "parallel"] = "sequential"
    ort_inter_op_threads: int = Field(default=1, ge=0, description="threads across graph branches (parallel mode)")

    # Triton backend
    triton_url: str = Field(
        default="127.0.0.1:8000", description="Triton's HTTP endpoint, host:port (several: comma-separated)")
    triton_balance: Literal["off", "dns"] = Field(
        default="off", description="off: each address used as given (a ClusterIP Service: kube-proxy picks a pod "
        "per connection, kept-alive connections stay on it); dns: the service resolves each host every "
        "OCR_TRITON_RESOLVE_S (a headless Service: every ready pod) and sends each call to the least busy address")
    triton_resolve_s: float = Field(
        default=5.0, gt=0, le=300, description="how often the Triton host is resolved again with OCR_TRITON_BALANCE=dns")
    triton_timeout_s: float = Field(default=30.0, gt=0, description="deadline of one inference call")
    triton_retries: int = Field(default=1, ge=0, le=5, description="retries after a connection failure")
    triton_startup_timeout_s: float = Field(
        default=300.0, ge=0, description="one attempt to find the models on Triton waits this long (then retried; "
        "the API listens and answers 503 backend_unavailable meanwhile)")
    backend_check_interval_s: float = Field(default=5.0, gt=0, description="health check of the backend (ocr_backend_up)")
    # --- GPU and Triton queue settings ---
    ort_cuda_cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        default="HEURISTIC", description="cuDNN convolution search of the CUDA provider (OCR shapes change "
        "with every page: EXHAUSTIVE re-benchmarks each new shape, hundreds of ms)")
    ort_cuda_arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] = Field(
        default="kSameAsRequested", description="how the CUDA memory arena grows")
    ort_cuda_gpu_mem_limit_mib: int = Field(default=0, ge=0, description="CUDA arena limit (0: none)")
    ort_cuda_do_copy_in_default_stream: bool = Field(
        default=True, description="CUDA copies on the compute stream (false: separate streams, may race)")
    # --- Triton system shared memory ---
    triton_shm: bool = Field(
        default=False, description="send tensors to Triton through system shared memory (/dev/shm) instead of "
        "the HTTP body; only for a Triton on the same host or in the same pod, sharing /dev/shm, as the same user")
    triton_shm_regions: int = Field(
        default=8, ge=1, le=256, description="shared-memory regions, one per model call at once (a call that "
        "finds none free goes over the network)")
    triton_shm_region_mib: int = Field(
        default=0, ge=0, le=1024, description="size of each region (0: a detection call at OCR_DET_LIMIT_SIDE_LEN "
        "fits, 7 bytes per pixel + 1 MiB: 8 MiB at 960); larger calls go over the network")
    # --- OpenVINO ---
    ov_device: str = Field(default="CPU", description="OpenVINO device the models are compiled for (CPU, GPU, AUTO...)")
    ov_performance_hint: Literal["LATENCY", "THROUGHPUT"] = Field(
        default="THROUGHPUT", description="OpenVINO performance hint of recognition and orientation: THROUGHPUT, "
        "several streams (runs at once) sharing the threads; LATENCY, one stream using them all")
    ov_det_performance_hint: Literal["LATENCY", "THROUGHPUT"] = Field(
        default="LATENCY", description="the same for detection (one big run per page)")
    ov_num_streams: int = Field(
        default=0, ge=0, le=64, description="OpenVINO streams of a THROUGHPUT model (0: the plugin's choice)")
    ov_inference_threads: int = Field(
        default=0, ge=0, description="OpenVINO CPU threads per model (0: the usable cores, cgroup limit included)")
    ov_inference_precision: Literal["f32", "bf16", "f16", "auto"] = Field(
        default="f32", description="OpenVINO inference precision (auto: the plugin's, bf16 on CPUs that have it; "
        "f32 reads exactly what onnxruntime reads)")
    ov_runtime_cache_capacity: int = Field(
        default=0, ge=0, description="OpenVINO CPU plugin's cache of kernels per input shape (0: off; OCR shapes "
        "change with every page and crop, and the cache held GiBs for no measured speed-up)")
    ov_cpu_pinning: bool = Field(
        default=False, description="pin OpenVINO's threads to cores (only with exclusive cores: a cgroup CPU limit "
        "alone shares the node's cores, and every pod would pin to the same ones)")
    ov_cache_dir: Path | None = Field(default=None, description="OpenVINO compiled-model cache folder (None: no cache)")

    malloc_mmap_threshold_kib: int = Field(
        default=0, ge=0, le=32768,
        description="glibc: blocks over this go to mmap and back to the system on free (0: glibc's dynamic default)",
    )

    # --- pipeline defaults (per-request overridable) ---
    det_limit_side_len: int = Field(default=960, ge=32, le=8192, description="max side before detection")
    det_min_side_len: int = Field(default=64, ge=32, le=2048, description="smaller images are up-scaled to this")
    det_max_side_limit: int = Field(default=4000, ge=32, le=16384)
    det_thresh: float | None = None  # None: from the model's inference.yml
    det_box_thresh: float | None = None
    det_unclip_ratio: float | None = None
    det_max_candidates: int | None = None
    rec_batch_size: int = Field(default=2, ge=1, le=128, description="crops per recognition run (GPU: 8-16)")
    rec_width_multiple: int = Field(
        default=0, ge=0, le=3200,
        description="round recognition batch widths up to a multiple of this (0: off); equal shapes let "
        "Triton's dynamic batcher merge batches from different requests",
    )
    rec_min_width: int | None = Field(
        default=None, ge=0, le=3200,
        description="pad recognition batches to at least this width (None: the model's base width, 320)",
    )
    rec_score_thresh: float = Field(default=0.5, ge=0.0, le=1.0)

    # --- shape buckets and cross-request batching (docs/gpu.md) ---
    shape_buckets: Literal["auto", "on", "off"] = Field(
        default="auto", description="pad every model input onto a small fixed set of shapes (auto: on with "
        "Triton and with a GPU provider, off on the CPU, where padding is paid in compute; Triton needs "
        "equal shapes to batch, so it refuses off)")
    det_canvases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["320x320", "320x960", "640x960", "960x960"],
        description="detection canvases HxW (multiples of 32): each page is scaled as usual, then padded "
        "onto the smallest canvas it fits (or scaled down into the largest)")
    det_batch_sizes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1, 2], description="pages per detection run, padded up to one of these")
    rec_width_buckets: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [320, 640, 1280, 3200],
        description="recognition batch widths (px at model height); wider lines are squeezed into the last")
    rec_batch_sizes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1, 2, 4, 16],
        description="rows per recognition or orientation run, padded up to one of these (padding rows dropped)")
    batch_delay_us: int = Field(
        default=0, ge=0, le=100_000, description="cross-request batcher (embedded backend, with shape buckets): "
        "a model call waits up to this long for calls of the same shape from other requests, merged up to the "
        "largest batch size (0: off, each request runs alone)")
    warmup_buckets: Literal["auto", "on", "off"] = Field(
        default="auto", description="run every shape once at start, before the pod is ready (auto: on with a "
        "GPU provider of the embedded backend, where a new shape costs a cuDNN plan)")
    cls_thresh: float = Field(default=0.9, ge=0.0, le=1.0)

    # --- backpressure, deadlines, shutdown ---
    max_in_flight: int = Field(default=0, ge=0, le=1024, description="OCR jobs at once (0: 2 x usable cores)")
    max_queue: int = Field(default=0, ge=0, le=10000, description="jobs waiting for a slot (0: 4 x max_in_flight)")
    queue_timeout_s: float = Field(default=10.0, gt=0, description="longest wait for a slot before 503")
    request_timeout_s: float = Field(default=60.0, gt=0, description="deadline of one OCR request (wait + work)")
    rate_limit_per_minute: int = Field(default=0, ge=0, description="per-token limit (0: off); beyond it 429")
    rate_limit_burst: int = Field(default=0, ge=0, description="per-token burst (0: a sixth of a minute's rate, at least 1)")
    shutdown_delay_s: float = Field(default=0.0, ge=0, description="on SIGTERM: readiness false this long first")
    shutdown_grace_s: float = Field(default=30.0, ge=0, description="then in-flight requests get this long")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="CORS off when empty")
    url_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="hosts (host: its scheme's default port only, or host:port) the PaddleX "
        "route may fetch file URLs from; empty: off"
    )
    visualize_font: Path | None = Field(
        default=None, description="font file the visualisations draw text with (empty: the first CJK font found)")
    url_private_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="networks (CIDR) a listed host may resolve into although they are not "
        "public (an in-cluster object store); other private, loopback and link-local addresses are refused unless "
        "the allow-list names the address itself")

    # --- memory budget (admission by cost: see budget.py) ---
    memory_limit_mib: int = Field(
        default=0, ge=0, description="the container's memory limit (0: the cgroup's limit, else 2048); "
        "the chart sets it from the same value as resources.limits.memory")
    memory_budget_fraction: float = Field(
        default=0.75, gt=0.1, le=1.0, description="the share of the limit the process may reach (RSS)")
    malloc_arena_max: int = Field(
        default=2, ge=0, le=64, description="glibc malloc arenas (0: glibc's default, 8 per core); few arenas keep "
        "the resident set near one page's peak instead of one per worker thread")
    malloc_trim_over_mib: int = Field(
        default=32, ge=0, description="after a request that reserved more than this, hand freed memory back "
        "to the system (glibc malloc_trim; 0: never)")

    # --- the HTTP server's own bounds (uvicorn, h11) ---
    max_header_bytes: int = Field(default=16384, ge=1024, le=1048576, description="request line + headers")
    header_timeout_s: float = Field(default=10.0, gt=0, description="a new request's headers must arrive within this")
    body_idle_timeout_s: float = Field(default=10.0, gt=0, description="longest pause between body chunks (408)")
    body_timeout_s: float = Field(default=30.0, gt=0, description="the whole body must arrive within this (408)")
    keep_alive_s: int = Field(default=5, ge=1, le=300, description="idle keep-alive connections are closed after this")
    max_connections: int = Field(
        default=0, ge=0, le=100000, description="open connections at once, beyond them 503 (0: 8 x in-flight + queue)")

    # --- API and limits ---
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_tokens_file: Path | None = None
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1, le=400_000_000,
                                  description="pixels per image or rendered page (Pillow's own check stays at the top)")
    max_pdf_pages: int = Field(default=10, ge=1, le=1000, description="pages per PDF")
    pdf_workers: int = Field(default=2, ge=1, le=16,
                             description="PDF renderer processes per server process (PDFs opened or rendered at once)")
    pdf_page_timeout_s: float = Field(default=15.0, gt=0, le=600,
                                      description="a PDF page renders within this, or its renderer is killed (422)")
    max_images_per_request: int = Field(default=16, ge=1, le=1000, description="images (pages) per request")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = Field(default=1, ge=1, le=64, description="server processes (metrics aggregate across them)")

    @field_validator("api_tokens", "ort_providers", "cors_origins", "url_allowed_hosts", "url_private_networks",
                     "det_canvases", "det_batch_sizes", "rec_width_buckets", "rec_batch_sizes", mode="before")
    @classmethod
    def _split_commas(cls, v):
        """Lists arrive from the environment as comma-separated strings."""
        if isinstance(v, str):
            return [item.strip() for item in v.split(",") if item.strip()]
        return v

    @field_validator("model_set")
    @classmethod
    def _known_model_set(cls, v: str) -> str:
        if v not in MODEL_SETS:
            raise ValueError(f"unknown model set {v!r}; choose one of {', '.join(sorted(MODEL_SETS))}")
        return v

    @field_validator("det_canvases")
    @classmethod
    def _canvases(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one detection canvas is needed")
        for item in v:
            h, sep, w = item.lower().partition("x")
            if not (sep and h.isdigit() and w.isdigit() and int(h) >= 32 and int(w) >= 32
                    and int(h) % 32 == 0 and int(w) % 32 == 0):
                raise ValueError(f"detection canvas {item!r} is not HxW with both sides multiples of 32 (>= 32)")
        return [item.lower() for item in v]

    @field_validator("url_private_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network (CIDR, e.g. 10.0.0.0/8)") from None
        return v

    @field_validator("det_batch_sizes", "rec_width_buckets", "rec_batch_sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError("needs at least one size, each >= 1")
        return sorted(set(v))

    @model_validator(mode="after")
    def _buckets_where_needed(self):
        if self.backend == "triton" and self.shape_buckets == "off":
            raise ValueError("OCR_SHAPE_BUCKETS=off with OCR_BACKEND=triton: Triton batches only equal shapes "
                             "(and a GPU plans per shape), so the Triton backend always pads onto buckets")
        if self.gpu_asked and MODEL_SETS[self.model_set].cpu_only and not (self.det_model and self.rec_model):
            raise ValueError(f"model set {self.model_set} is quantised for CPUs; with a GPU provider choose a "
                             "GPU set (ppocrv6_small, ppocrv6_small_fp16)")
        return self

    @model_validator(mode="after")
    def _shares_per_worker(self):
        """Pod-wide limits are split among the worker processes: each must get at least one."""
        for name, value in (("OCR_MAX_IN_FLIGHT", self.max_in_flight), ("OCR_MAX_QUEUE", self.max_queue)):
            if value and value < self.workers:
                raise ValueError(f"{name}={value} is split among OCR_WORKERS={self.workers} processes: each would "
                                 f"get none; set it to at least {self.workers} (or fewer workers)")
        return self

    @model_validator(mode="after")
    def _triton_addresses(self):
        from .backends.triton_endpoints import split_targets

        targets = split_targets(self.triton_url)  # ValueError: not host:port
        if self.triton_shm and (self.triton_balance != "off" or len(targets) > 1):
            raise ValueError("OCR_TRITON_SHM needs the one Triton in the pod: one OCR_TRITON_URL address and "
                             "OCR_TRITON_BALANCE=off")
        return self

    @model_validator(mode="after")
    def _need_a_token_source(self):
        if not self.api_tokens and self.api_tokens_file is None:
            raise ValueError(
                "no API token configured: set OCR_API_TOKENS (comma-separated) or OCR_API_TOKENS_FILE"
            )
        return self

    # --- derived ---
    @property
    def model_names(self) -> ModelFolders:
        """The model-repository folders in use: the set's, with any per-role override."""
        chosen = MODEL_SETS[self.model_set].folders()
        return {"det": self.det_model or chosen["det"], "rec": self.rec_model or chosen["rec"],
                "cls": self.cls_model or chosen["cls"]}

    @property
    def gpu_asked(self) -> bool:
        """The embedded backend's first provider is a GPU one (CUDA, TensorRT)."""
        return self.backend == "onnxruntime" and bool(self.ort_providers) and \
            self.ort_providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")

    @property
    def buckets_on(self) -> bool:
        """Model inputs padded onto fixed shapes (see ``shape_buckets``)."""
        if self.shape_buckets == "auto":
            return self.backend == "triton" or self.gpu_asked
        return self.shape_buckets == "on"

    @property
    def warmup_every_bucket(self) -> bool:
        if self.warmup_buckets == "auto":
            return self.buckets_on and self.gpu_asked
        return self.warmup_buckets == "on" and self.buckets_on

    @property
    def canvases(self) -> tuple[tuple[int, int], ...]:
        """Detection canvases as (H, W), smallest area first."""
        pairs = {(int(h), int(w)) for h, w in (c.split("x") for c in self.det_canvases)}
        return tuple(sorted(pairs, key=lambda p: (p[0] * p[1], p)))

    @property
    def orientation_default(self) -> bool:
        if self.use_textline_orientation is not None:
            return self.use_textline_orientation
        return MODEL_SETS[self.model_set].orientation_default

    # Limits are per pod. With OCR_WORKERS > 1 (not used by the chart, which runs one worker per
    # pod and scales by pods) each worker process takes its share, so that the pod's totals are
    # what the settings say; rate limits are per replica (and per worker share of it).
    @property
    def worker_cores(self) -> int:
        """The CPU share of one worker process: the pod's usable cores / workers."""
        return max(1, available_cores() // self.workers)

    @property
    def in_flight_limit(self) -> int:
        return max(1, (self.max_in_flight or 2 * available_cores()) // self.workers)

    @property
    def queue_limit(self) -> int:
        if self.max_queue:
            return self.max_queue // self.workers
        return 4 * self.in_flight_limit

    @property
    def rate_limit_per_worker(self) -> int:
        return math.ceil(self.rate_limit_per_minute / self.workers) if self.rate_limit_per_minute else 0

    @property
    def connection_limit(self) -> int:
        """Open connections per worker process (server.BoundedH11Protocol's ceiling)."""
        if self.max_connections:
            return max(1, self.max_connections // self.workers)
        return 8 * (self.in_flight_limit + self.queue_limit)

    @property
    def memory_limit_bytes(self) -> int:
        return (self.memory_limit_mib or cgroup_memory_limit_mib() or 2048) * 2**20

    @property
    def inference_workers(self) -> int:
        """Model runs at once. On CPU, several single-threaded runs (recognition batches of one
        image, or of several requests) use the cores better than one run over all of them
        (bench/levers.py: +20% throughput on 2 cores at the same latency)."""
        return self.ort_inference_workers or min(self.worker_cores, 4)

    @property
    def intra_op_threads(self) -> int:
        return self.ort_intra_op_threads or max(1, self.worker_cores // self.inference_workers)

    @property
    def det_intra_op_threads(self) -> int:
        return self.ort_det_intra_op_threads or self.worker_cores

    @property
    def det_busy_intra_op_threads(self) -> int:
        """A detection run that starts while others are in progress shares the cores with them
        instead of spreading over all of them (docs/artifacts/det-threads.json, bench/pairs.py:
        more pages per second under load; alone a run still takes every core)."""
        return self.ort_det_busy_intra_op_threads or self.intra_op_threads


def cgroup_memory_limit_mib() -> int | None:
    """The container's memory limit from its cgroup (v2 memory.max, v1 limit_in_bytes), if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 writes a huge number for "no limit"
            return int(text) // 2**20
    return None


def available_cores() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota
    (a Kubernetes CPU limit), which os.cpu_count() ignores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = None
    try:  # cgroup v2
        max_text, period_text = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if max_text != "max":
            quota = int(max_text) / int(period_text)
    except (OSError, ValueError):
        try:  # cgroup v1
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0:
                quota = q / period
        except (OSError, ValueError):
            pass
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
