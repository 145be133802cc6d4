"""cpuwise doctor's bootstrap: instrument this Python process, then run any other sitecustomize.

The job-side composition root: the doctor puts this folder first on the job's PYTHONPATH, so every
Python process of the job runs it at start-up. It installs the collectors' hooks (`cpuwise.monitor`)
and the framework callbacks' auto-attachment (`cpuwise.integrations`), and nothing heavy.
"""

import importlib.util
import os
import sys


def _cpuwise_install() -> None:
    try:
        # lazy: this file runs as the job's own sitecustomize, whose interpreter may not have cpuwise
        from cpuwise.integrations import autoattach
        from cpuwise.monitor.instrument import hooks, trial
    except ImportError:
        src = os.environ.get("CPUWISE_SRC")
        if not src:
            return
        sys.path.append(src)  # at the end: never shadow the job's own modules
        try:
            # lazy: now from the doctor's own source tree
            from cpuwise.integrations import autoattach
            from cpuwise.monitor.instrument import hooks, trial
        except ImportError:
            return
        finally:
            if src in sys.path:
                sys.path.remove(src)
    try:
        hooks.install()
        trial.install(dropin=_cpuwise_dropin)  # a `cpuwise doctor --try-fixes` trial; else nothing
        autoattach.install()
    except Exception as exc:  # instrumentation must never break the job
        sys.stderr.write(f"cpuwise: instrumentation disabled ({type(exc).__name__}: {exc})\n")


def _cpuwise_dropin(**kwargs):  # type: ignore[no-untyped-def]
    """cpuwise.data's DataLoader from a torch DataLoader's arguments (a --try-fixes trial's drop-in)."""
    # lazy: only a trial that tries cpuwise.data loads the pipeline
    from cpuwise.data.adapters.torch_loader import DataLoader

    return DataLoader(**kwargs)


def _chain_next_sitecustomize() -> None:
    # Our directory shadows the environment's own sitecustomize (Debian ships one): run it too.
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("_cpuwise_chained_sitecustomize", path)
            if spec is not None and spec.loader is not None:
                mod = importlib.util.module_from_spec(spec)
                try:
                    spec.loader.exec_module(mod)
                except Exception as exc:
                    sys.stderr.write(f"cpuwise: the environment's sitecustomize failed: {exc}\n")
            return


_cpuwise_install()
_chain_next_sitecustomize()
