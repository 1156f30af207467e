#!/usr/bin/env bash
# Rebuild the labelled datasets that the shipped students' recipes read (data/*.h5), from the
# committed lists and sampling recipes, with the commands of training/README.md and
# docs/chemistry.md. Sampling is seeded per molecule, so the structures are those the shipped
# students saw.
#
#   bash training/rebuild_data.sh [--workers N] [STAGE ...]
#
# Stages (default: eval train hbond):
#   eval      the evaluation sets: catalog test split, blind set, chemistry validation set, catalog
#             validation split (GFN2-xTB MD at 300-600 K; the test split alone: 30-40 min, one worker)
#   train     catalog training split, its close contacts, the 10,000-molecule training chemistry
#             (38 min with two workers), the focus and assembled lists, merged into
#             data/train_chemistry_assembled.h5
#   hbond     the hydrogen-bond exploration of tiny's last round, with the `tiny` that ran it (taken
#             from git history), merged into data/train_chemistry_hbond.h5
#   sevennet  the SevenNet-0 relabels of the train and eval stages (issue #16; needs `.[sevennet]`;
#             about 100 ms a structure)
#
# Safe to stop and rerun at any point: a finished file is skipped, a labelling or exploration job
# resumes from its .partial file, and a merge is redone only when its output is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

OD="${OD:-.venv/bin/openmm-distill}"
WORKERS=2
STAGES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS="${2:?--workers needs a number}"; shift 2 ;;
        eval|train|hbond|sevennet) STAGES+=("$1"); shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "rebuild_data.sh: unknown stage or option '$1' (stages: eval train hbond sevennet; option: --workers N)" >&2
           exit 2 ;;
    esac
done
[ ${#STAGES[@]} -gt 0 ] || STAGES=(eval train hbond)
mkdir -p data

# label OUTPUT ARGS...: one labelling job, skipped when OUTPUT exists
label() {
    local out="$1"; shift
    if [ -e "$out" ]; then echo "have $out"; return; fi
    echo "label -> $out"
    "$OD" label -o "$out" --workers "$WORKERS" "$@"
}

# merge OUTPUT INPUT...: skipped when OUTPUT exists
merge() {
    local out="$1"; shift
    if [ -e "$out" ]; then echo "have $out"; return; fi
    echo "merge -> $out"
    "$OD" dataset merge "$@" -o "$out"
}

CHEM=systems/chemistry
CHEM_SAMPLING=$CHEM/train_chemistry_sampling.yaml

stage_eval() {
    label data/shipped_test.h5 --split test --sampling-config shipped_eval
    label data/blind.h5 --input $CHEM/blind_molecules.csv --sampling-config $CHEM/blind_sampling.yaml
    label data/validation_chemistry.h5 --input $CHEM/validation_chemistry.csv --sampling-config shipped_eval
    label data/shipped_validation.h5 --split validation --sampling-config shipped_eval
}

stage_train() {
    label data/shipped_train.h5 --split train --sampling-config shipped_train
    label data/contacts_train.h5 --split train --sampling-config contacts_train
    label data/chemistry.h5 --input $CHEM/train_chemistry.csv --sampling-config $CHEM_SAMPLING
    label data/chemistry_focus.h5 --input $CHEM/train_chemistry_focus.csv --sampling-config $CHEM_SAMPLING
    label data/chemistry_assembled.h5 --input $CHEM/train_chemistry_assembled.csv --sampling-config $CHEM_SAMPLING
    merge data/train_chemistry.h5 data/shipped_train.h5 data/contacts_train.h5 data/chemistry.h5
    merge data/train_chemistry_focus.h5 data/train_chemistry.h5 data/chemistry_focus.h5
    merge data/train_chemistry_assembled.h5 data/train_chemistry_focus.h5 data/chemistry_assembled.h5
}

# The hydrogen-bond exploration was run by the `tiny` shipped before that round (commit f7c77f8).
HBOND_EXPLORER_COMMIT=f7c77f8
stage_hbond() {
    local out=data/explore_hbond_tiny_700K.h5 explorer=data/tiny_before_hbond_round.pt
    if [ ! -e "$out" ]; then
        if [ ! -e "$explorer" ]; then
            git show "$HBOND_EXPLORER_COMMIT:openmm_distill/students/tiny.pt" > "$explorer.tmp" || {
                echo "rebuild_data.sh: stage hbond needs a git clone of the repository (the explorer is tiny.pt at $HBOND_EXPLORER_COMMIT)" >&2
                exit 2; }
            mv "$explorer.tmp" "$explorer"
        fi
        echo "explore -> $out"
        "$OD" explore --student "$explorer" --input openmm_distill/recipes/data/explore_hbond_molecules.csv \
            --limit 128 --temperatures 700 --length-ps 4 -o "$out" --jobs "$WORKERS" --workers "$WORKERS"
    else
        echo "have $out"
    fi
    merge data/train_chemistry_hbond.h5 data/train_chemistry_assembled.h5 "$out"
}

stage_sevennet() {
    local t=(--teacher sevennet --teacher-option model=7net-0)
    label data/train_7net0.h5 --relabel data/shipped_train.h5 "${t[@]}"
    label data/contacts_train_7net0.h5 --relabel data/contacts_train.h5 "${t[@]}"
    local shards=() i
    for i in 0 1 2 3 4 9; do    # label --shard I/10 -o X.h5 writes X.shardI-of-10.h5
        shards+=("data/chemistry_7net0.shard$i-of-10.h5")
        if [ -e "${shards[-1]}" ]; then echo "have ${shards[-1]}"; continue; fi
        echo "label -> ${shards[-1]}"
        "$OD" label -o data/chemistry_7net0.h5 --relabel data/chemistry.h5 --shard "$i/10" --workers "$WORKERS" "${t[@]}"
    done
    merge data/train_sevennet0.h5 data/train_7net0.h5 data/contacts_train_7net0.h5 \
        data/chemistry_7net0.shard0-of-10.h5 data/chemistry_7net0.shard1-of-10.h5 data/chemistry_7net0.shard9-of-10.h5
    merge data/train_sevennet0_2.h5 data/train_7net0.h5 data/contacts_train_7net0.h5 "${shards[@]}"
    label data/validation_sevennet0.h5 --relabel data/shipped_validation.h5 "${t[@]}"
    label data/test_sevennet0.h5 --relabel data/shipped_test.h5 "${t[@]}"
    label data/blind_sevennet0.h5 --relabel data/blind.h5 "${t[@]}"
}

for s in "${STAGES[@]}"; do
    echo "== stage $s"
    "stage_$s"
done
