"""Which CPU runtime TensorFlow uses here, and how to ask for the other one.

TensorFlow's CPU build switches oneDNN on by default only on some CPUs (AVX-512 and newer
here); ``TF_ENABLE_ONEDNN_OPTS=0/1`` overrides it at process start. The two runtimes differ in
which fused kernels they run and in speed (up to 10x either way), so tfopt names the one it
ran under everywhere it reports a result, along with the CPU's ISA level.
"""

from __future__ import annotations

import os
import platform

# Runtime name -> the TF_ENABLE_ONEDNN_OPTS value that selects it.
RUNTIMES: dict[str, str] = {"onednn": "1", "eigen": "0"}


def runtime_label(runtime: str) -> str:
    return {"onednn": "oneDNN on", "eigen": "oneDNN off"}.get(runtime, runtime)


def runtime_env(runtime: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process that must run under ``runtime`` (None: whatever this
    process's environment selects), with TensorFlow's start-up chatter quiet."""
    env = dict(os.environ if base is None else base)
    if runtime is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = RUNTIMES[runtime]
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def current_runtime() -> str:
    """The runtime of this process (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port

    return "onednn" if _pywrap_util_port.IsMklEnabled() else "eigen"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_isa() -> str:
    """The highest x86-64 vector ISA level the CPU offers (what oneDNN dispatches on)."""
    flags = _cpu_flags()
    if not flags:
        return platform.machine() or "unknown"
    for flag, name in (("amx_tile", "AMX"), ("avx512_bf16", "AVX-512-BF16"),
                       ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                       ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return platform.machine() or "unknown"


BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def bf16_hardware() -> list[str]:
    """The CPU's bfloat16 instructions (AVX512_BF16, AMX_BF16); [] when it has none, and then
    a bf16 model runs slower than float32 here."""
    flags = _cpu_flags()
    return [f.upper() for f in BF16_FLAGS if f in flags]


INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_hardware() -> list[str]:
    """The CPU's int8 dot-product instructions (VNNI, AMX); without them oneDNN's int8
    kernels emulate the dot products and gain little over float32."""
    flags = _cpu_flags()
    return [f.upper() for f in INT8_FLAGS if f in flags]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, str | int | bool]:
    """The facts a timing or a verification depends on (imports TensorFlow)."""
    import tensorflow as tf

    runtime = current_runtime()
    return {"tensorflow": tf.__version__, "runtime": runtime, "onednn": runtime == "onednn",
            "isa": cpu_isa(), "cpu": cpu_model(), "cpus": os.cpu_count() or 1}


def summary_line(facts: dict | None = None) -> str:
    facts = facts or describe()
    return (f"TensorFlow {facts['tensorflow']}, {runtime_label(facts['runtime'])}, "
            f"CPU {facts['isa']} ({facts['cpu']}, {facts['cpus']} cores)")
