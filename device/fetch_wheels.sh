#!/usr/bin/env bash
# Download into .whl/ the wheels the GPU machine (Python 3.12, torch 2.11 + CUDA 13, no network)
# lacks for device/gpu_check.py, and build this package's own wheel there. Run from anywhere:
#
#   device/fetch_wheels.sh            # PYTHON=python3.11 device/fetch_wheels.sh to pick the interpreter
#
# .whl/ is ignored through .git/info/exclude (this script adds the line), so the wheels travel only
# when a device run names it in `carry`; they are never committed. The image already holds numpy,
# scipy, matplotlib, h5py, pyyaml, tqdm, pillow, typing-extensions, pytest and torch
# (/work/.library/device/KINDS.md); mdtraj and tblite are not needed by the check and stay behind.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
DEST="$REPO/.whl"
MAX_MIB=55

# Binary wheels for CPython 3.12 on the GPU machine (manylinux_2_34 for OpenMM; pip matches each tag exactly).
PLATFORMS=(--platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
BINARY=(openmm==8.6.1 openmm-cuda-13==8.6.1 openmmtorch==1.5 openmm-torch-cuda-13==1.5
        rdkit==2026.9.1 ase==3.29.0)
# Pure-Python, published as an sdist only: built here into a py3-none-any wheel.
SDIST_ONLY=(openmmml==1.8)

grep -qxF '/.whl/' "$REPO/.git/info/exclude" 2>/dev/null || echo '/.whl/' >> "$REPO/.git/info/exclude"
rm -rf "$DEST"
mkdir -p "$DEST"

"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$DEST" "${BINARY[@]}"
"$PYTHON" -m pip wheel -q --no-deps --no-binary=:all: -w "$DEST" "${SDIST_ONLY[@]}"

# This package, built from a copy of what a wheel holds (as tests/test_wheel.py does), so the checkout's
# stale build/ folder cannot slip old modules into it.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
for pkg in "$REPO"/openmm_distill*/; do
    [[ -f "$pkg/__init__.py" ]] && cp -r "$pkg" "$SRC/"
done
cp "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/LICENSE" "$SRC/"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$SRC"

ls -l "$DEST"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "total: $((total / 1048576)) MiB in $(ls "$DEST"/*.whl | wc -l) wheels"
if (( total > MAX_MIB * 1048576 )); then
    echo "error: .whl holds more than $MAX_MIB MiB; a device run carries at most 64 MiB with the working tree" >&2
    exit 1
fi
