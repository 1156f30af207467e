"""Built-in recipes shipped inside the package: training recipes (``<name>.yaml``, one per
student preset) and sampling recipes (``data/<name>.yaml``, for ``openmm-distill label
--sampling-config``), plus the molecule lists they refer to (``data/*.csv``).

Commands accept either a file path or the name of a built-in recipe, so they work
from any directory and from a wheel install; :func:`find_recipe` does that lookup.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import List, Union

from openmm_distill.errors import ConfigError, MissingFileError

PathLike = Union[str, "os.PathLike[str]"]

# Kinds of built-in recipe: kind -> folder inside this package.
KINDS = {"training": ".", "sampling": "data", "data": "data"}


def recipes_dir(kind: str = "training") -> Path:
    """The folder of built-in recipes of ``kind`` (``"training"``, ``"sampling"`` or ``"data"``)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown kind of recipe {kind!r}; allowed: {', '.join(KINDS)}")
    return Path(str(resources.files(__package__) / KINDS[kind])).resolve()


def builtin_names(kind: str = "training") -> List[str]:
    """Names of the built-in recipes of ``kind`` (file names without ``.yaml``; data files with suffix)."""
    folder = recipes_dir(kind)
    if kind == "data":
        return sorted(p.name for p in folder.iterdir() if p.suffix in (".csv", ".smi"))
    return sorted(p.stem for p in folder.glob("*.yaml"))


def find_recipe(name_or_path: PathLike, kind: str = "training") -> Path:
    """A recipe file: an existing path as given, else the built-in recipe of that name.

    Parameters
    ----------
    name_or_path : str or path-like
        A YAML path (``my.yaml``, ``runs/x/config.yaml``) or a built-in name
        (``"tiny"``, ``"tiny.yaml"``, ``"shipped_train"``).
    kind : {"training", "sampling", "data"}
        Which built-in folder to look in.

    Raises
    ------
    MissingFileError
        If it is neither an existing file nor a built-in name; the message lists the built-in ones.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = recipes_dir(kind) / path.name
    for candidate in (builtin, builtin.with_name(builtin.name + ".yaml")):
        # Only a bare name selects a built-in file: a path with folders is the user's.
        if path.name == str(name_or_path) and candidate.is_file():
            return candidate
    raise MissingFileError(f"{kind} recipe {str(name_or_path)!r} is neither a file nor a built-in recipe; "
                           f"built-in: {', '.join(builtin_names(kind))}")
