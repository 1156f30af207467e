"""Teachers by name. Backends are imported only when a teacher is built, so a
missing optional package (orb-models, sevenn) only matters to those who ask for it."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Tuple

from openmm_distill.errors import ConfigError, MissingDependencyError
from openmm_distill.teachers.base import Teacher

DEFAULT_TEACHER = "gfn2-xtb"


def _lazy(module: str, cls: str, install: str) -> Callable[..., Teacher]:
    def factory(**options: Any) -> Teacher:
        try:
            mod = importlib.import_module(f"openmm_distill.teachers.{module}")
        except ImportError as exc:  # pragma: no cover - adapters import their backends lazily
            raise MissingDependencyError(f"teacher module {module!r} could not be imported ({exc}); "
                                         f"install with: {install}") from exc
        return getattr(mod, cls)(**options)

    factory.__name__ = f"make_{cls}"
    factory.__doc__ = f"Build :class:`openmm_distill.teachers.{module}.{cls}`; requires: {install}"
    return factory


# name -> factory(**options) -> Teacher. Order: the default first.
TEACHERS: Dict[str, Callable[..., Teacher]] = {
    "gfn2-xtb": _lazy("gfn2_xtb", "GFN2xTBTeacher", "pip install tblite==0.8.0"),
    "orb-v2": _lazy("orb_v2", "OrbV2Teacher", "pip install 'openmm-distill[orb]'  (orb-models==0.5.5)"),
    "sevennet": _lazy("sevennet", "SevenNetTeacher", 'pip install "openmm-distill[sevennet]"  (sevenn==0.13.0)'),
    "ase": _lazy("ase_teacher", "ASETeacher", "pip install ase"),
}


def available_teachers() -> List[str]:
    """Names accepted by :func:`get_teacher`, the default (``"gfn2-xtb"``) first."""
    return list(TEACHERS)


def get_teacher(name: str = DEFAULT_TEACHER, **options: Any) -> Teacher:
    """Build a teacher by registry name.

    Parameters
    ----------
    name : str
        One of :func:`available_teachers`: ``"gfn2-xtb"`` (default), ``"orb-v2"``, ``"sevennet"``, ``"ase"``.
    **options
        Passed to the adapter, e.g. ``accuracy=0.1`` for GFN2-xTB,
        ``weights_path=...`` for orb-v2, ``model="7net-0"`` for sevennet,
        ``calculator="ase.calculators.emt:EMT"`` for ase.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the allowed ones) or a bad option.
    ImportError
        If the backend package is missing (the message names the install command).
    """
    key = str(name).strip().lower()
    if key not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; allowed: {', '.join(available_teachers())}")
    try:
        return TEACHERS[key](**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for teacher {key!r} {sorted(options)}: {exc}") from exc


# Settings a teacher records that choose the model itself, not just how it runs: a teacher rebuilt from a
# record must get them back (or a 7net-l3i5 student would be checked against 7net-0), and two records
# that differ in them are two energy surfaces.
MODEL_CHOOSING_SETTINGS = {"sevennet": ("model", "modal"), "ase": ("calculator",)}


def recorded_teacher(record: Any) -> Tuple[str, Dict[str, Any]]:
    """Registry name and model-choosing options of a teacher as a dataset or a student records it.

    ``record`` is the recorded ``teacher`` (a dict with ``name`` and ``settings``, or a bare name);
    ``("gfn2-xtb", {})`` when nothing is recorded.
    """
    name, settings = record, {}
    if isinstance(record, dict):
        name, settings = record.get("name"), record.get("settings") or {}
    name = name.strip().lower() if isinstance(name, str) and name.strip() else DEFAULT_TEACHER
    keys = MODEL_CHOOSING_SETTINGS.get(name, ())
    return name, {k: settings[k] for k in keys if settings.get(k) is not None}


def teacher_label(record: Any) -> str:
    """A recorded teacher in words for logs and cards: the registry name and its model-choosing options
    (``"sevennet 7net-0"``)."""
    name, options = recorded_teacher(record)
    return " ".join([name, *(str(v) for v in options.values())])
