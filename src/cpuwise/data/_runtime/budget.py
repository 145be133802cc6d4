"""The CPU and RAM a pipeline may use, and checks of the arguments that set them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cpuwise.errors import ConfigError
from cpuwise.host import usable_cores, usable_memory

RAM_FRACTION = 0.25  # default share of usable memory for buffered samples (prefetch + in flight)
ON_ERROR = ("raise", "skip")
BACKENDS = ("auto", "process", "thread", "inline")


@dataclass(frozen=True)
class Budget:
    """The cores and the bytes of buffered samples (prefetch + in flight) a pipeline may use."""

    cpu: float
    ram_bytes: int


def resolve(cpu_budget: float | None = None, ram_budget_bytes: int | None = None) -> Budget:
    """Defaults: every usable core (cgroup-aware) and RAM_FRACTION of usable memory."""
    cores = usable_cores()
    if cpu_budget is None:
        cpu = float(cores)
    else:
        check_cpu_budget(cpu_budget, cores)
        cpu = float(cpu_budget)
    if ram_budget_bytes is None:
        ram = int(usable_memory() * RAM_FRACTION)
    else:
        if not isinstance(ram_budget_bytes, int) or ram_budget_bytes <= 0:
            raise ConfigError(f"ram_budget_bytes: expected a positive int, found {ram_budget_bytes!r}. "
                              "Fix: pass e.g. ram_budget_bytes=4 << 30 for 4 GiB, or leave it unset.")
        ram = ram_budget_bytes
    return Budget(cpu, ram)


def check_cpu_budget(cpu_budget: Any, cores: int | None = None) -> None:
    """Raise ConfigError unless `cpu_budget` is a number of cores in (0, usable cores]."""
    cores = usable_cores() if cores is None else cores
    is_number = isinstance(cpu_budget, (int, float)) and not isinstance(cpu_budget, bool)
    if not is_number or not 0 < cpu_budget <= cores:
        raise ConfigError(
            f"cpu_budget: expected a number of cores in (0, {cores}] (the usable cores of this machine, "
            f"cgroup-aware), found {cpu_budget!r}. Fix: pass cpu_budget<={cores}, or leave it unset to use "
            "every usable core."
        )


def check_positive_int(name: str, value: Any, fix: str) -> int:
    """`value` when it is an int >= 1 (not a bool), else ConfigError naming `name` and the `fix`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected an int >= 1, found {value!r}. Fix: {fix}")
    return value


def check_positive_seconds(name: str, value: Any, fix: str) -> float:
    """`value` when it is a number of seconds > 0 (math.inf allowed), else ConfigError naming the fix."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not value > 0:  # also refuses NaN
        raise ConfigError(f"{name}: expected a number of seconds > 0, found {value!r}. Fix: {fix}.")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value` when it is one of `choices`, else ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(map(repr, choices))}, found {value!r}. "
                          f"Fix: pass {name}={choices[0]!r} (the default) or another listed value.")
    return str(value)
