"""Named device profiles: a budget for a typical target, the runtimes that ship on it, and how to
emulate it on this host. A microcontroller's RAM bound is on TFLite Micro's exact tensor arena
(``tensor_arena_kb``); measured on a runtime that cannot report one, a candidate is held to the
graph's activation-memory estimate instead (``budget.FALLBACK``), and memory is ranked on the
arena too (``select.device_objectives``). A Linux board's RAM bound is on ``peak_memory_mb``, the
measuring process's whole peak (the runtime's own memory with the model's): what the board must
have free; elsewhere memory is ranked on ``model_memory_kb``, the model's own share of it.

A profile's budget is the device's own: its latency bound is its frame budget. Measured on the
host running edgeslim (emulation), that bound is divided by ``slowdown``, the device's assumed
slowdown against one core of a current x86 server (stated in each profile); a board you reach
over SSH measures on itself, and ``edgeslim devices calibrate`` replaces the assumption with a
measured slowdown for host runs (``edgeslim.boards``). Memory and storage bounds come from the
datasheets and hold on any host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    budget: dict[str, str]
    measure: dict[str, Any] = field(default_factory=dict)  # emulation: threads, memory cap
    source: str = ""
    runtimes: tuple[str, ...] = ()  # what ships on such a device (an experiment's default)
    slowdown: float = 1.0  # assumed: the device's latency / this host's, for one core


DEVICES: dict[str, DeviceProfile] = {
    p.name: p
    for p in [
        DeviceProfile(
            "mcu-nrf52840",
            "microcontroller: Cortex-M4F at 64 MHz, 1 MB flash, 256 KB SRAM "
            "(Arduino Nano 33 BLE Sense, the TinyML book's board)",
            budget={"storage_kb": "<= 512", "tensor_arena_kb": "<= 128"},
            measure={"threads": 1},
            source="Nordic nRF52840 Product Specification v1.7 (1 MB flash, 256 KB RAM); half "
            "of each is left for the firmware and the runtime's tensor arena",
            runtimes=("tflite-micro",),
        ),
        DeviceProfile(
            "mcu-stm32h7",
            "microcontroller: Cortex-M7 at 480 MHz, 2 MB flash, 1 MB SRAM (STM32H743)",
            budget={"storage_kb": "<= 1024", "tensor_arena_kb": "<= 512"},
            measure={"threads": 1},
            source="ST DS12110 (STM32H743xI datasheet): 2 MB flash, 1 MB RAM; half of each for "
            "the model",
            runtimes=("tflite-micro",),
        ),
        DeviceProfile(
            "cortex-a53",
            "embedded Linux board: 4x Cortex-A53 at 1.2 GHz, 1 GB RAM (Raspberry Pi 3 B), "
            "one core for the model",
            budget={
                "latency_p95_ms": "<= 33",
                "peak_memory_mb": "<= 128",
                "storage_kb": "<= 8192",
            },
            measure={"threads": 1, "memory_limit_mb": 128},
            source="Raspberry Pi 3 B product brief (4x A53 1.2 GHz, 1 GB LPDDR2). Latency: a "
            "30 fps camera leaves 33 ms per frame; assuming one A53 core is ~8x slower than one "
            "server x86 core, that is ~4 ms here. Memory: an eighth of the RAM for the model.",
            runtimes=("litert", "onnxruntime"),
            slowdown=8.0,
        ),
        DeviceProfile(
            "phone-cpu",
            "mid-range phone CPU: 2 big Cortex-A76-class cores for the model, 4 GB RAM",
            budget={
                "latency_p95_ms": "<= 8",
                "peak_memory_mb": "<= 256",
                "storage_kb": "<= 20480",
            },
            measure={"threads": 2, "memory_limit_mb": 256},
            source="Arm Cortex-A76 product page; 60 fps UI budget of 16 ms per frame, half of it "
            "for the model, assuming an A76 core about as fast as one server x86 core; "
            "Google Play's guidance to keep on-device ML models in the tens of MB",
            runtimes=("litert",),
        ),
    ]
}
