"""Built-in recipes are package data, found by name from any directory, and never shadow a user's file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from openmm_distill.data.sampling import SamplingConfig
from openmm_distill.errors import ConfigError, MissingFileError
from openmm_distill.recipes import builtin_names, find_recipe, recipes_dir
from openmm_distill.training.config import load_config


def test_every_builtin_recipe_is_found_by_name_and_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout
    assert {"original", "tiny", "ultra-tiny", "smoke", "original_explored"} <= set(builtin_names("training"))
    for name in builtin_names("training"):
        assert find_recipe(name) == recipes_dir("training") / f"{name}.yaml"
        load_config(find_recipe(name))
    for name in builtin_names("sampling"):
        SamplingConfig.from_yaml(find_recipe(name, "sampling"))
    assert "train_analogues.csv" in builtin_names("data")


def test_a_users_file_wins_over_a_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("model: {preset: tiny}\n")
    assert find_recipe("tiny.yaml") == tmp_path.joinpath("tiny.yaml").relative_to(tmp_path)
    assert find_recipe("tiny") == recipes_dir() / "tiny.yaml"  # a bare name is the built-in one


def test_unknown_recipes_list_the_builtin_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingFileError, match=r"'tiniest'.*built-in: .*tiny, ultra-tiny"):
        find_recipe("tiniest")
    # A path with folders is the user's: a missing one is not looked up among the built-ins.
    with pytest.raises(MissingFileError, match="neither a file"):
        find_recipe("training/tiny.yaml")
    with pytest.raises(ConfigError, match="'plots'"):
        recipes_dir("plots")


def test_the_rebuild_script_makes_every_file_a_shipped_students_card_names():
    """training/rebuild_data.sh rebuilds the data of the recipes the shipped students name, and their blind sets."""
    root = Path(__file__).resolve().parents[1]
    script = (root / "training" / "rebuild_data.sh").read_text()
    made = set(re.findall(r"^\s*(?:label|merge) (data/\S+\.h5)", script, re.M))
    made |= set(re.findall(r"\bout=(data/\S+\.h5)", script))
    cards = sorted((root / "openmm_distill" / "students").glob("*.md"))
    assert len(cards) >= 5
    for card in cards:
        text = card.read_text()
        recipe = re.search(r"## Recipe\s+`(openmm_distill/recipes/[\w.-]+\.yaml)`", text)
        assert recipe, f"{card.name} names no recipe"
        data = load_config(root / recipe.group(1)).data
        needed = {data.path, data.validation_path, data.test_path} - {None}
        needed |= set(re.findall(r"--data (data/\S+\.h5)", text))
        assert needed - made == set(), (card.name, needed - made)
